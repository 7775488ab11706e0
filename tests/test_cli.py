"""``flask complete config`` and ``flask complete init``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_complete import Complete


def make_app(root: Path, code: dict[str, t.Any] | None = None) -> Flask:
    app = Flask("cliapp", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(code or {})
    Complete(app, env="development", root=root)
    return app


@pytest.mark.usefixtures("clean_env")
class TestConfigCommand:
    def test_lists_values_with_sources_and_redacts(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "settings.toml").write_text(
            '[development]\nDATABASE_URL = "postgresql://app:hunter2@db.internal/app"\n'
        )
        clean_env.setenv("FLASK_MAIL_PASSWORD", "hunter2")
        app = make_app(tmp_path, {"GREETING": "hi"})
        result = app.test_cli_runner().invoke(args=["complete", "config"])
        assert result.exit_code == 0, result.output
        assert "hunter2" not in result.output
        lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
        uri = lines["SQLALCHEMY_DATABASE_URI"]
        assert "postgresql+psycopg://app:***@db.internal/app" in uri
        assert "[settings.toml [development]]" in uri
        assert (
            "***" in lines["MAIL_PASSWORD"]
            and "[env FLASK_MAIL_PASSWORD]" in lines["MAIL_PASSWORD"]
        )
        assert "[code]" in lines["GREETING"]
        assert "[flask_complete default]" in lines["DATABASE_POOL_SIZE"]
        assert "[flask default]" in lines["TESTING"]

    def test_one_value(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        runner = app.test_cli_runner()
        assert runner.invoke(args=["complete", "config", "database_pool_size"]).output == "5\n"
        result = runner.invoke(args=["complete", "config", "DATABASE_URL"])
        assert result.output.startswith("sqlite:///")

    def test_unknown_name(self, tmp_path: Path) -> None:
        result = make_app(tmp_path).test_cli_runner().invoke(args=["complete", "config", "NOPE"])
        assert result.exit_code == 2
        assert "No setting named 'NOPE'" in result.output

    def test_warns_when_code_shadows_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text('[default]\nGREETING = "file"\n')
        app = make_app(tmp_path, {"GREETING": "code"})
        result = app.test_cli_runner().invoke(args=["complete", "config"])
        assert "GREETING is set in code, which shadows settings.toml [default]" in result.output

    def test_flags_init_time_key_changed_after_init(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///other.db"
        result = app.test_cli_runner().invoke(args=["complete", "config"])
        assert "SQLALCHEMY_DATABASE_URI changed after Complete(app) and has no effect" in (
            result.output
        )

    def test_existing_command_is_kept(self, tmp_path: Path) -> None:
        app = Flask("own", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))

        @app.cli.command("complete")
        def own() -> None:
            print("the app's own")

        Complete(app, env="development", root=tmp_path)
        assert app.test_cli_runner().invoke(args=["complete"]).output == "the app's own\n"


@pytest.mark.usefixtures("clean_env")
def test_init_writes_files_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc")
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["complete", "init"])
    assert result.exit_code == 0, result.output
    assert "wrote   settings.toml" in result.output
    assert "wrote   .secrets.toml" in result.output
    assert "updated .gitignore" in result.output
    secret = tomllib.loads((tmp_path / ".secrets.toml").read_text())["default"]["SECRET_KEY"]
    assert len(secret) >= 48
    for env in ("default", "development", "testing", "production"):
        assert env in tomllib.loads((tmp_path / "settings.toml").read_text())
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert ignored[0] == "*.pyc"
    assert {".secrets.toml", ".env", "instance/"} <= set(ignored)
    assert (tmp_path / ".env.example").is_file()

    again = runner.invoke(args=["complete", "init"])
    assert again.exit_code == 0
    assert "kept    .secrets.toml: it exists" in again.output
    assert "already ignores" in again.output
    assert (
        tomllib.loads((tmp_path / ".secrets.toml").read_text())["default"]["SECRET_KEY"] == secret
    )


FIVE_LINES = """\
from flask import Flask
from flask_complete import Complete

app = Flask(__name__)
Complete(app)
"""


def _flask(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_secret_exits_naming_it(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(FIVE_LINES)
    result = _flask(tmp_path, "run", "--port", "0", FLASK_ENV="production")
    assert result.returncode == 1
    assert "Error: flask_complete cannot start" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_starts_with_secret_and_database(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "app.py").write_text(FIVE_LINES)
    env = {"FLASK_ENV": "production", "SECRET_KEY": "s" * 40, "DATABASE_URL": pg_url}
    result = _flask(tmp_path, "complete", "config", "DATABASE_URL", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pg_url

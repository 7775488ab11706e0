"""``flask complete config`` and ``flask complete init``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tomllib
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flask_complete import Complete
from flask_complete.auth import UserMixin
from flask_complete.settings.schema import FLASK_LOGIN_KEYS, distance
from flask_complete.settings.sensitive import redact


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


#: Settings holding secrets, and the secret part of each, which must never be printed.
SECRETS = {
    "SECRET_KEY": ("s3cr3t-" + "q" * 30, None),
    "MAIL_PASSWORD": ("hunter2", None),
    "LDAP_PASSWD": ("pa55wd-ldap", None),
    "GITHUB_TOKEN": ("ghp_tok3n", None),
    "GCP_CREDENTIALS": ("cred-json-blob", None),
    "STRIPE_API_KEY": ("sk_live_k3y", None),
    "JWT_PRIVATE": ("-----BEGIN PRIVATE", None),
    "SENTRY_DSN": ("https://dsnk3y@o1.ingest.sentry.io/1", "dsnk3y"),
    "PROXY_AUTH": ("basic-auth-v4lue", None),
    "FERNET_KEY": ("fernet-k3y", None),
    "REDIS_URL": ("redis://:r3dispw@cache:6379/0", "r3dispw"),
    "WEBHOOK_URL": ("https://hookuser:h00kpw@hooks.example.com/x", "h00kpw"),
    "SEARCH_URL": ("https://search.example.com/?api_key=qu3ryk3y&page=1", "qu3ryk3y"),
}


@pytest.mark.usefixtures("clean_env")
def test_config_output_is_free_of_every_secret(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    for key, (value, _) in SECRETS.items():
        clean_env.setenv(key if key in ("SECRET_KEY", "REDIS_URL") else f"FLASK_{key}", value)
    (tmp_path / "settings.toml").write_text(
        "[development]\n"
        'DATABASE_URL = "postgresql://app:dbpassw0rd@db.internal/app"\n'
        'SQLALCHEMY_BINDS = {reports = "mysql+pymysql://rep:bindpassw0rd@h/rep"}\n'
        'SQLALCHEMY_ENGINE_OPTIONS = {connect_args = {password = "optpassw0rd"}}\n'
        'MIRRORS = ["https://mirroruser:mirrorpassw0rd@m.example.com/"]\n'
        'SECRET_KEY_FALLBACKS = ["oldk3y-one"]\n'
    )
    runner = make_app(tmp_path).test_cli_runner()
    table = runner.invoke(args=["complete", "config", "--all"])
    document = runner.invoke(args=["complete", "config", "--format", "json"])
    one = runner.invoke(args=["complete", "config", "SENTRY_DSN"])
    assert table.exit_code == document.exit_code == one.exit_code == 0, table.output
    hidden = [secret or value for value, secret in SECRETS.values()]
    hidden += ["dbpassw0rd", "bindpassw0rd", "optpassw0rd", "mirrorpassw0rd", "oldk3y-one"]
    for output in (table.output, document.output, one.output):
        assert [s for s in hidden if s in output] == []
    lines = {line.split()[0]: line for line in table.output.splitlines() if line.strip()}
    # A database URL keeps its user; other URLs lose their whole user information.
    assert "postgresql+psycopg://app:***@db.internal/app" in lines["SQLALCHEMY_DATABASE_URI"]
    assert "redis://***@cache:6379/0" in lines["REDIS_URL"]
    # A webhook keeps its host: its path and query are its secret.
    assert "https://***@hooks.example.com/***" in lines["WEBHOOK_URL"]
    assert '"https://***@m.example.com/"' in lines["MIRRORS"]
    assert '"rep:***@h/rep"' not in lines["SQLALCHEMY_BINDS"]
    assert "mysql+pymysql://rep:***@h/rep" in lines["SQLALCHEMY_BINDS"]
    # The bundle's own settings named like secrets stay readable.
    assert lines["AUTH_URL_PREFIX"].split()[1] == "/auth"
    assert lines["AUTH_TOKEN_DAYS"].split()[1] == "30"
    assert lines["AUTH_PASSWORD_METHOD"].split()[1] == "scrypt"


@pytest.mark.usefixtures("clean_env")
def test_config_as_json(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLASK_MAIL_PASSWORD", "hunter2")
    runner = make_app(tmp_path, {"GREETING": "hi"}).test_cli_runner()
    result = runner.invoke(args=["complete", "config", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["environment"] == "development"
    assert document["root"] == str(tmp_path)
    settings = document["settings"]
    assert settings["GREETING"] == {"value": "hi", "source": "code"}
    assert settings["MAIL_PASSWORD"] == {"value": "***", "source": "env FLASK_MAIL_PASSWORD"}
    assert settings["DATABASE_POOL_SIZE"] == {"value": 5, "source": "flask_complete default"}
    assert settings["CORS_RESOURCES"]["value"] == ["/api/*", "/auth/*"]
    assert settings["PERMANENT_SESSION_LIFETIME"]["value"] == "31 days, 0:00:00"
    assert document["warnings"] == []
    one = runner.invoke(args=["complete", "config", "database_pool_size", "--format", "json"])
    assert json.loads(one.output) == {
        "key": "DATABASE_POOL_SIZE",
        "value": 5,
        "source": "flask_complete default",
    }


@pytest.mark.usefixtures("clean_env")
def test_debug_says_the_flask_command_set_it(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    runner = make_app(tmp_path).test_cli_runner()
    line = runner.invoke(args=["complete", "config"]).output.split("\nDEBUG ")[1].splitlines()[0]
    assert line.split() == ["false", "[flask", "command", "(FLASK_DEBUG", "not", "set:", "off)]"]
    clean_env.setenv("FLASK_DEBUG", "1")
    document = json.loads(runner.invoke(args=["complete", "config", "--format", "json"]).output)
    assert document["settings"]["DEBUG"] == {"value": True, "source": "env FLASK_DEBUG"}


def test_debug_from_dotenv_is_labelled_through_the_real_command(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(FIVE_LINES)
    (tmp_path / ".env").write_text("FLASK_DEBUG=1\n")
    result = _flask(tmp_path, "complete", "config", "DEBUG", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "key": "DEBUG",
        "value": True,
        "source": "env FLASK_DEBUG (from .env, loaded by flask)",
    }


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
    assert (tmp_path / ".secrets.toml").stat().st_mode & 0o777 == 0o600
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


def _flask(
    root: Path, *args: str, app: str = "app", **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
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
    # What a process manager shows: the first line names the problem and the fix.
    first = next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
    assert first.startswith("Error: SECRET_KEY is missing: production signs sessions"), first
    assert "Set it in the environment (SECRET_KEY=...)" in first
    assert "Traceback" not in result.stderr


def test_production_starts_with_secret_and_database(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "app.py").write_text(FIVE_LINES)
    env = {
        "FLASK_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": pg_url,
    }
    result = _flask(tmp_path, "complete", "config", "DATABASE_URL", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pg_url


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("own", [False, True], ids=["bundle-only", "with-own-options"])
def test_engine_options_computed_by_the_bundle_say_so(tmp_path: Path, own: bool) -> None:
    """SQLALCHEMY_ENGINE_OPTIONS is computed at init from the DATABASE_* settings and the URL:
    its source says so, with the file that added options of its own."""
    lines = ['[development]\nDATABASE_URL = "postgresql://app@db.internal/app"\n']
    if own:
        lines.append("[development.SQLALCHEMY_ENGINE_OPTIONS]\npool_size = 3\n")
    (tmp_path / "settings.toml").write_text("".join(lines))
    app = make_app(tmp_path)
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True
    result = app.test_cli_runner().invoke(args=["complete", "config", "--format", "json"])
    source = json.loads(result.output)["settings"]["SQLALCHEMY_ENGINE_OPTIONS"]["source"]
    assert "flask default" not in source
    assert source.startswith("flask_complete (computed at init"), source
    assert ("settings.toml [development]" in source) == own, source


FACTORY_PACKAGE = """\
from flask import Flask
from flask_complete import Complete


def create_app():
    app = Flask(__name__)
    Complete(app)
    return app
"""


@pytest.mark.parametrize("git", [True, False], ids=["git", "no-git"])
def test_init_writes_at_the_project_root(tmp_path: Path, git: bool) -> None:
    """No pyproject.toml, an app package: init writes at the git work tree's top (else the
    folder flask runs in), says so first, and the next command reads what it wrote."""
    root = tmp_path / "project"
    (root / "myapp").mkdir(parents=True)
    (root / "myapp" / "__init__.py").write_text(FACTORY_PACKAGE)
    (root / "requirements.txt").write_text("flask\n")
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    result = _flask(root, "complete", "init", app="myapp")
    assert result.returncode == 0, result.stderr
    why = "the top of its git work tree" if git else "the folder flask runs in"
    assert result.stdout.splitlines()[0] == f"writing to {root} ({why})", result.stdout
    for name in ("settings.toml", ".secrets.toml", ".env.example", ".gitignore", "migrations"):
        assert (root / name).exists(), name
        assert not (root / "myapp" / name).exists(), name
    assert "wrote   .gitignore" in result.stdout  # a new file, not "updated"
    assert {".secrets.toml", ".env", "instance/"} <= set((root / ".gitignore").read_text().split())
    shown = _flask(root, "complete", "config", "--format", "json", app="myapp")
    assert json.loads(shown.stdout)["root"] == str(root), shown.stderr


def _rows(output: str) -> dict[str, list[str]]:
    """The table's rows by setting: the value cell and the source, split at two spaces."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SETTING "))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith(("note:", "warning:")):
            break
        key, _, rest = line.partition(" ")
        value, _, source = rest.strip().rpartition("  [")
        rows[key] = [value.strip(), source.removesuffix("]")]
    return rows


_authdb = SQLAlchemy()


class _User(UserMixin, _authdb.Model):  # type: ignore[misc, name-defined]
    """A user model, so that the auth piece is wired."""


@pytest.mark.usefixtures("clean_env")
class TestConfigTable:
    def test_has_a_header_row(self, tmp_path: Path) -> None:
        output = make_app(tmp_path).test_cli_runner().invoke(args=["complete", "config"]).output
        lines = output.splitlines()
        assert lines[0].startswith("environment: development")
        assert lines[1].split() == ["SETTING", "VALUE", "SOURCE"]
        # The header names the columns where the rows have them.
        row = next(line for line in lines if line.startswith("DATABASE_POOL_SIZE "))
        assert row.index("5 ") == lines[1].index("VALUE")
        assert row.index("[flask_complete default]") == lines[1].index("SOURCE")

    def test_inert_pieces_settings_are_hidden_unless_all(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text(
            "[default]\nAUTH_TOKEN_DAYS = 7\nCOMPLETE_CORS = false\n"
        )
        runner = make_app(tmp_path).test_cli_runner()
        result = runner.invoke(args=["complete", "config"])
        assert result.exit_code == 0, result.output
        shown = _rows(result.output)
        # No user model: auth does nothing, and its defaults and Flask-Login's are left out...
        assert not {"AUTH_URL_PREFIX", "AUTH_THROTTLE_WINDOW", "CORS_RESOURCES"} & set(shown)
        # ...but a value the user wrote is shown, and so are the switches.
        assert shown["AUTH_TOKEN_DAYS"] == ["7", "settings.toml [default]"]
        assert {"COMPLETE_AUTH", "COMPLETE_CORS", "CSRF_PROTECT", "SECRET_KEY"} <= set(shown)
        note = next(line for line in result.output.splitlines() if line.startswith("note:"))
        assert "auth (no user_model" in note and "cors (COMPLETE_CORS = false)" in note
        assert "--all" in note
        every = _rows(runner.invoke(args=["complete", "config", "--all"]).output)
        assert {"AUTH_URL_PREFIX", "AUTH_THROTTLE_WINDOW", "CORS_RESOURCES"} <= set(every)
        for key in set(every) - set(shown):
            assert key.startswith(("AUTH_", "CORS_")) or key in FLASK_LOGIN_KEYS, key

    def test_a_wired_piece_shows_its_settings(self, tmp_path: Path) -> None:
        app = Flask("authapp", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        Complete(app, db=_authdb, user_model=_User, env="development", root=tmp_path)
        result = app.test_cli_runner().invoke(args=["complete", "config"])
        assert {"AUTH_URL_PREFIX", "AUTH_THROTTLE_WINDOW", "CORS_RESOURCES"} <= set(
            _rows(result.output)
        )
        assert "note:" not in result.output

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(value=st.text(max_size=12) | st.integers() | st.booleans() | st.none())
    def test_every_value_reads_back_unambiguously(self, tmp_path: Path, value: t.Any) -> None:
        """An empty string, one with spaces around it, one that reads as a number, ``true`` or
        ``null``: the cell says so, and decodes to the value whatever it is."""
        assume(redact("GREETING", value) == value)
        app = make_app(tmp_path, {"GREETING": value})
        runner = app.test_cli_runner()
        table = runner.invoke(args=["complete", "config"]).output
        row = next(line for line in table.splitlines() if line.startswith("GREETING "))
        cell = row[len("GREETING") :].rpartition("  [code]")[0].strip()
        one = runner.invoke(args=["complete", "config", "GREETING"]).output
        for shown in (cell, one.removesuffix("\n")):
            assert shown != ""
            assert _decode(shown) == value, (shown, value)


def _decode(cell: str) -> t.Any:
    try:
        return json.loads(cell)
    except ValueError:
        return cell


@pytest.mark.usefixtures("clean_env")
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_misspelt_name_gets_a_suggestion(tmp_path: Path, data: st.DataObject) -> None:
    app = make_app(tmp_path)
    keys = sorted({*app.config, "DATABASE_URL"})
    key = data.draw(st.sampled_from([k for k in keys if len(k) > 4]))
    i = data.draw(st.integers(0, len(key) - 2))
    edit = data.draw(st.sampled_from(["drop", "swap", "double"]))
    name = {
        "drop": key[:i] + key[i + 1 :],
        "swap": key[:i] + key[i + 1] + key[i] + key[i + 2 :],
        "double": key[:i] + key[i] + key[i:],
    }[edit]
    assume(name not in keys)
    result = app.test_cli_runner().invoke(args=["complete", "config", name.lower()])
    assert result.exit_code == 2
    assert f"No setting named {name.lower()!r}; did you mean " in result.output, result.output
    guess = result.output.split("did you mean ")[1].split("?")[0]
    assert guess in keys
    assert distance(name, guess) <= distance(name, key)


def test_production_refusal_still_shows_the_values_that_caused_it(tmp_path: Path) -> None:
    """Start-up refuses (a guessable SECRET_KEY, a database URL with a password): config shows the
    values and their sources, secrets hidden, then the refusal, and exits 1 as start-up does."""
    (tmp_path / "app.py").write_text(FIVE_LINES)
    (tmp_path / "settings.toml").write_text(
        '[production]\nDATABASE_URL = "postgresql://app:dbpassw0rd@127.0.0.1:1/app"\n'
    )
    env = {"FLASK_ENV": "production", "SECRET_KEY": "changeme-changeme-changeme-changeme"}
    started = _flask(tmp_path, "run", "--port", "0", **env)
    refusal = next(line for line in started.stderr.splitlines() if line.startswith("Error: "))
    assert started.returncode == 1 and "SECRET_KEY" in refusal
    result = _flask(tmp_path, "complete", "config", **env)
    assert result.returncode == 1, result.stderr
    for output in (result.stdout, result.stderr):
        assert "dbpassw0rd" not in output and "changeme" not in output
    rows = _rows(result.stdout)
    assert rows["SECRET_KEY"] == ["***", "env SECRET_KEY"]
    assert rows["SQLALCHEMY_DATABASE_URI"] == [
        "postgresql+psycopg://app:***@127.0.0.1:1/app",
        "settings.toml [production]",
    ]
    assert result.stderr.startswith("start-up refuses these settings")
    # The same first error line as start-up's, for whatever reads it.
    assert refusal in result.stderr.splitlines()
    document = _flask(tmp_path, "complete", "config", "--format", "json", **env)
    shown = json.loads(document.stdout)
    assert shown["settings"]["SECRET_KEY"] == {"value": "***", "source": "env SECRET_KEY"}
    assert [r["key"] for r in shown["refused"]][:1] == ["SECRET_KEY"]
    one = _flask(tmp_path, "complete", "config", "SECRET_KEY", **env)
    assert (one.returncode, one.stdout) == (1, "***\n")

"""``.env`` is development only, also once the ``flask`` command has exported it.

With python-dotenv installed, ``flask`` loads ``.flaskenv`` and ``.env`` into the environment
before the app exists; these tests run the real command in a subprocess whose environment they
control, so that "a real variable" and "a line Flask loaded" are what they say.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import typing as t
from pathlib import Path

import click
import flask.cli
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_complete.settings import config

STRONG = secrets.token_urlsafe(48)
OTHER = secrets.token_urlsafe(48)

APP = """\
from flask import Flask
from flask_complete import Complete

app = Flask(__name__)
Complete(app)
"""


def run_flask(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app app ARGS`` in ``root`` with only ``env`` on top of a clean environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def error_line(stderr: str) -> str:
    """The line ``flask`` prints for the refusal (warnings logged at start-up come before it)."""
    return next(line for line in stderr.splitlines() if line.startswith("Error: "))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')
    return tmp_path


def dev_env(project: Path) -> str:
    url = f"sqlite:///{project / 'dev.sqlite3'}"
    (project / ".env").write_text(f"SECRET_KEY={STRONG}\nDATABASE_URL={url}\n")
    return url


def test_production_start_refuses_secret_and_database_from_dotenv(project: Path) -> None:
    dev_env(project)
    result = run_flask(project, "run", "--port", "0", FLASK_ENV="production")
    assert result.returncode == 1, result.stderr
    # The first line says what is wrong, where it came from and what to do.
    first = error_line(result.stderr)
    assert first.startswith("Error: DATABASE_URL is set only by DATABASE_URL in "), first
    assert f"{project / '.env'}, which the flask command loaded" in first
    assert "FLASK_SKIP_DOTENV=1" in first
    assert "[config.dotenv]" in first
    lines = result.stderr.splitlines()
    assert any(line.startswith("SECRET_KEY is set only by SECRET_KEY in ") for line in lines)
    assert "Set SECRET_KEY in the real environment or in .secrets.toml" in result.stderr
    assert STRONG not in result.stderr
    assert "Traceback" not in result.stderr


def test_prefixed_names_and_flaskenv_are_refused_too(project: Path) -> None:
    (project / ".flaskenv").write_text(f"FLASK_SECRET_KEY={STRONG}\n")
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    result = run_flask(project, "complete", "config", FLASK_ENV="production", DATABASE_URL=url)
    assert result.returncode == 1
    first = error_line(result.stderr)
    assert first.startswith("Error: SECRET_KEY is set only by FLASK_SECRET_KEY in "), first
    assert str(project / ".flaskenv") in first


def test_real_variables_equal_to_the_file_are_not_punished(project: Path) -> None:
    url = dev_env(project)
    result = run_flask(
        project,
        "complete",
        "config",
        "DATABASE_URL",
        FLASK_ENV="production",
        SECRET_KEY=STRONG,
        DATABASE_URL=url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


def test_a_real_variable_wins_and_the_other_lines_still_refuse(project: Path) -> None:
    dev_env(project)
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    result = run_flask(project, "complete", "config", FLASK_ENV="production", DATABASE_URL=url)
    assert result.returncode == 1
    assert error_line(result.stderr).startswith("Error: SECRET_KEY is set only by SECRET_KEY in ")
    assert "DATABASE_URL is set only" not in result.stderr


def test_skip_dotenv_turns_the_file_off(project: Path) -> None:
    dev_env(project)
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    env = {"FLASK_ENV": "production", "SECRET_KEY": OTHER, "DATABASE_URL": url}
    result = run_flask(project, "complete", "config", "DATABASE_URL", FLASK_SKIP_DOTENV="1", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


def test_debug_from_dotenv_is_refused_outside_development(project: Path) -> None:
    (project / ".env").write_text("FLASK_DEBUG=1\n")
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    env = {"FLASK_ENV": "production", "SECRET_KEY": STRONG, "DATABASE_URL": url}
    result = run_flask(project, "complete", "config", "DATABASE_URL", **env)
    assert result.returncode == 1
    first = error_line(result.stderr)
    assert first.startswith("Error: Debug mode is on from FLASK_DEBUG=1 in "), first
    assert "Remove FLASK_DEBUG from .env on this machine" in first
    # Off is harmless.
    (project / ".env").write_text("FLASK_DEBUG=0\n")
    assert run_flask(project, "complete", "config", "DATABASE_URL", **env).returncode == 0


def test_a_child_of_a_flask_process_counts_equal_values_as_loaded(project: Path) -> None:
    """The reloader's child inherits what its parent loaded, so its own start environment
    cannot tell; equal values then count as loaded (the conservative side)."""
    url = dev_env(project)
    env = {"FLASK_ENV": "production", "SECRET_KEY": STRONG, "DATABASE_URL": url}
    result = run_flask(project, "complete", "config", FLASK_RUN_FROM_CLI="true", **env)
    assert result.returncode == 1
    assert "is set only by" in result.stderr


def test_development_uses_the_file_and_says_flask_loaded_it(project: Path) -> None:
    (project / ".env").write_text("FLASK_GREETING=hello\n")
    result = run_flask(project, "complete", "config")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("GREETING")]
    assert "hello" in line and "[env FLASK_GREETING (from .env, loaded by flask)]" in line


@pytest.fixture
def exported(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> t.Iterator[t.Callable[[str], None]]:
    """Export a ``.env`` the way the flask command does: Flask's own ``load_dotenv``."""
    saved = dict(os.environ)
    clean_env.chdir(tmp_path)

    def export(text: str) -> None:
        (tmp_path / ".env").write_text(text)
        os.environ["FLASK_RUN_FROM_CLI"] = "true"
        flask.cli.load_dotenv()

    yield export
    os.environ.clear()
    os.environ.update(saved)


def test_other_settings_from_dotenv_are_ignored_with_a_warning(
    tmp_path: Path, exported: t.Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    exported("FLASK_GREETING=hello\nFLASK_MAIL__port=25\nUNRELATED=1\n")
    app = Flask("x", root_path=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="flask_complete"):
        settings = config.load(app, env="testing", root=tmp_path)
    assert "GREETING" not in settings.values and "MAIL" not in settings.values
    found = {p.key: p for p in settings.problems}
    assert set(found) == {"GREETING", "MAIL"}  # UNRELATED is no setting: nothing to say
    assert found["GREETING"].level == "warning"
    assert found["GREETING"].message.startswith(f"FLASK_GREETING in {tmp_path / '.env'} is ignored")
    assert "settings.toml [testing]" in found["GREETING"].fix
    assert "FLASK_GREETING in" in caplog.text


def test_dotenv_origins() -> None:
    files = [("/p/.flaskenv", {"A": "1", "B": "1"}), ("/p/.env", {"B": "2", "C": "3"})]
    environ = {"A": "1", "B": "2", "C": "other"}
    # B: the later file wins, as in Flask; C: the environment has another value.
    assert config.flask_dotenv.__module__ == "flask_complete.settings.dotenv"
    from flask_complete.settings.dotenv import dotenv_origins

    assert dotenv_origins(environ, files, frozenset()) == {"A": "/p/.flaskenv", "B": "/p/.env"}
    assert dotenv_origins(environ, files, frozenset({"A"})) == {"B": "/p/.env"}
    assert dotenv_origins(environ, files, None) == {"A": "/p/.flaskenv", "B": "/p/.env"}


def test_nothing_is_taken_for_loaded_outside_the_flask_command(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.chdir(tmp_path)
    (tmp_path / ".env").write_text("FLASK_GREETING=hello\n")
    clean_env.setenv("FLASK_GREETING", "hello")
    assert config.flask_dotenv() == {}


# -- where a value came from, told truthfully ------------------------------------------------------

PRODUCTION = {"FLASK_ENV": "production", "SECRET_KEY": STRONG}


@pytest.mark.parametrize("spelling", ["True", "yes", "on"])
def test_debug_rewritten_by_flask_is_still_traced_to_its_file(project: Path, spelling: str) -> None:
    """Flask's CLI reads FLASK_DEBUG=True from .env and writes FLASK_DEBUG=1 back: the line is
    still the file's, and the refusal says so (not "in the environment")."""
    (project / ".env").write_text(f"FLASK_DEBUG={spelling}\n")
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    result = run_flask(
        project, "complete", "config", "DATABASE_URL", DATABASE_URL=url, **PRODUCTION
    )
    assert result.returncode == 1
    first = error_line(result.stderr)
    assert first.startswith(f"Error: Debug mode is on from FLASK_DEBUG={spelling} in "), first
    assert f"{project / '.env'}, which the flask command loaded" in first
    assert "in the environment" not in result.stderr


def test_debug_from_flaskenv_names_flaskenv(project: Path) -> None:
    (project / ".flaskenv").write_text("FLASK_DEBUG=1\n")
    url = f"sqlite:///{project / 'prod.sqlite3'}"
    result = run_flask(
        project, "complete", "config", "DATABASE_URL", DATABASE_URL=url, **PRODUCTION
    )
    assert result.returncode == 1
    first = error_line(result.stderr)
    assert str(project / ".flaskenv") in first
    assert "Remove FLASK_DEBUG from .flaskenv on this machine" in first
    assert "from .env" not in result.stderr


def test_a_production_value_in_secrets_toml_wins_over_a_development_dotenv(project: Path) -> None:
    """.secrets.toml [production] sets DATABASE_URL: the .env line is ignored, never claimed
    to be the only source."""
    prod = f"sqlite:///{project / 'prod.sqlite3'}"
    (project / ".secrets.toml").write_text(
        f'[production]\nSECRET_KEY = "{OTHER}"\nDATABASE_URL = "{prod}"\n'
    )
    dev_env(project)
    result = run_flask(project, "complete", "config", "DATABASE_URL", FLASK_ENV="production")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == prod
    assert "set only by" not in result.stderr
    dotenv = project / ".env"
    assert f"DATABASE_URL in {dotenv} is ignored" in result.stderr
    assert "the value from .secrets.toml [production] is used" in result.stderr
    assert STRONG not in result.stderr


_CLICK_BOOLEANS = ["1", "0", "true", "false", "True", "FALSE", "yes", "no", "on", "off", "y", "n"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_CLICK_BOOLEANS),
    st.sampled_from(["1", "0"]),
    st.booleans(),
)
def test_flask_debug_as_flask_rewrites_it(line: str, exported: str, started: bool) -> None:
    """FLASK_DEBUG counts as the file's when Flask's rewrite of the file's line is what the
    environment holds, and never when the process started with FLASK_DEBUG of its own."""
    from flask_complete.settings.dotenv import dotenv_origins

    rewritten = "1" if click.BOOL.convert(line, None, None) else "0"
    found = dotenv_origins(
        {"FLASK_DEBUG": exported},
        [("/p/.env", {"FLASK_DEBUG": line})],
        frozenset({"FLASK_DEBUG"} if started else ()),
    )
    assert (found == {"FLASK_DEBUG": "/p/.env"}) == (exported == rewritten and not started)

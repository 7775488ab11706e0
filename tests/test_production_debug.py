"""Debug mode in production: refused at start through the real ``flask`` command, and refused at
the first request when it is switched on later."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, track
from flask import Flask
from werkzeug.debug import DebuggedApplication
from werkzeug.test import Client

from flask_complete import Complete

# Random: production refuses a key made of a repeated pattern as guessable.
STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
FLASK = str(Path(sys.executable).with_name("flask"))
APP = """\
from flask import Flask
from flask_complete import Complete

app = Flask(__name__)
Complete(app)


@app.get("/")
def index():
    return "served"
"""


def _get(url: str) -> int | None:
    """The status of ``GET url``; ``None`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _project(tmp_path: Path, settings: str = "") -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "settings.toml").write_text(settings)
    return tmp_path


def _serve(cwd: Path, *args: str, **env: str) -> tuple[int | None, str, int | None]:
    """Start ``flask run`` in production; the exit status (``None`` if it kept serving), its
    output, and what ``/console`` answered while it ran."""
    port = free_port()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    environ = {
        **base,
        "FLASK_ENV": "production",
        "SECRET_KEY": STRONG,
        "DATABASE_URL": f"sqlite:///{cwd / 'prod.sqlite3'}",
        **env,
    }
    command = [FLASK, "--app", "app", *args]
    command += ["--port", str(port)] if "run" in args else []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the reloader's child goes with its parent
    ) as process:
        console: int | None = None
        status: int | None = None
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                if _get(f"http://127.0.0.1:{port}/") is not None:
                    console = _get(f"http://127.0.0.1:{port}/console")
                    break
                time.sleep(0.1)
        finally:
            status = process.poll()
            if status is None:
                os.killpg(process.pid, signal.SIGTERM)
            output, _ = process.communicate(timeout=10)
    return status, output, console


@pytest.mark.parametrize(
    ("args", "env", "settings", "source"),
    [
        (("run", "--debug"), {}, "", "--debug"),
        (("--debug", "run"), {}, "", "--debug"),
        (("run",), {"FLASK_DEBUG": "1"}, "", "FLASK_DEBUG"),
        (("run",), {}, "[production]\nDEBUG = true\n", "settings.toml [production]"),
        (("run", "--debugger"), {}, "", "--debugger"),
    ],
    ids=["run --debug", "--debug run", "FLASK_DEBUG=1", "settings DEBUG", "run --debugger"],
)
def test_debug_is_refused_at_start(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], settings: str, source: str
) -> None:
    status, output, console = _serve(_project(tmp_path, settings), *args, **env)
    assert console is None, f"it served (/console: {console})\n{output}"
    assert status == 1, output
    assert "[debug.on]" in output and source in output
    assert "Traceback" not in output


def test_production_without_debug_serves(tmp_path: Path) -> None:
    status, output, console = _serve(_project(tmp_path), "run", "--no-debug")
    assert status is None, output  # it kept serving until stopped
    assert console == 404


def test_check_deploy_names_the_debug_source(tmp_path: Path) -> None:
    status, output, _ = _serve(
        _project(tmp_path, "[production]\nDEBUG = true\n"), "complete", "check"
    )
    assert status == 1, output
    assert "debug.on" in output and "settings.toml [production]" in output


def _production_app(tmp_path: Path) -> Flask:
    app = Flask("late", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.db")
    Complete(app, env="production", root=tmp_path)
    track(app)

    @app.get("/")
    def index() -> str:
        return "served"

    return app


def test_debug_switched_on_after_init_is_refused_at_the_first_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _production_app(tmp_path)
    assert app.test_client().get("/").status_code == 200
    app.debug = True  # what app.run(debug=True) does, after Complete(app) has run
    with caplog.at_level(logging.ERROR, "flask_complete"):
        first = app.test_client().get("/")
        second = app.test_client().get("/")
    assert first.status_code == second.status_code == 500
    assert b"served" not in first.data and b"Traceback" not in first.data
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    (record,) = [r for r in errors if r.name == "flask_complete"]  # logged once
    assert "[debug.on]" in record.getMessage() and "DEBUG" in record.getMessage()


def test_the_debugger_mounted_after_init_is_refused(tmp_path: Path) -> None:
    app = _production_app(tmp_path)
    # What `flask run --debugger` or app.run(debug=True) wraps the app in.
    client = Client(DebuggedApplication(app, evalex=True))
    assert client.get("/").status_code == 500


def test_the_guard_is_registered_only_in_production(tmp_path: Path) -> None:
    def hooks(env: str) -> list[t.Any]:
        app = Flask(env, root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
        app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
        Complete(app, env=env, root=tmp_path)
        track(app)
        return [f.__name__ for f in app.before_request_funcs.get(None, [])]

    assert "refuse_debug" in hooks("production")
    assert "refuse_debug" not in hooks("development") and "refuse_debug" not in hooks("testing")

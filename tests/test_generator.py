"""``flask complete new``: the generated project installs nothing here; it is run with this
interpreter and its folder on ``PYTHONPATH``, through the commands its README gives: ``flask db
prepare``, ``flask run`` (real HTTP on loopback) and its own ``pytest``."""

from __future__ import annotations

import ast
import http.cookiejar
import json
import os
import subprocess
import sys
import typing as t
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import SERVERS, answers, drop_database, free_port, poll, require_server, stop
from conftest import unique_name as unique_database_name
from hypothesis import given
from hypothesis import strategies as st

from flask_complete.cli import complete_group
from flask_complete.cli.new import check_name

PYTHON = sys.executable
RUFF = Path(PYTHON).with_name("ruff")


def project_env(project: Path, **settings: str) -> dict[str, str]:
    """The environment of a shell in the project: none of this run's settings, the project's
    folder importable (what ``pip install -e .`` would give)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "PYTEST_"))
        and key not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "COV_CORE_SOURCE")
    }
    env["PYTHONPATH"] = str(project)
    return {**env, **settings}


def run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def generate(where: Path, name: str, *options: str) -> Path:
    """``flask complete new`` in ``where``: a folder with no app (the command needs none)."""
    env = project_env(where)
    out = run(PYTHON, "-m", "flask", "complete", "new", name, *options, cwd=where, env=env)
    assert f"wrote   {name}/" in out
    return where / name


def visit(port: int, email: str, password: str) -> tuple[str, str]:
    """The home page before and after logging in the way its form does (JSON to the form's
    action, the session cookie kept)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    base = f"http://127.0.0.1:{port}"
    with opener.open(f"{base}/", timeout=30) as response:
        before = response.read().decode()
    with opener.open(f"{base}/static/forms.js", timeout=30) as response:
        assert b"application/json" in response.read()
    login = urllib.request.Request(
        f"{base}/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Origin": base},
    )
    with opener.open(login, timeout=30) as response:
        assert json.load(response)["user"]["email"] == email
    with opener.open(f"{base}/", timeout=30) as response:
        after = response.read().decode()
    return before, after


def serve_and_visit(project: Path, env: dict[str, str]) -> tuple[str, str]:
    port = free_port()
    command = [PYTHON, "-m", "flask", "run", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        poll(lambda: answers(port) or server.poll() is not None, 60, "flask run")
        assert server.poll() is None, "flask run exited"
        return visit(port, "demo@example.com", "demo password")
    finally:
        stop(server)


def check_project(project: Path, env: dict[str, str]) -> None:
    """The README's sequence: prepare, check, serve, log in, the project's own tests."""
    out = run(PYTHON, "-m", "flask", "db", "prepare", cwd=project, env=env)
    assert "seeded" in out
    out = run(PYTHON, "-m", "flask", "db", "check", cwd=project, env=env)
    assert "database matches the models and the migrations" in out
    before, after = serve_and_visit(project, env)
    assert 'action="/auth/login"' in before and 'name="password"' in before
    assert "Your notes" in after and "demo@example.com" in after
    out = run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env)
    assert "5 passed" in out, out


def test_a_sqlite_project_migrates_serves_its_login_page_and_passes_its_tests(
    tmp_path: Path,
) -> None:
    (tmp_path / "blog").mkdir()  # an empty folder is fine
    project = generate(tmp_path, "blog")
    pyproject = (project / "pyproject.toml").read_text()
    assert '"flask-complete[pytest]>=' in pyproject and 'flask_app = "blog"' in pyproject
    assert (project / ".secrets.toml").stat().st_mode & 0o077 == 0
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 1
    check_project(project, project_env(project))
    assert (project / "instance" / "blog-dev.sqlite3").is_file()


@pytest.mark.postgres
def test_a_postgresql_project_on_the_server(tmp_path: Path) -> None:
    require_server("postgres")
    name = unique_database_name("fc_new")
    project = generate(tmp_path, "shop", "--database", "postgresql")
    pyproject = (project / "pyproject.toml").read_text()
    assert '"flask-complete[pytest,postgres]>=' in pyproject
    assert 'DATABASE_URL = "postgresql://' in (project / "settings.toml").read_text()
    # The server of this run instead of the settings' default; prepare creates the database.
    env = project_env(project, DATABASE_URL=f"{SERVERS['postgres']}/{name}")
    try:
        check_project(project, env)
    finally:
        drop_database("postgres", name)
        drop_database("postgres", f"test_{name}")


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed (dependency group style)")
def test_the_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    project = generate(tmp_path, "blog", "--database", "mysql")
    assert '"flask-complete[pytest,mysql]>=' in (project / "pyproject.toml").read_text()
    env = project_env(project)
    run(str(RUFF), "check", "--no-cache", ".", cwd=project, env=env)
    run(str(RUFF), "format", "--no-cache", "--check", ".", cwd=project, env=env)


def new(where: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> t.Any:
    monkeypatch.chdir(where)
    return CliRunner().invoke(complete_group, ["new", *args])


def test_a_folder_that_is_not_empty_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blog").mkdir()
    (tmp_path / "blog" / "notes.txt").write_text("mine")
    result = new(tmp_path, monkeypatch, "blog")
    assert result.exit_code == 2
    assert "exists and is not an empty folder" in result.output
    assert "Choose another NAME, or move that folder away" in result.output
    assert [p.name for p in (tmp_path / "blog").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("name", ["my-blog", "2blog", "class", "json", "flask_complete"])
def test_a_name_that_cannot_be_the_package_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    result = new(tmp_path, monkeypatch, name)
    assert result.exit_code == 2 and "Invalid value for NAME" in result.output, result.output
    assert "Choose another name" in result.output or "e.g. my_blog" in result.output
    assert list(tmp_path.iterdir()) == []


@given(st.text(max_size=12))
def test_an_accepted_name_is_one_import_statement_can_name(name: str) -> None:
    """Property: every name the command accepts is a plain ASCII identifier that Python parses
    as one module name in ``import NAME``, and imports nothing yet."""
    try:
        check_name(name)
    except click.BadParameter as e:
        assert str(e.message)
        return
    statement = ast.parse(f"import {name}").body
    assert name.isascii() and not name.startswith("_")
    assert isinstance(statement[0], ast.Import) and statement[0].names[0].name == name
    assert name not in sys.modules and name not in sys.stdlib_module_names


def test_without_pytest_only_the_plugin_needs_it(tmp_path: Path) -> None:
    """An install without the [pytest] extra: every module but the plugin imports, and the
    generated project's commands run (pytest is not the first error a newcomer meets)."""
    project = generate(tmp_path, "blog")
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['pytest'] = None  # not installed\n")
    env = project_env(project, PYTHONPATH=f"{tmp_path}{os.pathsep}{project}")
    script = (
        "import importlib, pkgutil, flask_complete\n"
        "for m in pkgutil.walk_packages(flask_complete.__path__, 'flask_complete.'):\n"
        "    if m.name != 'flask_complete.pytest_plugin':\n"
        "        importlib.import_module(m.name)\n"
        "import pytest\n"
    )
    done = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True)
    assert done.stderr.strip().endswith(
        "ModuleNotFoundError: import of pytest halted; None in sys.modules"
    ), done.stderr
    out = run(PYTHON, "-m", "flask", "db", "prepare", cwd=project, env=env)
    assert "seeded" in out

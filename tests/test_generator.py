"""``flask complete new``, the way a newcomer meets it.

The first two tests type the issue's commands in a temporary folder: flask-complete, built into a
wheel from this checkout, is installed with ``constraints.txt`` into a fresh virtual environment
(pip's own cache makes a second run fast); there ``flask complete new``, ``pip install -e .``,
``flask db prepare``, ``flask run`` (real HTTP on loopback, logged in through the login form) and
the project's own ``pytest`` run from the environment's ``bin/``. The other tests run the command
with this interpreter, the checkout on ``PYTHONPATH``.
"""

from __future__ import annotations

import ast
import html
import http.cookiejar
import os
import re
import subprocess
import sys
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import SERVERS, answers, drop_database, free_port, poll, require_server, stop
from conftest import unique_name as unique_database_name
from hypothesis import given
from hypothesis import strategies as st

import flask_complete
from flask_complete.cli import complete_group
from flask_complete.cli.new import DEMO_LOGIN, check_name

PYTHON = sys.executable
RUFF = Path(PYTHON).with_name("ruff")
REPO = Path(__file__).resolve().parents[1]
#: Where the flask_complete this run imports lives: the subprocesses import the same one.
SOURCE = Path(flask_complete.__file__).resolve().parents[1]
#: What a shell of the user's would not have: this run's settings and import path.
_RUN_ONLY = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")


def shell_env(**settings: str) -> dict[str, str]:
    """The environment of a user's shell: none of this test run's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "PYTEST_", "COV_")) and key not in _RUN_ONLY
    }
    return {**env, **settings}


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    # A bound against a hung command only; pip may download on a cold cache.
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def passed(pytest_output: str) -> bool:
    """Whether ``pytest -q`` passed every test: nothing skipped, failed or warned."""
    return re.search(r"^\d+ passed in [\d.]+s", pytest_output, re.MULTILINE) is not None


class Venv:
    """A fresh virtual environment (``python -m venv``), with pip run for it from this
    interpreter (``pip --python``): the same installs, without seeding pip into each one."""

    def __init__(self, path: Path) -> None:
        run(PYTHON, "-m", "venv", "--without-pip", path, cwd=path.parent, env=shell_env())
        self.bin = path / ("Scripts" if os.name == "nt" else "bin")
        self.path = path

    def env(self, **settings: str) -> dict[str, str]:
        """A shell with the environment activated."""
        path = os.pathsep.join([str(self.bin), os.environ.get("PATH", "")])
        env = shell_env(PATH=path, VIRTUAL_ENV=str(self.path), **settings)
        # pip installs without byte-compiling (Faker's hundreds of locales cost more than all
        # the rest): each module is compiled when first imported, and kept.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def pip_install(self, *args: str, cwd: Path) -> str:
        constraints = str(REPO / "constraints.txt")
        command = [PYTHON, "-m", "pip", "--python", str(self.bin / "python"), "install"]
        return run(*command, "--no-compile", "-c", constraints, *args, cwd=cwd, env=self.env())

    def run(self, program: str, *args: str, cwd: Path, **settings: str) -> str:
        return run(self.bin / program, *args, cwd=cwd, env=self.env(**settings))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flask-complete built from this checkout, as the index would serve it."""
    out = tmp_path_factory.mktemp("dist")
    run(PYTHON, "-m", "pip", "wheel", "--no-deps", "-w", out, REPO, cwd=out, env=shell_env())
    (built,) = out.glob("flask_complete-*.whl")
    return built


class Form(t.NamedTuple):
    action: str
    fields: dict[str, str]


def first_form(page: str) -> Form:
    """The first ``<form method="post">`` of ``page``: its action and hidden fields."""
    found = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page, re.DOTALL)
    assert found is not None, page
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found[2])
    return Form(html.unescape(found[1]), {k: html.unescape(v) for k, v in hidden})


def browse(port: int, email: str, password: str) -> tuple[str, str, str]:
    """As a browser: open the home page, fill in the login form it leads to and send it.
    Returns the URL the home page led to, that page, and the page after the login."""
    base = f"http://127.0.0.1:{port}"
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    browser.addheaders = [("Accept", "text/html"), ("Origin", base)]
    with browser.open(f"{base}/", timeout=30) as response:
        landed, login_page = response.url, response.read().decode()
    form = first_form(login_page)
    data = urllib.parse.urlencode({**form.fields, "email": email, "password": password})
    with browser.open(urllib.parse.urljoin(landed, form.action), data.encode(), 30) as response:
        assert response.url == f"{base}/", response.url
        after = response.read().decode()
    return landed, login_page, after


def serve_and_browse(venv: Venv, project: Path, **settings: str) -> tuple[str, str, str]:
    """``flask run`` on a free loopback port, browsed once (see :func:`browse`)."""
    port = free_port()
    command = [venv.bin / "flask", "run", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command,
        cwd=project,
        env=venv.env(**settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: answers(port) or server.poll() is not None, 60, "flask run")
        assert server.poll() is None, "flask run exited"
        return browse(port, *DEMO_LOGIN)
    finally:
        stop(server)


def the_first_hour(
    where: Path, wheel: Path, name: str, *options: str, **settings: str
) -> tuple[Path, str]:
    """The issue's commands in ``where``, the project's database settings in ``settings``:
    ``pip install flask-complete``, ``flask complete new``, ``cd NAME && pip install -e .``,
    ``flask db prepare``, ``flask run`` and a login, ``pytest``. Returns the project and the
    output of ``flask complete new``."""
    venv = Venv(where / ".venv")
    venv.pip_install(f"{wheel}[pytest]", cwd=where)
    out = venv.run("flask", "complete", "new", name, *options, cwd=where)
    project = where / name
    venv.pip_install("-e", ".", cwd=project)

    prepared = venv.run("flask", "db", "prepare", cwd=project, **settings)
    assert "seeded (user +1, note +2)" in prepared
    checked = venv.run("flask", "db", "check", cwd=project, **settings)
    assert "database matches the models and the migrations" in checked

    landed, login_page, after = serve_and_browse(venv, project, **settings)
    assert urllib.parse.urlsplit(landed).path == "/auth/login", landed
    assert f"<title>Log in · {name}</title>" in login_page, login_page
    assert 'name="password"' in login_page and "style.css" in login_page
    assert "Your notes" in after and DEMO_LOGIN[0] in after
    assert after.count("<li>") == 2 and "Add note" in after and "<script" not in after

    tested = venv.run("pytest", "-q", cwd=project, **settings)
    assert passed(tested), tested
    return project, out


@pytest.mark.slow
def test_the_first_hour_on_sqlite(tmp_path: Path, wheel: Path) -> None:
    project, out = the_first_hour(tmp_path, wheel, "blog")
    assert DEMO_LOGIN[0] in out and "flask run --debug" in out
    pyproject = (project / "pyproject.toml").read_text()
    assert '"flask-complete[pytest]>=' in pyproject and 'flask_app = "blog"' in pyproject
    assert (project / ".secrets.toml").stat().st_mode & 0o077 == 0
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 1
    assert (project / "instance" / "blog-dev.sqlite3").is_file()


@pytest.mark.slow
@pytest.mark.postgres
def test_the_first_hour_on_postgresql(tmp_path: Path, wheel: Path) -> None:
    require_server("postgres")
    name = unique_database_name("fc_new")
    # The server of this run instead of the settings' default; prepare creates the database.
    url = f"{SERVERS['postgres']}/{name}"
    try:
        project, _ = the_first_hour(
            tmp_path, wheel, "shop", "--database", "postgresql", DATABASE_URL=url
        )
    finally:
        drop_database("postgres", name)
        drop_database("postgres", f"test_{name}")
    assert '"flask-complete[pytest,postgres]>=' in (project / "pyproject.toml").read_text()
    assert 'DATABASE_URL = "postgresql://' in (project / "settings.toml").read_text()
    assert not (project / "instance").exists()


# -- with this interpreter -------------------------------------------------------------------------


def project_env(project: Path, *more: Path) -> dict[str, str]:
    """A shell in ``project`` that imports it and this run's flask_complete (as ``pip install
    -e .`` would give)."""
    return shell_env(PYTHONPATH=os.pathsep.join(map(str, [*more, project, SOURCE])))


def generate(where: Path, name: str, *options: str) -> Path:
    """``flask complete new`` in ``where``: a folder with no app (the command needs none)."""
    env = project_env(where)
    out = run(PYTHON, "-m", "flask", "complete", "new", name, *options, cwd=where, env=env)
    assert f"wrote   {name}/" in out
    return where / name


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed (dependency group tests)")
def test_the_generated_code_is_ruff_clean_and_its_pages_need_no_script(tmp_path: Path) -> None:
    project = generate(tmp_path, "blog", "--database", "mysql")
    assert '"flask-complete[pytest,mysql]>=' in (project / "pyproject.toml").read_text()
    assert not list(project.rglob("*.js"))
    for template in (project / "blog" / "templates").glob("*.html"):
        assert "<script" not in template.read_text(), template
    env = project_env(project)
    run(RUFF, "check", "--no-cache", ".", cwd=project, env=env)
    run(RUFF, "format", "--no-cache", "--check", ".", cwd=project, env=env)


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


@pytest.mark.slow
def test_without_pytest_only_the_plugin_needs_it(tmp_path: Path) -> None:
    """An install without the [pytest] extra: every module but the plugin imports, and the
    generated project's commands run (pytest is not the first error a newcomer meets)."""
    project = generate(tmp_path, "blog")
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['pytest'] = None  # not installed\n")
    env = project_env(project, tmp_path)
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

"""Retrofitting existing apps (principle 1, "Retrofit first").

``tests/shapes/`` holds four existing apps in layouts common in open-source Flask projects, each
with its own pytest suite (see ``tests/shapes/README.md``). For each one: its suite passes with
flask_complete installed, the retrofit is a patch of under 30 lines, the suite passes unchanged
after it, and tests using the plugin's fixtures run on the app of the suite's own ``app`` fixture,
rolled back, the development database untouched. Then the retrofit bugs, each reproduced alone.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

# pytester removes the modules a test imports when it ends; a dialect imported again re-registers
# its SQL functions (an SAWarning, so an error here). Import what these tests load up front.
import sqlalchemy.dialects.mysql.pymysql
import sqlalchemy.dialects.postgresql.psycopg
from conftest import (
    SERVERS,
    database_exists,
    drop_database,
    new_database,
    require_server,
    unique_name,
)

# Whole processes (make test-slow): the shapes' own suites and commands, run as processes.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]

SHAPES = Path(__file__).parent / "shapes"
#: Unrelated plugins installed here take seconds to import in every subprocess run.
QUIET = ("-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:faker")
#: Most lines a retrofit may change (added plus removed, as difflib counts them).
MAX_PATCH = 30
STORED_SUFFIX = ".txt"  # conftest.py and test_*.py of a shape are stored as *.py.txt

# -- copying a shape, retrofitting it ------------------------------------------------------------


def _copy_tree(source: Path, dest: Path) -> list[Path]:
    """Copy ``source`` into ``dest``; ``x.py.txt`` becomes ``x.py``. Returns the files written."""
    written = []
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source)
        if relative.name.endswith(".py" + STORED_SUFFIX):
            relative = relative.with_name(relative.name.removesuffix(STORED_SUFFIX))
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def flask_db_init(folder: Path) -> None:
    """Write Flask-Migrate's own ``flask`` template into ``folder`` (what ``flask db init``
    does), keeping the files already there (the shape's revisions)."""
    from alembic import command
    from flask_migrate import Config

    fresh = folder.parent / f".{folder.name}-init"
    config = Config()
    config.set_main_option("script_location", str(fresh))
    config.config_file_name = str(fresh / "alembic.ini")
    command.init(config, str(fresh), template="flask")
    for path in fresh.iterdir():
        if path.is_file() and not (folder / path.name).exists():
            shutil.copyfile(path, folder / path.name)
    shutil.rmtree(fresh)


def copy_shape(name: str, dest: Path) -> Path:
    """The shape's project as its users have it, in ``dest``."""
    _copy_tree(SHAPES / name / "project", dest)
    migrations = dest / "migrations"
    if migrations.is_dir() and not (migrations / "env.py").exists():
        flask_db_init(migrations)
    return dest


def retrofit(name: str, dest: Path) -> str:
    """Apply the shape's retrofit to ``dest``; return it as a unified diff."""
    overlay = SHAPES / name / "retrofit"
    patch = []
    for path in sorted(overlay.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(overlay)
        if relative.name.endswith(".py" + STORED_SUFFIX):
            relative = relative.with_name(relative.name.removesuffix(STORED_SUFFIX))
        target = dest / relative
        old = target.read_text().splitlines(keepends=True) if target.exists() else []
        new = path.read_text().splitlines(keepends=True)
        patch += difflib.unified_diff(old, new, f"a/{relative}", f"b/{relative}", n=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return "".join(patch)


def changed_lines(patch: str) -> int:
    """Lines a unified diff adds or removes (a changed line counts twice)."""
    return sum(
        1
        for line in patch.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    )


def add_plugin_tests(name: str, dest: Path) -> None:
    """The tests a user writes after the retrofit, with the plugin's fixtures."""
    _copy_tree(SHAPES / name / "plugin", dest)


# -- development databases ------------------------------------------------------------------------


@dataclass
class DevDatabase:
    """A real development database with a sentinel row, to prove no test run touched it."""

    url: str
    table: str
    columns: str
    row: str
    kind: str = "sqlite"
    name: str | None = None
    #: The environment variable that names it for the app, if any.
    env_var: str | None = None

    @classmethod
    def on_server(cls, kind: str, table: str, columns: str, row: str, env_var: str) -> DevDatabase:
        require_server(kind)
        name = unique_name("fcdev")
        return cls(f"{SERVERS[kind]}/{name}", table, columns, row, kind, name, env_var)

    def create(self) -> None:
        if self.kind == "sqlite":
            Path(sa.make_url(self.url).database or "").parent.mkdir(parents=True, exist_ok=True)
        elif self.name:
            new_database(self.kind, self.name)
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE TABLE {self.table} ({self.columns})")
                conn.exec_driver_sql(f"INSERT INTO {self.table} VALUES ({self.row})")
        finally:
            engine.dispose()

    def snapshot(self) -> t.Any:
        if self.kind == "sqlite":
            return hashlib.sha256(Path(sa.make_url(self.url).database or "").read_bytes()).digest()
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                tables = sorted(sa.inspect(conn).get_table_names())
                rows = conn.exec_driver_sql(f"SELECT * FROM {self.table}").all()
                return tables, [tuple(r) for r in rows]
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self.kind != "sqlite" and self.name:
            drop_database(self.kind, self.name)


def sqlite_files(root: Path) -> list[str]:
    """Every SQLite database file under ``root``, relative to it."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.read_bytes()[:16] == b"SQLite format 3\x00":
            found.append(str(path.relative_to(root)))
    return sorted(found)


# -- the shapes -----------------------------------------------------------------------------------


@dataclass
class ShapeRun:
    """What one shape's test needs: its suites' sizes and its development databases."""

    name: str
    own_tests: int
    plugin_tests: int
    #: The development databases in use before and after the retrofit (the URL may move).
    dev: t.Callable[[Path], tuple[list[DevDatabase], list[DevDatabase]]]
    env: dict[str, str] = field(default_factory=dict)
    #: A server for the suite's own test database, named by TEST_DATABASE_URL (as CI does).
    test_server: str | None = None


def _factory_config_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # Config's "sqlite:///app.db" (Flask-SQLAlchemy puts it in instance/); after the retrofit
    # the bundle's development default, instance/app-dev.sqlite3.
    def user_table(name: str) -> DevDatabase:
        return DevDatabase(
            f"sqlite:///{root / 'instance' / name}",
            "user",
            "id INTEGER PRIMARY KEY, username VARCHAR(64), email VARCHAR(120), "
            "password_hash VARCHAR(256)",
            "1, 'sentinel', 'sentinel@example.com', NULL",
        )

    return [user_table("app.db")], [user_table("app-dev.sqlite3")]


def _flaskr_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # instance/flaskr.sqlite, the tutorial's file; after the retrofit SQLAlchemy opens it too.
    dev = DevDatabase(
        f"sqlite:///{root / 'instance' / 'flaskr.sqlite'}",
        "user",
        "id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, "
        "password TEXT NOT NULL",
        "1, 'sentinel', 'x'",
    )
    return [dev], [dev]


def _project_template_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # DATABASE_URL (required by its settings.py) on PostgreSQL, as the template's docs set up.
    dev = DevDatabase.on_server(
        "postgres",
        "users",
        "id SERIAL PRIMARY KEY, username VARCHAR(80) UNIQUE NOT NULL",
        "1, 'sentinel'",
        "DATABASE_URL",
    )
    return [dev], [dev]


def _src_layout_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # "sqlite:///tasktracker.sqlite" in code, in the instance folder; kept by the retrofit.
    dev = DevDatabase(
        f"sqlite:///{root / 'instance' / 'tasktracker.sqlite'}",
        "project",
        "id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE",
        "1, 'sentinel'",
    )
    return [dev], [dev]


def _config_dict_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # DevConfig's file beside config.py; code keeps it after the retrofit.
    dev = DevDatabase(
        f"sqlite:///{root / 'data-dev.sqlite'}",
        "users",
        "id INTEGER PRIMARY KEY, email VARCHAR(64), password_hash VARCHAR(256)",
        "1, 'sentinel@example.com', NULL",
    )
    return [dev], [dev]


SHAPE_RUNS = {
    "factory_config": ShapeRun("factory_config", 7, 4, _factory_config_dev),
    "flaskr": ShapeRun("flaskr", 24, 3, _flaskr_dev),
    "project_template": ShapeRun(
        "project_template", 15, 4, _project_template_dev, {"SECRET_KEY": "x" * 40}
    ),
    "src_layout": ShapeRun("src_layout", 9, 5, _src_layout_dev),
    "src_layout-mysql": ShapeRun("src_layout", 9, 5, _src_layout_dev, test_server="mysql"),
    # FLASK_CONFIG says production: the plugin's test run is in testing all the same.
    "config_dict": ShapeRun("config_dict", 7, 3, _config_dict_dev, {"FLASK_CONFIG": "production"}),
}


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("warning", "warnings")}


@pytest.mark.parametrize("shape", list(SHAPE_RUNS))
def test_shape_retrofit(
    shape: str, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """The shape's own suite passes before and after its retrofit (< 30 lines); tests using
    the plugin's fixtures on its own ``app`` fixture pass, rolled back; the dev data untouched."""
    spec = SHAPE_RUNS[shape]
    root = pytester.path
    for key, value in spec.env.items():
        clean_env.setenv(key, value)
    copy_shape(spec.name, root)
    databases, after_dev = spec.dev(root)
    test_database = unique_name("test_fcshape") if spec.test_server else None
    try:
        if spec.test_server and test_database:
            url = new_database(spec.test_server, test_database)
            clean_env.setenv("TEST_DATABASE_URL", url)
        for database in databases:
            database.create()
            if database.env_var:
                clean_env.setenv(database.env_var, database.url)
        before = [d.snapshot() for d in databases]

        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": spec.own_tests}, result.stdout.str()
        assert "flask_complete:" not in result.stdout.str(), "the plugin stays out of the way"

        patch = retrofit(spec.name, root)
        print(patch)
        assert 0 < changed_lines(patch) < MAX_PATCH, patch
        for database in after_dev:
            if database not in databases:
                database.create()
                databases.append(database)
                before.append(database.snapshot())

        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": spec.own_tests}, result.stdout.str()

        add_plugin_tests(spec.name, root)
        result = pytester.runpytest_subprocess(*QUIET, "-v", "tests/test_with_plugin.py")
        assert _outcomes(result) == {"passed": spec.plugin_tests}, result.stdout.str()
        assert [d.snapshot() for d in databases] == before, "a development database changed"
        files = [d.url.removeprefix(f"sqlite:///{root}/") for d in databases if d.kind == "sqlite"]
        assert sqlite_files(root) == sorted(files), "no test database is left behind"
    finally:
        for database in databases + after_dev:
            database.drop()
        if spec.test_server and test_database:
            drop_database(spec.test_server, test_database)


# -- reproductions: the suite's own `app` fixture is the app -------------------------------------

NOTES_APP = """
from flask import Flask, current_app, request
from flask_login import current_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flask_complete import Complete
from flask_complete.auth import UserMixin, login_required


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(UserMixin, db.Model):
    pass


class Note(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    owner: Mapped[User | None] = relationship()


def create_app():
    app = Flask(__name__)
    Complete(app, db=db, user_model=User)

    @app.post("/notes")
    def add():
        db.session.add(Note(title=request.json["title"]))
        db.session.commit()
        return "", 201

    @app.get("/notes")
    def titles():
        return db.session.scalars(select(Note.title).order_by(Note.id)).all()

    @app.get("/mine")
    @login_required
    def mine():
        return db.session.scalars(select(Note.title).filter_by(owner_id=current_user.id)).all()

    @app.get("/greeting")
    def greeting():
        return current_app.config.get("GREETING", "")

    @app.cli.command("count")
    def count():
        print(db.session.scalar(select(func.count()).select_from(Note)))

    return app
"""

NOTES_FACTORIES = """
import factory
from factory.alchemy import SQLAlchemyModelFactory

from flask_complete.factories import ModelFactory
from notesapp import Note, User, db


class NoteFactory(ModelFactory):
    class Meta:
        model = Note

    title = factory.Sequence(lambda n: f"note {n}")


class BoundNoteFactory(SQLAlchemyModelFactory):
    # Bound at import, as many suites have it: db.session is the app's scoped session.
    class Meta:
        model = Note
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "flush"

    title = factory.Sequence(lambda n: f"bound {n}")


class UserFactory(ModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
"""

#: The ways a conftest has its own ``app``: built per session, per test, or imported.
CONFTEST_APPS = {
    "session-scoped": """
        import pytest
        from notesapp import create_app

        @pytest.fixture(scope="session")
        def app():
            return create_app()
        """,
    "function-scoped": """
        import pytest
        from notesapp import create_app

        @pytest.fixture
        def app():
            app = create_app()
            app.config["NOTES_PER_PAGE"] = 10
            yield app
        """,
    "module-app": """
        import pytest
        from notesapp.wsgi import app as application

        @pytest.fixture
        def app():
            return application
        """,
    # Its own client too: Flask reuses the test's pushed app context for each of its requests.
    "own-client": """
        import pytest
        from notesapp import create_app

        @pytest.fixture(scope="session")
        def app():
            return create_app()

        @pytest.fixture
        def client(app):
            return app.test_client()
        """,
}

EVERY_FIXTURE = """
import urllib.request

import pytest
import sqlalchemy as sa
from flask import current_app

from notesapp import Note, User
from notesapp.factories import BoundNoteFactory


def counts(db):
    return [
        db.session.scalar(sa.select(sa.func.count()).select_from(model)) for model in (Note, User)
    ]


def test_the_conftest_app_with_its_context_pushed(app, db):
    assert current_app._get_current_object() is app
    db.session.add(Note(title="in the body"))
    db.session.commit()
    assert counts(db) == [1, 0]


def test_context_pushed_for_db_alone_and_the_commit_rolled_back(db):
    assert current_app.name == "notesapp"
    assert counts(db) == [0, 0]


def test_client_views_and_factories(db, client, note_factory, bound_note_factory):
    note_factory(title="a")
    bound_note_factory(title="b")
    BoundNoteFactory(title="c")
    assert client.post("/notes", json={"title": "d"}).status_code == 201
    assert client.get("/notes").json == ["a", "b", "c", "d"]
    assert counts(db) == [4, 0]


def test_runner(db, runner, note_factory):
    note_factory.create_batch(3)
    assert runner.invoke(args=["count"]).output.strip() == "3"


def test_query_counting(db, assert_num_queries, assert_max_queries, note_factory):
    note_factory.create_batch(2)
    with assert_num_queries(1):
        db.session.scalars(sa.select(Note)).all()
    with pytest.raises(AssertionError, match="at most 1 SQL statements, 2 ran"):
        with assert_max_queries(1):
            counts(db)


def test_auth_client(db, auth_client, auth_user, note_factory):
    note_factory(title="mine", owner=auth_user)
    note_factory(title="not mine")
    assert auth_client.get("/auth/me").json["user"]["email"] == auth_user.email
    assert auth_client.get("/mine").json == ["mine"]


def test_login(db, login, client, user_factory, note_factory):
    ann = user_factory()
    note_factory(title="ann's", owner=ann)
    assert client.get("/mine").status_code == 401
    assert login(ann).get("/mine").json == ["ann's"]


def test_two_users_on_two_clients(db, app, login, client, user_factory, note_factory):
    ann, bob = user_factory(), user_factory()
    note_factory(title="ann's", owner=ann)
    note_factory(title="bob's", owner=bob)
    assert login(ann).get("/mine").json == ["ann's"]
    assert login(bob, to=app.test_client()).get("/mine").json == ["bob's"]
    assert client.get("/mine").json == ["ann's"]
    assert app.test_client().get("/mine").status_code == 401


def test_settings(app, settings, client):
    settings["GREETING"] = "hello"
    assert app.config["GREETING"] == "hello"
    assert client.get("/greeting").data == b"hello"


def test_settings_restored(app):
    assert "GREETING" not in app.config


def test_transactional_db(transactional_db, client):
    assert client.post("/notes", json={"title": "kept"}).status_code == 201
    transactional_db.session.remove()
    with transactional_db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT title FROM note")).scalars().all() == ["kept"]


def test_live_server(live_server, settings):
    settings["GREETING"] = "served"
    with urllib.request.urlopen(live_server.url + "/greeting", timeout=5) as response:
        assert response.read() == b"served"
    request = urllib.request.Request(
        live_server.url + "/notes", data=b'{"title": "http"}',
        headers={"Content-Type": "application/json"}, method="POST",
    )
    assert urllib.request.urlopen(request, timeout=5).status == 201


def test_everything_rolled_back_or_emptied(db):
    assert counts(db) == [0, 0]
"""

EVERY_FIXTURE_TESTS = 13


class NotesProject:
    """A project with the ``notesapp`` package, ``settings.toml`` and a development database
    holding a sentinel note."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dev = DevDatabase(
            f"sqlite:///{root / 'instance' / 'notes.sqlite3'}",
            "note",
            "id INTEGER PRIMARY KEY, title VARCHAR(100), owner_id INTEGER",
            "1, 'sentinel', NULL",
        )

    def write(self, ini: str = "") -> None:
        package = self.root / "notesapp"
        package.mkdir()
        (package / "__init__.py").write_text(NOTES_APP.lstrip())
        (package / "factories.py").write_text(NOTES_FACTORIES.lstrip())
        (package / "wsgi.py").write_text("from notesapp import create_app\n\napp = create_app()\n")
        (self.root / "settings.toml").write_text(f'[default]\nDATABASE_URL = "{self.dev.url}"\n')
        if ini:
            (self.root / "pytest.ini").write_text(textwrap.dedent(ini).lstrip())
        self.dev.create()

    def stray_files(self) -> list[str]:
        """SQLite files left behind by the run (the development one aside)."""
        return [f for f in sqlite_files(self.root) if f != "instance/notes.sqlite3"]


@pytest.mark.parametrize("conftest", list(CONFTEST_APPS))
def test_every_fixture_uses_the_conftest_app(
    conftest: str, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """With an ``app`` fixture of the suite's own, every fixture of ours uses that app: its
    context pushed for the whole test, ``db.session`` in the body, in views and in factories
    bound at import, everything rolled back, the development database untouched."""
    project = NotesProject(pytester.path)
    project.write("[pytest]\nflask_factories = notesapp.factories\n")
    before = project.dev.snapshot()
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(textwrap.dedent(CONFTEST_APPS[conftest]).lstrip())
    (tests / "test_fixtures.py").write_text(EVERY_FIXTURE.lstrip())
    result = pytester.runpytest_subprocess(*QUIET, "-v")
    assert _outcomes(result) == {"passed": EVERY_FIXTURE_TESTS}, result.stdout.str()
    assert project.dev.snapshot() == before
    assert project.stray_files() == [], "the test database is dropped after the run"


# -- reproductions: FLASK_APP exported and a plain `pytest` ---------------------------------------

FLASK_APP_CONFTEST = """
import pytest

from notesapp import Note


@pytest.fixture
def note(db):
    found = Note(title="from a fixture")
    db.session.add(found)
    db.session.flush()
    return found
"""

FLASK_APP_TESTS = """
from sqlalchemy import func, select

from notesapp import Note


def test_model_imported_and_fixture(db, note, client):
    assert client.get("/notes").json == ["from a fixture"]
    assert db.session.scalar(select(func.count()).select_from(Note)) == 1


def test_rolled_back(db):
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0
"""


def test_flask_app_exported_and_a_plain_pytest(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """``FLASK_APP=notesapp pytest`` in the project: the app module is importable as
    ``flask --app`` makes it (the project folder on ``sys.path``), for the conftest and for
    test modules, with tests in ``tests/`` (no ``__init__.py``) and no ini ``pythonpath``."""
    project = NotesProject(pytester.path)
    project.write()
    before = project.dev.snapshot()
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(FLASK_APP_CONFTEST.lstrip())
    (tests / "test_notes.py").write_text(FLASK_APP_TESTS.lstrip())
    # The console script, not `python -m pytest`, which puts the working directory on
    # sys.path itself.
    env = {**os.environ, "FLASK_APP": "notesapp"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pytest"), *QUIET, "-v"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
    assert project.dev.snapshot() == before
    assert project.stray_files() == []


# -- reproductions: every SQLite URL in app.config is absolute ------------------------------------


def old_env_project(root: Path, url_in_code: bool = False) -> Path:
    """The ``factory_config`` shape, retrofitted, with the env.py of Flask-Migrate 2.x."""
    copy_shape("factory_config", root)
    retrofit("factory_config", root)
    shutil.copyfile(SHAPES / "factory_config" / "old_env.py", root / "migrations" / "env.py")
    if url_in_code:
        config = root / "config.py"
        config.write_text(
            config.read_text().replace(
                "    POSTS_PER_PAGE",
                '    SQLALCHEMY_DATABASE_URI = "sqlite:///app.db"\n    POSTS_PER_PAGE',
            )
        )
    return root


def flask(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``flask`` console script, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


SERVE_A_PAGE = """
import sys
sys.path.insert(0, sys.argv[1])
from app import create_app

client = create_app().test_client()
form = {"username": "ann", "email": "ann@example.com", "password": "pw"}
print(client.post("/auth/register", data=form).status_code)
response = client.get("/users")
print(response.status_code, response.get_data(as_text=True))
"""


@pytest.mark.parametrize(
    ("url_in_code", "database"),
    [(False, "instance/app-dev.sqlite3"), (True, "instance/app.db")],
    ids=["bundle-default", "relative-in-config"],
)
def test_old_env_py_migrates_the_file_the_app_opens(
    url_in_code: bool, database: str, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """An old env.py reads app.config["SQLALCHEMY_DATABASE_URI"]: ``flask db upgrade`` run from
    another directory migrates the file the app opens, and leaves none elsewhere."""
    project = old_env_project(pytester.path / "microblog", url_in_code)
    parent = pytester.path
    upgrade = flask("--app", "microblog/app", "db", "upgrade", cwd=parent)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    current = flask("--app", "microblog/app", "db", "current", cwd=parent)
    assert "716caca77ded (head)" in current.stdout, current.stdout + current.stderr

    served = subprocess.run(
        [sys.executable, "-c", SERVE_A_PAGE, str(project)],
        cwd=parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.stdout.splitlines()[-2:] == ["302", "200 ann"], served.stdout + served.stderr
    assert sqlite_files(parent) == [f"microblog/{database}"]


OLD_ENV_TESTS = """
import sqlalchemy as sa

from app.models import User


def test_register_and_list(db, client):
    assert "alembic_version" in sa.inspect(db.session.connection()).get_table_names()
    form = {"username": "ann", "email": "ann@example.com", "password": "pw"}
    assert client.post("/auth/register", data=form).status_code == 302
    assert client.get("/users").data == b"ann"


def test_rolled_back(db):
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
"""


def test_plugin_builds_the_test_database_through_an_old_env_py(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """The plugin's test database, built by running that old env.py, is the one the tests use;
    no database file is left in the project root."""
    project = old_env_project(pytester.path)
    dev = _factory_config_dev(project)[1][0]
    dev.create()
    before = dev.snapshot()
    (project / "plugin_tests").mkdir()
    (project / "plugin_tests" / "test_old_env.py").write_text(OLD_ENV_TESTS.lstrip())
    result = pytester.runpytest_subprocess(
        *QUIET, "-v", "--flask-app", "app:create_app", "plugin_tests"
    )
    assert _outcomes(result) == {"passed": 2}, result.stdout.str()
    assert dev.snapshot() == before
    assert sqlite_files(project) == ["instance/app-dev.sqlite3"]


# -- reproductions: a user model with required columns of its own ---------------------------------

NAMED_USER_APP = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete
from flask_complete.auth import UserMixin


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(UserMixin, db.Model):
    display_name: Mapped[str] = mapped_column(String(50))  # NOT NULL, no default


def create_app():
    app = Flask(__name__)
    Complete(app, db=db, user_model=User)
    return app
"""

NAMED_USER_FACTORY = """
import factory

from flask_complete.factories import ModelFactory
from namedapp import User


class UserFactory(ModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    display_name = factory.Sequence(lambda n: f"User {n}")
"""

NAMED_USER_TESTS = """
def test_auth_client(auth_client, auth_user):
    assert auth_user.display_name
    assert auth_client.get("/auth/me").json["user"]["email"] == auth_user.email


def test_auth_user_checks_the_password(auth_user):
    from flask_complete.auth.testing import DEFAULT_PASSWORD

    assert auth_user.check_password(DEFAULT_PASSWORD)
"""


@pytest.mark.parametrize("factory", [True, False], ids=["with-factory", "without"])
def test_auth_user_for_a_model_with_required_columns(
    factory: bool, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """``auth_user`` made its user from an email and a password alone: a model with a required
    column of its own failed every auth test with an IntegrityError from deep in the flush. It
    uses the model's factory when there is one, and otherwise says how to give it one."""
    package = pytester.path / "namedapp"
    package.mkdir()
    (package / "__init__.py").write_text(NAMED_USER_APP.lstrip())
    if factory:
        (package / "factories.py").write_text(NAMED_USER_FACTORY.lstrip())
    (pytester.path / "test_named.py").write_text(NAMED_USER_TESTS.lstrip())
    result = pytester.runpytest_subprocess(*QUIET, "-v", "--flask-app", "namedapp")
    if factory:
        assert _outcomes(result) == {"passed": 2}, result.stdout.str()
        return
    assert _outcomes(result) == {"errors": 2}, result.stdout.str()
    out = result.stdout.str()
    assert "auth_user cannot make a User from an email and a password" in out
    assert "display_name" in out and "UserFactory" in out
    assert "Traceback" not in out and "sqlalchemy.exc" not in out


# -- the hosting guides' shape: src/, its own settings modules, a server URL, its own conftest ---


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_hosting_guide_shape_on_a_server_database(
    kind: str, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """The shape the Flask hosting guides teach (see tests/shapes/README.md): its own conftest
    runs create_all/drop_all on the database the app develops against, so before the retrofit
    its suite empties the development database every run. After adding `Complete(app, db=db)`
    the unchanged suite passes on a test copy created and dropped by the run, and a sentinel
    row in the development database survives."""
    require_server(kind)
    root = pytester.path
    copy_shape("hosting_guide", root)
    flask_db_init(root / "src" / "migrations")
    name = unique_name("fcguest")
    clean_env.setenv("DBNAME", name)
    if kind == "mysql":
        clean_env.setenv("DBDRIVER", "mysql+pymysql")
        clean_env.setenv("DBUSER", "root")
    server = sa.make_url(SERVERS[kind])
    clean_env.setenv("DBHOST", f"{server.host}:{server.port}")
    dev = DevDatabase(
        f"{SERVERS[kind]}/{name}",
        "entry",
        "id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, message TEXT NOT NULL, "
        "created TIMESTAMP NULL",
        "1, 'sentinel', 'keep me', NULL",
        kind,
        name,
    )
    try:
        new_database(kind, name)  # empty: the suite's own tests expect no rows
        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": 4}, result.stdout.str()
        # The hazard itself: the suite made and dropped its tables in the development database.
        engine = sa.create_engine(dev.url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert "entry" not in sa.inspect(conn).get_table_names()
        engine.dispose()

        patch = retrofit("hosting_guide", root)
        assert 0 < changed_lines(patch) < MAX_PATCH, patch
        dev.name = None  # the database is there: the table and its sentinel row again
        dev.create()
        dev.name = name
        before = dev.snapshot()
        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": 4}, result.stdout.str()
        assert dev.snapshot() == before, "the development database changed"
        assert not database_exists(kind, f"test_{name}"), "the test database is left behind"
    finally:
        drop_database(kind, name)
        drop_database(kind, f"test_{name}")


# -- the config-dict shape: the app's own environment switch, init at the git top ---------------


def _flask_shop(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``flask --app shop ARGS`` in ``root``, with only ``env`` of the settings' variables."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shop", *args],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_config_dict_shape_one_switch_and_init_at_the_git_top(tmp_path: Path) -> None:
    """A hand-written app with ``config[FLASK_CONFIG]``, no pyproject.toml, a git repository:
    ``init`` writes at the repository's top, and the bundle is in the environment the app's
    switch names; without the declaration, the disagreement is reported."""
    root = copy_shape("config_dict", tmp_path / "shop")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    # The retrofit as the page used to show it: Complete(app) alone.
    plain = (SHAPES / "config_dict" / "retrofit" / "shop" / "__init__.py").read_text()
    plain = re.sub(r"Complete\(app, db=db, .*\)", "Complete(app, db=db)", plain)
    (root / "shop" / "__init__.py").write_text(plain)
    check = _flask_shop(root, "complete", "check", "--format", "json", FLASK_CONFIG="production")
    report = json.loads(check.stdout)
    assert report["environment"] == "development", check.stderr
    (mismatch,) = [f for f in report["findings"] if f["id"] == "env.mismatch"]
    assert "FLASK_CONFIG=production; SESSION_COOKIE_SECURE = True" in mismatch["message"]
    assert 'Complete(app, env_var="FLASK_CONFIG")' in mismatch["fix"]
    assert "[env.mismatch]" in check.stderr  # logged at start-up too

    retrofit("config_dict", root)
    init = _flask_shop(root, "complete", "init")
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[0] == f"writing to {root} (the top of its git work tree)"
    assert sorted(p.name for p in (root / "shop").iterdir() if p.name != "__pycache__") == [
        "__init__.py",
        "auth.py",
        "main.py",
        "models.py",
    ]
    assert "instance/" in (root / ".gitignore").read_text().split()

    shown = _flask_shop(root, "complete", "config", "--format", "json", FLASK_CONFIG="production")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["environment"] == "production"
    assert document["root"] == str(root)
    source = document["settings"]["COMPLETE_ENV"]["source"]
    assert source == "env FLASK_CONFIG=production, declared by Complete(env_var=...)"
    # The key init wrote in .secrets.toml, and the bundle's production cookies.
    assert document["settings"]["SECRET_KEY"]["source"] == ".secrets.toml [default]"
    assert document["settings"]["REMEMBER_COOKIE_SECURE"]["value"] is True
    dev = _flask_shop(root, "complete", "config", "COMPLETE_ENV", FLASK_CONFIG="default")
    assert dev.stdout.strip() == "development", dev.stderr

"""The pytest plugin, run on generated projects with ``pytester`` against real databases."""

from __future__ import annotations

import hashlib
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa

# conftest imports up front what pytester would otherwise import anew after each test.
from conftest import (
    SERVERS,
    database_exists,
    drop_database,
    new_database,
    require_server,
    unique_name,
)

# Whole processes (make test-slow): pytest runs of generated projects.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]

#: Unrelated plugins installed here take seconds to import in every subprocess run.
QUIET = ("-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:faker")

APP = """
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Item(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    {extra}


def create_app():
    app = Flask(__name__)
    {code}
    Complete(app, db=db)

    @app.post("/items")
    def add():
        db.session.add(Item(name=request.json["name"]))
        db.session.commit()
        return "", 201

    @app.get("/items")
    def names():
        return jsonify(db.session.scalars(select(Item.name).order_by(Item.id)).all())

    @app.cli.command("count")
    def count():
        print(len(db.session.scalars(select(Item)).all()))

    return app
"""

COUNT = "db.session.scalar(select(func.count()).select_from(Item))"


class Project:
    """A generated project: ``notes.py`` (the app), ``settings.toml`` and a dev database."""

    def __init__(self, pytester: pytest.Pytester, kind: str) -> None:
        self.pytester = pytester
        self.kind = kind
        self.name = unique_name("fc")
        if kind == "sqlite":
            self.dev_url = f"sqlite:///{pytester.path / 'instance' / (self.name + '.sqlite3')}"
            self.test_name = f"test_{self.name}.sqlite3"
        else:
            require_server(kind)
            self.dev_url = f"{SERVERS[kind]}/{self.name}"
            self.test_name = f"test_{self.name}"
        self.cleanup: list[str] = [self.name, self.test_name]

    def write(
        self,
        *,
        extra: str = "",
        code: str = "",
        testing_url: str | None = None,
        where: str = "default",
    ) -> None:
        """The app and its settings, the development URL given in ``where``: ``default`` or
        ``development`` (a settings.toml section), ``dotenv`` (.env), ``environ`` (the
        DATABASE_URL variable) or ``code`` (app.config before the call)."""
        if where == "code":
            code = f'app.config["SQLALCHEMY_DATABASE_URI"] = "{self.dev_url}"\n    ' + code
        self.pytester.makepyfile(notes=APP.format(extra=extra, code=code))
        lines = []
        if where in ("default", "development"):
            lines = [f"[{where}]", f'DATABASE_URL = "{self.dev_url}"']
        if testing_url:
            lines += ["[testing]", f'DATABASE_URL = "{testing_url}"']
        (self.pytester.path / "settings.toml").write_text("\n".join(lines) + "\n")
        if where == "dotenv":
            (self.pytester.path / ".env").write_text(f"DATABASE_URL={self.dev_url}\n")
        if where == "environ":
            self.pytester._monkeypatch.setenv("DATABASE_URL", self.dev_url)
        self.pytester.makeini("[pytest]\nflask_app = notes:create_app\nfilterwarnings = error\n")

    def create_dev(self, rows: int = 2) -> None:
        """Create the development database with ``rows`` rows in ``item``."""
        if self.kind == "sqlite":
            (self.pytester.path / "instance").mkdir(exist_ok=True)
        else:
            new_database(self.kind, self.name)
        engine = sa.create_engine(self.dev_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(50) UNIQUE)"
                )
                for i in range(rows):
                    conn.exec_driver_sql(f"INSERT INTO item (id, name) VALUES ({i + 1}, 'dev{i}')")
        finally:
            engine.dispose()

    def dev_snapshot(self) -> t.Any:
        """The dev database's bytes (SQLite) or rows (servers)."""
        if self.kind == "sqlite":
            return hashlib.sha256(Path(self.dev_url[10:]).read_bytes()).hexdigest()
        engine = sa.create_engine(self.dev_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
                rows = conn.exec_driver_sql("SELECT id, name FROM item ORDER BY id").all()
                return tables, [tuple(r) for r in rows]
        finally:
            engine.dispose()

    def exists(self, name: str) -> bool:
        if self.kind == "sqlite":
            return (self.pytester.path / "instance" / name).exists()
        return database_exists(self.kind, name)

    def drop_all(self) -> None:
        if self.kind != "sqlite":
            for name in self.cleanup:
                drop_database(self.kind, name)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*QUIET, *args)


@pytest.fixture
def project(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> t.Iterator[Project]:
    proj = Project(pytester, getattr(request, "param", "sqlite"))
    try:
        yield proj
    finally:
        proj.drop_all()


ISOLATION_TESTS = f"""
from sqlalchemy import func, select
from notes import Item


def test_commits_a_row(db, client):
    db.session.add(Item(name="one"))
    db.session.commit()
    assert client.post("/items", json={{"name": "two"}}).status_code == 201
    assert client.get("/items").json == ["one", "two"]
    try:
        db.session.add(Item(name="one"))
        db.session.commit()
    except Exception:
        db.session.rollback()
    assert {COUNT} == 2


def test_sees_zero_rows(db):
    assert {COUNT} == 0


def test_sees_zero_rows_again(db, client):
    assert client.get("/items").json == []
"""


@pytest.mark.parametrize("project", ["sqlite", "postgres", "mysql"], indirect=True)
def test_each_test_is_rolled_back_and_dev_database_untouched(project: Project) -> None:
    project.write()
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makepyfile(test_isolation=ISOLATION_TESTS)
    result = project.run("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "flask_complete: app notes:create_app (from ini flask_app), environment testing",
            f"flask_complete: test database *test_{project.name}*",
        ]
    )
    assert project.dev_snapshot() == before
    assert not project.exists(project.test_name), "the test database is dropped after the run"


def _literal(text: str) -> str:
    """``text`` as an fnmatch pattern matching itself (brackets are character classes)."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


SOURCES = {
    "default": "settings.toml [default]",
    "development": "settings.toml [development]",
    "dotenv": ".env",
    "environ": "env DATABASE_URL",
    "code": "code",
}


@pytest.mark.parametrize(
    ("project", "where"),
    [("sqlite", where) for where in SOURCES]
    + [(kind, where) for kind in ("postgres", "mysql") for where in ("development", "code")],
    indirect=["project"],
)
def test_test_database_is_derived_from_the_development_url(project: Project, where: str) -> None:
    """Wherever the development URL comes from, the tests run on test_<name> beside it, and the
    report header says what it was derived from."""
    project.write(where=where)
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makepyfile(test_isolation=ISOLATION_TESTS)
    result = project.run()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"flask_complete: test database *test_{project.name}*, derived from "
            f"*{project.name}* ({_literal(SOURCES[where])})"
        ]
    )
    assert project.dev_snapshot() == before
    assert not project.exists(project.test_name)


@pytest.mark.parametrize("project", ["sqlite", "postgres"], indirect=True)
def test_testing_pointed_at_dev_is_redirected_to_a_test_copy(project: Project) -> None:
    project.write(testing_url=project.dev_url)
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makepyfile(test_isolation=ISOLATION_TESTS)
    result = project.run()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"flask_complete: test database *test_{project.name}*"])
    assert project.dev_snapshot() == before


@pytest.mark.parametrize("project", ["sqlite", "mysql"], indirect=True)
def test_app_set_to_the_dev_url_in_code_gets_a_test_copy(project: Project) -> None:
    """A URL in code (a Config class) is where the test database is derived from, as
    pytest-django derives test_<name> from the configured database."""
    project.write(code=f'app.config["SQLALCHEMY_DATABASE_URI"] = "{project.dev_url}"')
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makepyfile(test_isolation=ISOLATION_TESTS)
    result = project.run()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"flask_complete: test database *test_{project.name}*, derived from *{project.name}* "
            "(code)"
        ]
    )
    assert project.dev_snapshot() == before


def test_apps_a_suite_builds_never_reach_the_dev_database(project: Project) -> None:
    """An app built by the suite itself (no plugin fixture) gets a test copy, never the dev
    file, also when it bound its own SQLAlchemy first."""
    project.write()
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makepyfile(
        test_own=f'''
        import pytest
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_complete import Complete
        from flask_complete.testing import DatabaseRefused

        def test_own_app_on_dev_url(tmp_path):
            app = Flask("notes")
            app.config["SQLALCHEMY_DATABASE_URI"] = "{project.dev_url}"
            db = SQLAlchemy()
            Complete(app, db=db)
            with app.app_context():
                assert db.engine.url.database.endswith("test_{project.name}.sqlite3")
                with pytest.raises(Exception, match="no such table: item"):
                    db.session.execute(db.text("DELETE FROM item"))

        def test_own_bound_app_on_dev_url(tmp_path):
            # Bound to its SQLAlchemy before the call: the URL is its own, but not in tests.
            app = Flask("notes")
            app.config["SQLALCHEMY_DATABASE_URI"] = "{project.dev_url}"
            db = SQLAlchemy(app)
            Complete(app, db=db)
            with app.app_context():
                assert db.engine.url.database.endswith("test_{project.name}.sqlite3")

        def test_own_app_on_its_own_url(tmp_path):
            app = Flask("notes")
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            db = SQLAlchemy()
            Complete(app, db=db)
            with app.app_context():
                assert db.session.execute(db.text("SELECT 1")).scalar() == 1
        '''
    )
    project.run().assert_outcomes(passed=3)
    assert project.dev_snapshot() == before


def test_database_use_without_the_db_fixture_names_the_fixture(project: Project) -> None:
    project.write()
    project.pytester.makepyfile(
        test_block=f"""
        from sqlalchemy import func, select
        from notes import Item, db

        def test_forgot_db(app):
            {COUNT}

        def test_with_db(db):
            assert {COUNT} == 0
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Add the `db` fixture to the test*"])


def test_fixtures(project: Project) -> None:
    project.write()
    project.pytester.makepyfile(
        test_fixtures=f"""
        import urllib.request
        import pytest
        from sqlalchemy import func, select
        from notes import Item

        def test_settings_override(app, settings):
            settings["GREETING"] = "hi"
            assert app.config["GREETING"] == "hi"
            with pytest.raises(KeyError, match="read once, when the app is built"):
                settings["SQLALCHEMY_DATABASE_URI"] = "sqlite://"

        def test_settings_restored(app):
            assert "GREETING" not in app.config
            assert app.testing

        def test_query_counting(db, assert_num_queries, assert_max_queries):
            db.session.add_all([Item(name="a"), Item(name="b")])
            db.session.commit()
            with assert_num_queries(1):
                db.session.scalars(select(Item)).all()
            with pytest.raises(AssertionError, match="at most 1 SQL statements, 2 ran"):
                with assert_max_queries(1):
                    db.session.scalars(select(Item)).all()
                    db.session.scalars(select(Item)).all()

        def test_runner(db, runner):
            db.session.add(Item(name="a"))
            db.session.commit()
            assert runner.invoke(args=["count"]).output.strip() == "1"

        def test_transactional_db_commits(transactional_db):
            transactional_db.session.add(Item(name="kept"))
            transactional_db.session.commit()

        def test_transactional_db_emptied_after(db):
            assert {COUNT} == 0

        def test_live_server(live_server):
            request = urllib.request.Request(
                live_server.url + "/items", data=b'{{"name": "http"}}',
                headers={{"Content-Type": "application/json"}}, method="POST",
            )
            assert urllib.request.urlopen(request, timeout=5).status == 201
            with urllib.request.urlopen(live_server.url + "/items", timeout=5) as response:
                assert response.read() == b'["http"]\\n'

        def test_live_server_emptied_after(db):
            assert {COUNT} == 0
        """
    )
    project.run("-v").assert_outcomes(passed=8)


def test_reuse_db_keeps_the_database_and_model_change_rebuilds_it(project: Project) -> None:
    project.write()
    test_file = project.pytester.path / "instance" / project.test_name
    project.pytester.makepyfile(
        test_reuse=f"""
        from sqlalchemy import func, select
        from notes import Item

        def test_count(db, request):
            assert {COUNT} == int(request.config.getoption("--expect"))
        """
    )
    project.pytester.makeconftest(
        'def pytest_addoption(parser):\n    parser.addoption("--expect", default="0")\n'
    )
    project.run("--reuse-db").assert_outcomes(passed=1)
    assert test_file.exists(), "--reuse-db keeps the test database"
    engine = sa.create_engine(f"sqlite:///{test_file}", poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO item (name) VALUES ('kept')")
    engine.dispose()
    project.run("--reuse-db", "--expect", "1").assert_outcomes(passed=1)
    project.run("--reuse-db", "--create-db").assert_outcomes(passed=1)

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO item (name) VALUES ('kept')")
    engine.dispose()
    project.write(extra="note: Mapped[str] = mapped_column(String(20), default='')")
    project.run("--reuse-db").assert_outcomes(passed=1)
    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("item")]
    engine.dispose()
    assert "note" in columns, "a changed model rebuilds the reused database"
    project.run().assert_outcomes(passed=1)
    assert not test_file.exists()


@pytest.mark.parametrize("project", ["postgres"], indirect=True)
def test_xdist_gives_each_worker_its_database(project: Project) -> None:
    project.write()
    project.cleanup += [f"{project.test_name}_gw0", f"{project.test_name}_gw1"]
    seen = project.pytester.path / "seen"
    seen.mkdir()
    project.pytester.makepyfile(
        test_workers=f"""
        import os
        import pytest
        from sqlalchemy import text

        @pytest.mark.parametrize("n", range(8))
        def test_database_name(db, n):
            name = db.session.execute(text("SELECT current_database()")).scalar()
            (__import__("pathlib").Path({str(seen)!r}) / name).touch()
            assert name == "{project.test_name}_" + os.environ["PYTEST_XDIST_WORKER"]
        """
    )
    project.run("-n", "2").assert_outcomes(passed=8)
    names = sorted(p.name for p in seen.iterdir())
    assert names == [f"{project.test_name}_gw0", f"{project.test_name}_gw1"]
    for name in names:
        assert not database_exists("postgres", name)


def test_plain_project_is_untouched(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """A suite that builds its own app and fixtures runs as before; nothing of ours loads."""
    pytester.makeconftest(
        """
        import pytest
        from flask import Flask

        @pytest.fixture
        def app():
            app = Flask("plain")

            @app.get("/")
            def index():
                return "plain"

            return app

        @pytest.fixture
        def client(app):
            return app.test_client()
        """
    )
    pytester.makepyfile(
        """
        import sys
        import unittest

        def test_own_fixtures(client, app):
            assert client.get("/").data == b"plain"
            assert not app.testing

        def test_nothing_of_flask_complete_imported():
            assert "flask_complete.extension" not in sys.modules
            assert "sqlalchemy" not in sys.modules

        class TestOld(unittest.TestCase):
            def test_runs(self):
                self.assertTrue(True)
        """
    )
    # FLASK_APP set for `flask run` names an app this suite never asks the plugin for.
    pytester.makepyfile(plain_app="open('imported', 'w').close()\n")
    clean_env.setenv("FLASK_APP", "plain_app")
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=3)
    assert "flask_complete:" not in result.stdout.str()
    assert not (pytester.path / "imported").exists()


def test_help_works_with_a_broken_app(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nflask_app = missing_module:create_app\n")
    result = pytester.runpytest_subprocess(*QUIET, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--flask-app=APP*", "*--reuse-db*"])
    pytester.makepyfile("def test_app(app):\n    pass\n")
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*could not build the app 'missing_module:create_app'*"])


def test_migrations_build_the_schema_and_check_migrations_fails_on_drift(
    project: Project,
) -> None:
    import subprocess
    import sys

    from flask_complete.migrations.migrate import write_migrations

    project.write()
    (project.pytester.path / "instance").mkdir()
    write_migrations(project.pytester.path / "migrations")
    generate = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "notes", "db", "migrate", "-m", "items"],
        cwd=project.pytester.path,
        capture_output=True,
        text=True,
    )
    assert generate.returncode == 0, generate.stderr
    project.pytester.makepyfile(
        test_schema="""
        from sqlalchemy import inspect

        def test_built_by_the_migrations(db):
            assert "alembic_version" in inspect(db.session.connection()).get_table_names()
        """
    )
    project.run("--check-migrations").assert_outcomes(passed=1)

    project.write(extra="note: Mapped[str] = mapped_column(String(20), default='')")
    result = project.run("--check-migrations")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*--check-migrations: the models and the database differ*"])
    result.stdout.fnmatch_lines(["*note*"])
    project.run("--no-migrations").assert_outcomes(passed=0, failed=1)


def test_factory_fixtures_and_the_import_time_session_lint(project: Project) -> None:
    project.write()
    project.pytester.makeini(
        "[pytest]\nflask_app = notes:create_app\nfilterwarnings = error\n"
        "flask_factories = notes_factories\n"
    )
    factories = """
        import factory
        from flask_complete.factories import ModelFactory
        from notes import Item

        class ItemFactory(ModelFactory):
            class Meta:
                model = Item

            name = factory.Sequence(lambda n: f"item {n}")
        """
    project.pytester.makepyfile(notes_factories=factories)
    project.pytester.makepyfile(
        test_factories=f"""
        from sqlalchemy import func, select
        from notes import Item

        def test_factory_fixture(item_factory, db):
            item_factory.create_batch(3)
            assert {COUNT} == 3

        def test_rolled_back(db):
            assert {COUNT} == 0
        """
    )
    project.run().assert_outcomes(passed=2)

    # Bound to the scoped session at import, as project templates do: still the test's session.
    bound = """
        from factory.alchemy import SQLAlchemyModelFactory
        from notes import db

        class BoundFactory(SQLAlchemyModelFactory):
            class Meta:
                model = Item
                sqlalchemy_session = db.session
                sqlalchemy_session_persistence = "commit"

            name = factory.Sequence(lambda n: f"bound {n}")
        """
    project.pytester.makepyfile(notes_factories=factories + bound)
    project.pytester.makepyfile(
        test_factories=f"""
        from sqlalchemy import func, select
        from notes import Item

        def test_bound_factory(bound_factory, item_factory, db):
            bound_factory.create_batch(2)
            item_factory()
            assert {COUNT} == 3

        def test_rolled_back(db):
            assert {COUNT} == 0
        """
    )
    project.run().assert_outcomes(passed=2)

    # A session made at import is another session: the lint says so.
    made = bound.replace("sqlalchemy_session = db.session", "sqlalchemy_session = db.session()")
    project.pytester.makepyfile(notes_factories=factories + made)
    result = project.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*notes_factories.BoundFactory sets Meta.sqlalchemy_session to*"])


def test_app_failing_at_import_is_reported_by_the_fixture(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nflask_app = broken\n")
    pytester.makepyfile(broken="raise RuntimeError('no database configured here')\n")
    pytester.makepyfile("def test_app(app):\n    pass\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*could not build the app 'broken' (ini flask_app): no database configured here*"]
    )


def test_every_bind_is_isolated(project: Project) -> None:
    project.write()
    reports = project.pytester.path / "instance" / "reports.sqlite3"
    (project.pytester.path / "settings.toml").write_text(
        f'[default]\nDATABASE_URL = "{project.dev_url}"\n'
        f'SQLALCHEMY_BINDS = {{reports = "sqlite:///{reports}"}}\n'
    )
    project.pytester.makepyfile(
        test_binds="""
        from sqlalchemy import String, func, select
        from sqlalchemy.orm import Mapped, mapped_column
        from notes import Item, db

        class Report(db.Model):
            __bind_key__ = "reports"
            id: Mapped[int] = mapped_column(primary_key=True)
            title: Mapped[str] = mapped_column(String(50))

        def counts(db):
            return [
                db.session.scalar(select(func.count()).select_from(model))
                for model in (Item, Report)
            ]

        def test_writes_both(db):
            db.session.add_all([Item(name="a"), Report(title="r")])
            db.session.commit()
            assert counts(db) == [1, 1]
            assert "test_reports" in str(db.engines["reports"].engine.url)

        def test_both_empty(db):
            assert counts(db) == [0, 0]
        """
    )
    project.run().assert_outcomes(passed=2)
    assert not reports.exists()
    assert not (reports.parent / "test_reports.sqlite3").exists()


def _spellings(kind: str, name: str, connectable: bool) -> list[str]:
    """Other ways of writing the URL of the database ``name`` on the ``kind`` server (the
    servers here listen on 127.0.0.1 only: ``::1`` spellings only where nothing connects)."""
    if kind == "postgres":
        found = [
            f"postgresql://postgres@localhost/{name}",
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}?application_name=x",
            f"postgres://postgres@[::1]:5432/{name}",
        ]
    else:
        found = [
            f"mysql://root@localhost/{name}",
            f"mariadb+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4",
            f"mysql+pymysql://root@[::1]/{name}",
        ]
    return found[:2] if connectable else found


SENTINEL_CONFTEST = """
import pytest
from flask import Flask
from notes import db, create_app
from flask_complete import Complete

SPELLINGS = {spellings!r}


@pytest.fixture(params=SPELLINGS)
def app(request):
    app = Flask("notes")
    app.config["SQLALCHEMY_DATABASE_URI"] = request.param
    Complete(app, db=db{pin})
    return app
"""

SENTINEL_TESTS = """
from sqlalchemy import delete
from notes import Item


def test_empties_every_table(transactional_db):
    transactional_db.session.execute(delete(Item))
    transactional_db.session.commit()


def test_rolled_back_delete(db):
    db.session.execute(delete(Item))
    db.session.commit()
"""


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
@pytest.mark.parametrize("dev_prefix", ["", "test_"])
@pytest.mark.parametrize("pin", ["", ', env="development"'])
def test_development_database_survives_every_spelling(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, kind: str, dev_prefix: str, pin: str
) -> None:
    """A conftest app on the development database, however its URL is spelled: the tests either
    get a test copy or are refused before any statement runs; the sentinel rows survive. A
    development database named test_... is recognised by what the URLs address."""
    project = Project(pytester, kind)
    project.name = dev_prefix + project.name
    project.dev_url = f"{SERVERS[kind]}/{project.name}"
    project.cleanup = [project.name, f"test_{project.name}"]
    try:
        project.write(where="environ")
        project.create_dev()
        before = project.dev_snapshot()
        refused = bool(pin or dev_prefix)
        spellings = [*_spellings(kind, project.name, not refused), project.dev_url]
        if pin:  # neither development nor production, nor a test database
            spellings.append(f"{SERVERS[kind]}/fc_other_{project.name}")
        pytester.makeconftest(SENTINEL_CONFTEST.format(spellings=spellings, pin=pin))
        pytester.makepyfile(test_sentinel=SENTINEL_TESTS)
        result = project.run("-p", "no:cacheprovider")
        if refused:
            # Pinned to development, or a development database that looks like a test one.
            result.assert_outcomes(errors=2 * len(spellings))
            result.stdout.fnmatch_lines(["*refuses to let tests *"])
        else:
            result.assert_outcomes(passed=2 * len(spellings))
        assert project.dev_snapshot() == before
    finally:
        project.drop_all()


@pytest.mark.parametrize("project", ["sqlite", "postgres"], indirect=True)
def test_a_test_database_stamped_production_is_never_dropped(project: Project) -> None:
    """The test run creates and drops databases through the environment gate too: a database
    that records production is refused even under a test_ name."""
    from flask_complete.database import stamp as dbenv

    project.write()
    if project.kind == "sqlite":
        (project.pytester.path / "instance").mkdir(exist_ok=True)
        test_url = f"sqlite:///{project.pytester.path / 'instance' / project.test_name}"
    else:
        test_url = f"{SERVERS[project.kind]}/{project.test_name}"
        new_database(project.kind, project.test_name)
    engine = sa.create_engine(test_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            dbenv.stamp(conn, "production")
    finally:
        engine.dispose()
    project.pytester.makepyfile(test_isolation=ISOLATION_TESTS)
    result = project.run()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*stamped production*"])
    assert dbenv.read_stamp(test_url) == "production"


def test_data_fixtures_in_tests(project: Project) -> None:
    """load_fixtures and the fixtures marker load into the test's transaction (rolled back);
    --load-fixtures loads once for the run, on top of the schema."""
    project.write()
    fixtures = project.pytester.path / "fixtures"
    fixtures.mkdir()
    (fixtures / "items.json").write_text(
        '[{"model": "Item", "pk": 1, "fields": {"name": "one"}},\n'
        ' {"model": "Item", "pk": 2, "fields": {"name": "two"}}]\n'
    )
    (fixtures / "more.json").write_text('[{"model": "Item", "pk": 9, "fields": {"name": "nine"}}]')
    project.pytester.makepyfile(
        test_data=f"""
        import pytest
        from sqlalchemy import func, select
        from notes import Item

        def test_loaded(load_fixtures, db, request):
            load_fixtures("items")
            assert {COUNT} == 2 + int(request.config.getoption("--expect"))

        @pytest.mark.fixtures("items")
        def test_marker(db, client, request):
            assert len(client.get("/items").json) == 2 + int(request.config.getoption("--expect"))

        def test_rolled_back(db, request):
            assert {COUNT} == int(request.config.getoption("--expect"))
        """
    )
    project.pytester.makeconftest(
        'def pytest_addoption(parser):\n    parser.addoption("--expect", default="0")\n'
    )
    project.run().assert_outcomes(passed=3)
    project.run("--load-fixtures", "more", "--expect", "1").assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("kind", "spelling"),
    [
        ("postgres", "postgresql://postgres@127.0.0.1/?dbname={name}"),
        ("postgres", "postgresql://postgres@127.0.0.1/test_x?dbname={name}"),
        ("mysql", "mysql://root@127.0.0.1/?database={name}"),
    ],
)
def test_a_query_parameter_naming_the_development_database(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, kind: str, spelling: str
) -> None:
    """The reproduction as users met it: a development URL whose query names the database
    (psycopg's dbname, PyMySQL's database). The tests run on test_<the name the server
    reports>; the development rows survive and the database records no environment."""
    from flask_complete.database import stamp as dbenv

    project = Project(pytester, kind)
    try:
        project.write()
        (pytester.path / "settings.toml").write_text(
            f"[development]\nDATABASE_URL = {spelling.format(name=project.name)!r}\n"
        )
        project.create_dev()
        before = project.dev_snapshot()
        pytester.makepyfile(test_tx=SENTINEL_TESTS)
        result = project.run("-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        result.stdout.no_fnmatch_line("*test_?dbname*")
        assert project.dev_snapshot() == before
        assert dbenv.read_stamp(project.dev_url) is None
        assert not project.exists(project.test_name)  # created, then dropped
    finally:
        project.drop_all()


ENGINE_TESTS = """
import sqlalchemy as sa
from sqlalchemy import func, select, text
from notes import Item


def count(db):
    return db.session.scalar(select(func.count()).select_from(Item))


def test_engine_attributes(db):
    engine = db.engine
    assert engine.name == engine.dialect.name
    assert "test_" in str(engine.url)
    assert engine.driver
    assert str(engine.url) in repr(db)
    if engine.name == "sqlite":
        assert engine.url.get_backend_name() == "sqlite"


def test_connect_and_begin_join_the_test(db):
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO item (name) VALUES ('core')"))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM item")).scalars().all() == ["core"]
        conn.execute(text("INSERT INTO item (name) VALUES ('second')"))
        conn.commit()
    assert count(db) == 2
    db.engine.dispose()  # nothing of the test's transaction is lost
    assert count(db) == 2
    sa.MetaData().create_all(db.engine)


def test_rolled_back(db):
    assert count(db) == 0
"""


@pytest.mark.parametrize("project", ["sqlite", "postgres", "mysql"], indirect=True)
def test_db_engine_is_an_engine_in_the_test(project: Project) -> None:
    """Under the db fixture, code that uses db.engine as production does (its URL, name,
    connect(), begin(), dispose()) works inside the test's transaction, rolled back after."""
    project.write()
    project.pytester.makepyfile(test_engine=ENGINE_TESTS)
    result = project.run("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


OWN_CONFTEST = """
import pytest
from notes import create_app, db


@pytest.fixture
def app():
    app = create_app()
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()


@pytest.fixture
def client(app):
    return app.test_client()
"""

OWN_TESTS = """
def test_add(client):
    assert client.post("/items", json={"name": "a"}).status_code == 201
    assert client.get("/items").json == ["a"]


def test_empty_again(client):
    assert client.get("/items").json == []
"""


@pytest.mark.parametrize("project", ["postgres", "mysql"], indirect=True)
@pytest.mark.parametrize("reuse", [False, True], ids=["drop", "reuse-db"])
def test_a_suites_own_conftest_gets_its_test_database_created(
    project: Project, reuse: bool
) -> None:
    """An app's unchanged suite (its own app fixture, its own create_all/drop_all) on a server
    database: the test database derived from the development one is created on first use and
    dropped at the end (kept with --reuse-db); the development rows survive."""
    project.write(where="development")
    project.create_dev()
    before = project.dev_snapshot()
    project.pytester.makeconftest(OWN_CONFTEST)
    project.pytester.makepyfile(test_own=OWN_TESTS)
    result = project.run("-p", "no:cacheprovider", *(["--reuse-db"] if reuse else []))
    result.assert_outcomes(passed=2)
    assert project.dev_snapshot() == before
    assert project.exists(project.test_name) == reuse

"""The test database behind the pytest plugin: never a development or production database, created
and dropped (per xdist worker), its schema built from the migrations, access blocked until asked.
"""

from __future__ import annotations

import hashlib
import typing as t
import warnings
import weakref
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from ..database.gate import (
    DatabaseRefused,
    access_allowed,
    database_access,
    judge,
    protected,
    require_test_databases,
    suite_owned,
    verify,
    watch,
)
from ..settings import config as _config
from ..state import EXTENSION_KEY

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

ConnectArgs = dict[str, t.Any] | None


class DatabaseBlocked(RuntimeError):
    """A test touched the plugin-built app's database without asking for it."""


def sqla_of(app: Flask) -> SQLAlchemy:
    """The ``SQLAlchemy`` instance ``app`` uses; a clear error when it has none."""
    state = app.extensions.get(EXTENSION_KEY)
    sqla = state.db if state is not None else None
    if sqla is None or "sqlalchemy" not in app.extensions:
        raise DatabaseRefused(
            f"The app {app.name!r} has no flask_complete database: the db fixtures need "
            "Complete(app) (with COMPLETE_DATABASE on) and Flask-SQLAlchemy on it. Add "
            "Complete(app, db=db) to the app factory, after the app's own settings."
        )
    return t.cast("SQLAlchemy", sqla)


def engines_of(app: Flask) -> dict[str | None, t.Any]:
    """The app's live mapping of bind key to engine (or, during isolation, connection)."""
    sqla = sqla_of(app)
    with app.app_context():
        return t.cast(dict[str | None, t.Any], sqla.engines)


# -- never the development or production database -------------------------------------------------

__all__ = [
    "DatabaseBlocked",
    "DatabaseRefused",
    "TestDatabase",
    "TestDatabases",
    "database_access",
]

_checked: weakref.WeakSet[Flask] = weakref.WeakSet()


def guard_app(app: Flask, databases: TestDatabases | None = None) -> None:
    """Put every engine of a testing ``app`` behind the gate
    (:func:`flask_complete.database.gate.verify`), also for apps a suite builds and uses without the
    fixtures; with the run's ``databases``, a test database such an app connects to is created
    on first use and dropped with the run's. Runs on each app context push; after the first it
    costs a set lookup."""
    if app in _checked:
        return
    _checked.add(app)
    state = app.extensions.get(EXTENSION_KEY)
    if state is None or state.env != "testing" or "sqlalchemy" not in app.extensions:
        return
    watch(app)
    if databases is not None:
        for key, engine in engines_of(app).items():
            if isinstance(engine, Engine) and engine not in _creating:
                _creating.add(engine)
                listener = _create_on_first_use(app, key, engine, databases)
                event.listen(engine, "do_connect", listener)


_creating: weakref.WeakSet[Engine] = weakref.WeakSet()
_blocked: weakref.WeakSet[Engine] = weakref.WeakSet()


def _create_on_first_use(
    app: Flask, key: str | None, engine: Engine, databases: TestDatabases
) -> t.Callable[..., t.Any]:
    """A ``do_connect`` listener for ``engine``: when its test database is missing, create it
    (refused unless it is a test database) and connect again. SQLite makes its file on connect,
    a server does not; either way the run drops it at the end."""
    from ..database import binds
    from ..database.identity import missing_database, sqlite_path

    app_ref, engine_ref = weakref.ref(app), weakref.ref(engine)

    def do_connect(dialect: t.Any, record: t.Any, cargs: t.Any, cparams: t.Any) -> t.Any:
        app, engine = app_ref(), engine_ref()
        if app is None or engine is None:
            return None
        if access_allowed() or engine in _blocked:
            # The plugin's own machinery creates what it needs (and a blocked engine's listener
            # says which fixture to add): only the suite's own use creates on connect.
            return None
        url = engine.url
        path = sqlite_path(url, app.instance_path) if url.get_backend_name() == "sqlite" else ""
        new_file = bool(path) and not Path(path).exists()
        try:
            connection = dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as e:
            if not missing_database(e):
                raise
            create_database(url, app, binds.connect_args(app, key))
            databases.created_on_first_use(app, key, url)
            return dialect.connect(*cargs, **cparams)
        if new_file:
            databases.created_on_first_use(app, key, url)
        return connection

    return do_connect


# -- the test database ----------------------------------------------------------------------------


def block(engine: Engine) -> None:
    """Make ``engine`` refuse connections outside :func:`database_access` with a message
    naming the fixture to add."""

    def refuse() -> None:
        raise DatabaseBlocked(
            "Database access is not allowed in this test: it uses the app's database without "
            "asking for it. Add the `db` fixture to the test (each test rolled back), or "
            "`transactional_db` for real commits, e.g. `def test_notes(client, db): ...`."
        )

    def on_new_connection(*args: t.Any) -> None:
        if not access_allowed():
            refuse()

    def on_connect(conn: Connection) -> None:
        if not access_allowed():
            conn.close()
            refuse()

    # do_connect: before a new DBAPI connection is opened; engine_connect: a pooled one reused.
    _blocked.add(engine)
    event.listen(engine, "do_connect", on_new_connection)
    event.listen(engine, "engine_connect", on_connect)


def _sqlite_savepoints(engine: Engine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT: let SQLAlchemy emit BEGIN itself.
    @event.listens_for(engine, "connect")
    def _no_pysqlite_transactions(dbapi_connection: t.Any, record: t.Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    if _in_memory(engine.url):
        # One connection holds the whole database (StaticPool): fix that one in place.
        raw = engine.raw_connection()
        try:
            raw.driver_connection.isolation_level = None  # type: ignore[union-attr]
        finally:
            raw.close()
    else:
        engine.dispose()


def _in_memory(url: URL) -> bool:
    from ..database.identity import sqlite_path

    return url.get_backend_name() == "sqlite" and not sqlite_path(url, "")


def create_database(url: URL, app: Flask | None = None, connect_args: ConnectArgs = None) -> None:
    """Create the test database of ``url``, refused unless what it names (as its driver reads
    it) is a test database; the gate judges it again, as its server names it, on the first
    connection."""
    from ..database import admin as dbcli
    from ..database.identity import declared

    if _in_memory(url):
        return
    if app is not None:
        ident = declared(url, app.instance_path, connect_args)
        root = app.extensions[EXTENSION_KEY].root if EXTENSION_KEY in app.extensions else "."
        why = judge(ident, None, protected(app, root).items(), root)
        if why is not None:
            raise DatabaseRefused(
                f"flask_complete will not create {ident.describe()} for the tests: it {why}. "
                "Leave the test URL to the plugin (it derives test_<name>) or name it test_..."
            )
    dbcli.create_database(url, connect_args)


def drop_database(url: URL, app: Flask | None = None, connect_args: ConnectArgs = None) -> None:
    """Drop the test database of ``url`` if it exists: refused unless the gate, asking the
    database itself, finds a test database that records the testing environment or none."""
    from ..database import admin as dbcli
    from ..database import environments as dbenv

    if _in_memory(url):
        return

    def check(connection: Connection) -> None:
        if app is not None:
            verify(connection, app, "drop")
        try:
            dbenv.authorize(connection, env="testing", action="drop", command="the test run")
        except dbenv.EnvironmentRefused as e:
            raise DatabaseRefused(e.format_message()) from None

    dbcli.drop_database(url, connect_args, check=check)


def database_exists(url: URL, connect_args: ConnectArgs = None) -> bool:
    """Whether the database of ``url`` exists (a file for SQLite)."""
    from ..database import admin as dbcli

    return dbcli.database_exists(url, connect_args)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


class TestDatabase:
    """One test database (a URL per bind): created (or reused), schema built from the
    migrations, dropped at the end. Every app built on the same URLs shares it."""

    __test__ = False

    def __init__(
        self,
        app: Flask,
        *,
        reuse: bool = False,
        recreate: bool = False,
        migrations: bool = True,
        cache: t.Any = None,
    ) -> None:
        self.app = app
        self.reuse = reuse
        self.recreate = recreate
        self.use_migrations = migrations
        self.cache = cache
        self.reused = False
        self.sqla = sqla_of(app)
        self.urls = {key: _url(e) for key, e in engines_of(app).items()}
        self.apps: weakref.WeakSet[Flask] = weakref.WeakSet([app])
        #: A test database the suite named itself in code (a tmp_path file, ``sqlite://``, a
        #: ``test_`` database its conftest made): used as it is, never dropped unless created.
        self.suites_own = set(self.urls) <= suite_owned(app)
        self.created: list[URL] = []
        #: The run's ``--load-fixtures`` are in it.
        self.fixtures_loaded = False

    @property
    def migrations_dir(self) -> Path | None:
        """The migrations folder the schema is built from, or ``None`` for ``create_all`` (no
        folder, or ``--no-migrations``); an error naming a folder that cannot be used."""
        from ..migrations.migrate import usable_migrations

        return usable_migrations(self.app) if self.use_migrations else None

    def fingerprint(self) -> str:
        """A hash of what the schema is built from: the model metadata and the migrations."""
        digest = hashlib.sha256()
        for key, url in sorted(self.urls.items(), key=lambda kv: str(kv[0])):
            dialect = _dialect(url)
            metadata = self.sqla.metadatas.get(key)
            for table in metadata.sorted_tables if metadata is not None else ():
                digest.update(str(sa.schema.CreateTable(table).compile(dialect=dialect)).encode())
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    digest.update(
                        str(sa.schema.CreateIndex(index).compile(dialect=dialect)).encode()
                    )
        folder = self.migrations_dir
        if folder is not None:
            for path in sorted(folder.rglob("*.py")):
                digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
        return digest.hexdigest()

    def _cache_key(self) -> str:
        names = ",".join(_config.redact_url(u) for _, u in sorted(self.urls.items(), key=str))
        return "flask_complete/db/" + hashlib.sha1(names.encode()).hexdigest()

    def setup(self) -> None:
        """Refuse anything but a test database, then create it and build its schema."""
        require_test_databases(self.app)
        attach(self.app)
        with database_access():
            if self.suites_own:
                self._adopt()
                return
            fingerprint = self.fingerprint()
            if (
                self.reuse
                and not self.recreate
                and self.cache is not None
                and self.cache.get(self._cache_key(), None) == fingerprint
                and all(
                    database_exists(url, self._connect_args(key)) for key, url in self.urls.items()
                )
            ):
                self.reused = True
                return
            self._dispose()
            for key, url in self.urls.items():
                drop_database(url, self.app, self._connect_args(key))
                create_database(url, self.app, self._connect_args(key))
            self.build_schema()
            if self.cache is not None:
                self.cache.set(self._cache_key(), fingerprint if self.reuse else None)

    def _adopt(self) -> None:
        # The suite's own database: create what is missing, build the schema only where the
        # models' tables are not there yet (the suite's fixtures may have made them, and rows).
        for key, url in self.urls.items():
            if not _in_memory(url) and not database_exists(url, self._connect_args(key)):
                create_database(url, self.app, self._connect_args(key))
                self.created.append(url)
        for key, engine in engines_of(self.app).items():
            metadata = self.sqla.metadatas.get(key)
            with engine.connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
            if metadata is not None and not set(metadata.tables) <= present:
                self.build_schema()
                return

    def build_schema(self) -> None:
        """Run the migrations to head, or ``create_all`` when there are none."""
        folder = self.migrations_dir
        with self.app.app_context(), warnings.catch_warnings():
            # Flask-Migrate's stock env.py calls the deprecated db.get_engine(): an app's own
            # migrations folder must build the test schema under filterwarnings = error too.
            warnings.filterwarnings("ignore", "'get_engine' is deprecated", DeprecationWarning)
            if folder is None:
                from ..database import environments as dbenv
                from ..migrations.migrate import import_models

                import_models(self.app)
                self.sqla.create_all(bind_key=list(engines_of(self.app)))
                dbenv.set_stamp(self.app, "testing")
                return
            from ..migrations import migrate as migrations

            migrations.upgrade(self.app, revision="head")

    def teardown(self) -> None:
        """Drop the test database unless it is kept for ``--reuse-db``."""
        for app in list(self.apps):
            _dispose(app)
        if self.suites_own:
            for key, url in self.urls.items():
                if url in self.created:
                    drop_database(url, self.app, self._connect_args(key))
            return
        if self.reuse:
            return
        for key, url in self.urls.items():
            drop_database(url, self.app, self._connect_args(key))

    def _connect_args(self, key: str | None) -> dict[str, t.Any]:
        from ..database import binds

        return binds.connect_args(self.app, key)

    def _dispose(self) -> None:
        _dispose(self.app)


def _dispose(app: Flask) -> None:
    for engine in engines_of(app).values():
        if isinstance(engine, Engine):
            engine.dispose()


_attached: weakref.WeakSet[Engine] = weakref.WeakSet()


def attach(app: Flask) -> None:
    """Ready ``app``'s engines for per-test isolation (SQLite's SAVEPOINT fix), once each, and
    close their connections when the app goes away (apps a conftest builds per test)."""
    engines = [e for e in engines_of(app).values() if isinstance(e, Engine)]
    new = [e for e in engines if e not in _attached]
    for engine in new:
        _attached.add(engine)
        if engine.dialect.name == "sqlite":
            _sqlite_savepoints(engine)
    if new:
        weakref.finalize(app, _dispose_engines, new)


def _dispose_engines(engines: list[Engine]) -> None:
    for engine in engines:
        engine.dispose()


class TestDatabases:
    """The test run's databases: one :class:`TestDatabase` per set of URLs, whichever app
    (the plugin's or a conftest's, built once or per test) asks for it first."""

    __test__ = False

    def __init__(self, **options: t.Any) -> None:
        self.options = options
        self.by_urls: dict[tuple[str, ...], TestDatabase] = {}
        #: Every database prepared, in order (dropped in reverse).
        self.all: list[TestDatabase] = []
        #: In-memory SQLite: a database per engine, built for each app.
        self.in_memory: weakref.WeakKeyDictionary[Engine, TestDatabase] = (
            weakref.WeakKeyDictionary()
        )
        #: Databases the apps a suite builds itself made on first use: dropped at the end.
        self.first_use: dict[str, tuple[URL, Flask, str | None]] = {}

    def created_on_first_use(self, app: Flask, key: str | None, url: URL) -> None:
        """Record a test database an app of the suite's own made by connecting."""
        self.first_use.setdefault(_render(url), (url, app, key))

    def prepare(self, app: Flask) -> TestDatabase:
        """The test database of ``app``, created and migrated on first use."""
        from ..database.identity import declared

        require_test_databases(app)
        engines = {k: e for k, e in engines_of(app).items() if isinstance(e, Engine)}
        memory = [e for e in engines.values() if _in_memory(e.url)]
        if memory:
            found = self.in_memory.get(memory[0])
            if found is None:
                found = TestDatabase(app, **{**self.options, "reuse": False})
                found.setup()
                self.all.append(found)
                for engine in memory:
                    self.in_memory[engine] = found
            return found
        # By what the URLs address: two spellings of one database are one test database.
        key = tuple(sorted(f"{k}={declared(e.url, app.instance_path)}" for k, e in engines.items()))
        found = self.by_urls.get(key)
        if found is None:
            # Kept only once set up: a refusal is raised again for every test that asks.
            found = TestDatabase(app, **self.options)
            found.setup()
            self.by_urls[key] = found
            self.all.append(found)
        elif app not in found.apps:
            found.apps.add(app)
            attach(app)
        return found

    def teardown(self) -> None:
        """Drop every database of the run (kept with ``--reuse-db``; a suite's own database
        only if the run created it)."""
        while self.all:
            self.all.pop().teardown()
        self.by_urls.clear()
        first_use, self.first_use = self.first_use, {}
        if self.options.get("reuse"):
            return
        for url, app, key in first_use.values():
            _dispose(app)
            from ..database import binds

            drop_database(url, app, binds.connect_args(app, key))


def _url(engine: t.Any) -> URL:
    return t.cast(URL, engine.url if isinstance(engine, Engine) else engine.engine.url)


def _dialect(url: URL) -> sa.engine.Dialect:
    return url.get_dialect()()


# -- migrations -----------------------------------------------------------------------------------


def check_migrations(app: Flask) -> str | None:
    """What differs between the models and the migrations, measured on the migrated test
    database; ``None`` when they match."""
    from ..migrations import binds as migration_binds
    from ..migrations import migrate as migrations

    if not migrations.has_migrations(app):
        return (
            f"--check-migrations: there is no migrations folder ({migrations.migrations_dir(app)})."
            " Create it with `flask complete init` and `flask db migrate`, or drop the option."
        )
    with database_access():
        found = migration_binds.check(app)
    return f"--check-migrations: {found}" if found else None


def walk_migrations(app: Flask) -> list[str]:
    """Walk every migration on the test database: down to base, then for each revision
    upgrade, downgrade and upgrade again; the database ends at head. Returns the revisions in
    order. Use it in a test with ``transactional_db`` (schema changes cannot be rolled back on
    every database)."""
    from alembic.script import ScriptDirectory

    from ..migrations import migrate as migrations

    require_test_databases(app)
    with database_access(), app.app_context():
        sqla_of(app).session.remove()
        script = ScriptDirectory.from_config(migrations.alembic_config(app))
        revisions = list(reversed(list(script.walk_revisions("base", "heads"))))
        migrations.downgrade(app, "base")
        for revision in revisions:
            migrations.upgrade(app, revision.revision)
            migrations.downgrade(app, str(revision.down_revision or "base"))
            migrations.upgrade(app, revision.revision)
    return [r.revision for r in revisions]

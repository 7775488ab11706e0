"""The test database behind the pytest plugin: never a development or production database, created
and dropped (per xdist worker), its schema built from the migrations, access blocked until asked.

What a test database was built from is recorded in it, beside its environment stamp, so
``--reuse-db`` keeps one whose record matches without asking pytest's cache. Under pytest-xdist
the migrations run once, on a template database, and each worker's database is a copy of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
import threading
import typing as t
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

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
from ..state import EXTENSION_KEY, app_context_of
from . import copies
from .copies import ConnectArgs

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


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
    with app_context_of(app):
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

    if _in_memory(url):
        return
    if app is not None:
        _refuse_unless_test(url, app, connect_args, "create")
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
    migrations, dropped at the end. Every app built on the same URLs shares it.

    What the schema was built from (:meth:`fingerprint`) is recorded in the database itself,
    beside its environment stamp, so ``reuse`` (``--reuse-db``) needs nothing else to tell a
    current database from a stale one. Under pytest-xdist (``shared``: a folder every worker of
    the run sees; ``worker``: this one's id) the schema is built once, in a template database,
    and each worker's database is a copy of it."""

    __test__ = False

    def __init__(
        self,
        app: Flask,
        *,
        reuse: bool = False,
        recreate: bool = False,
        migrations: bool = True,
        fixtures: t.Sequence[str] = (),
        shared: Path | None = None,
        worker: str = "",
    ) -> None:
        self.app = app
        self.reuse = reuse
        self.recreate = recreate
        self.use_migrations = migrations
        #: Data fixtures loaded once, committed, after the schema (``--load-fixtures``).
        self.fixtures = list(fixtures)
        self.shared = shared
        self.worker = worker
        self.reused = False
        self.sqla = sqla_of(app)
        self.urls = {key: _url(e) for key, e in engines_of(app).items()}
        self.apps: weakref.WeakSet[Flask] = weakref.WeakSet([app])
        #: A test database the suite named itself in code (a tmp_path file, ``sqlite://``, a
        #: ``test_`` database its conftest made): used as it is, never dropped unless created.
        self.suites_own = set(self.urls) <= suite_owned(app)
        self.created: list[URL] = []
        #: The template this worker's database was copied from (bind key to URL).
        self.template: dict[str | None, URL] | None = None
        #: What :meth:`setup` did, for the terminal summary.
        self.outcome = ""

    @property
    def migrations_dir(self) -> Path | None:
        """The migrations folder the schema is built from, or ``None`` for ``create_all`` (no
        folder, or ``--no-migrations``); an error naming a folder that cannot be used."""
        from ..migrations.migrate import usable_migrations

        return usable_migrations(self.app) if self.use_migrations else None

    def fingerprint(self) -> str:
        """What the schema is built from, hashed part by part: the migrations folder (or,
        without one, the models' tables as the database's dialect creates them: ``create_all``)
        and the data fixtures loaded for the session."""
        folder = self.migrations_dir
        schema = hashlib.sha256(b"alembic" if folder is not None else b"create_all")
        if folder is not None:
            for path in sorted(folder.rglob("*")):
                if path.suffix in (".py", ".ini") and "__pycache__" not in path.parts:
                    schema.update(str(path.relative_to(folder)).encode() + path.read_bytes())
        else:
            from ..migrations.migrate import import_models

            import_models(self.app)  # as the build does: every model declared
            for key, url in sorted(self.urls.items(), key=lambda kv: str(kv[0])):
                dialect = _dialect(url)
                metadata = self.sqla.metadatas.get(key)
                schema.update(f"bind {key}\n".encode())
                for table in metadata.sorted_tables if metadata is not None else ():
                    create = sa.schema.CreateTable(table).compile(dialect=dialect)
                    schema.update(str(create).encode())
                    for index in sorted(table.indexes, key=lambda i: str(i.name)):
                        create = sa.schema.CreateIndex(index).compile(dialect=dialect)
                        schema.update(str(create).encode())
        fixtures = hashlib.sha256()
        if self.fixtures:
            from ..data import fixtures as datafixtures

            for name in self.fixtures:
                fixtures.update(name.encode() + datafixtures.find(self.app, name).read_bytes())
        parts = {
            "format": _FORMAT,
            "migrations" if folder is not None else "models": schema.hexdigest()[:16],
            "fixtures": fixtures.hexdigest()[:16],
        }
        return ";".join(f"{name}={value}" for name, value in parts.items())

    def setup(self) -> None:
        """Refuse anything but a test database, then create it and build its schema (or, with
        ``reuse``, keep the one whose recorded fingerprint matches)."""
        require_test_databases(self.app)
        attach(self.app)
        with database_access():
            if self.suites_own:
                self._adopt()
                self._load_fixtures()
                return
            fingerprint = self.fingerprint()
            why = "--create-db" if self.recreate else ""
            if self.reuse and not self.recreate:
                why = self._stale(self.urls, fingerprint)
                if not why:
                    self.reused = True
                    source = "migrations" if self.migrations_dir is not None else "models"
                    self.outcome = (
                        f"reused (--reuse-db: the {source} and data fixtures are unchanged)"
                    )
                    return
            templates = self._templates()
            if templates is not None and self._copy_of(templates, fingerprint):
                return
            self._build(self.urls, fingerprint)
            how = "from the migrations" if self.migrations_dir is not None else "with create_all"
            if self.reuse:
                self.outcome = (
                    f"created {how} (--reuse-db: {why}); kept for --reuse-db"
                    if why == _NONE
                    else f"rebuilt {how} (--reuse-db: {why}); kept for --reuse-db"
                )
            else:
                recreated = " (--create-db)" if self.recreate else ""
                self.outcome = f"created {how}{recreated}; dropped at the end"

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
        """Run the migrations to head (each database passing the command gate, and stamped),
        or ``create_all`` when there are none."""
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

    # -- building, reusing ------------------------------------------------------------------------

    def _build(self, urls: dict[str | None, URL], fingerprint: str) -> None:
        """Create the databases of ``urls`` afresh, build their schema, load the session's
        data fixtures and record ``fingerprint`` (last: an interrupted build records none)."""
        self._dispose()
        servers = any(url.get_backend_name() != "sqlite" for url in urls.values())
        importing = _import_alembic() if servers and self.migrations_dir is not None else None
        for key, url in urls.items():
            drop_database(url, self.app, self._connect_args(key))
            create_database(url, self.app, self._connect_args(key))
        if importing is not None:
            importing.join()
        with self._pointed_at(urls):
            self._build_fresh()
            self._load_fixtures()
            self._record(fingerprint)

    def _build_fresh(self) -> None:
        # A database created a moment ago, each of its connections judged by the gate: Alembic
        # runs directly (the command gate's checks and stamp are for databases of unknown
        # origin), and the stamp is written with the fingerprint after.
        folder = self.migrations_dir
        with self.app.app_context(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "'get_engine' is deprecated", DeprecationWarning)
            if folder is None:
                from ..migrations.migrate import import_models

                import_models(self.app)
                self.sqla.create_all(bind_key=list(engines_of(self.app)))
                return
            from alembic import command

            from ..migrations import migrate as migrations

            config = migrations.alembic_config(self.app)
            with migrations.compile_errors():
                command.upgrade(config, "head")

    def _load_fixtures(self) -> None:
        if self.fixtures:
            from . import fixtures as part

            part.load_for_session(self.app, self.fixtures)

    def _record(self, fingerprint: str) -> None:
        """Stamp every database of the app (as the engines point now) testing, with
        ``fingerprint``."""
        from ..database import binds
        from ..database import stamp as dbstamp

        values = {dbstamp.ENV_KEY: "testing", dbstamp.SCHEMA_KEY: fingerprint}
        with self.app.app_context():
            for key in engines_of(self.app):
                with binds.connect(self.sqla, key) as connection:
                    dbstamp.record(connection, values)

    def _stale(self, urls: dict[str | None, URL], fingerprint: str) -> str:
        """Why the databases of ``urls`` cannot be reused as they are (``""``: they can)."""
        from ..database import stamp as dbstamp

        for key, url in urls.items():
            values = self._recorded(key, url)
            if values is None:
                return _NONE
            why = _difference(values.get(dbstamp.SCHEMA_KEY), fingerprint)
            if why:
                return why
        return ""

    def _recorded(self, key: str | None, url: URL) -> dict[str, str] | None:
        """What the database of ``url`` records (``None``: there is no such database), read
        on a connection the gate has judged."""
        from ..database import stamp as dbstamp
        from ..database.identity import missing_database, sqlite_path

        if url.get_backend_name() == "sqlite":
            path = sqlite_path(url, self.app.instance_path)
            if path and not os.path.exists(path):
                return None  # connecting would create it
        own = url == self.urls.get(key)
        engine = engines_of(self.app)[key] if own else self._engine_for(key, url)
        try:
            with engine.connect() as connection:
                if not own:
                    verify(connection, self.app, "reuse")
                return dbstamp.read_values(connection)
        except DBAPIError as e:
            if missing_database(e):
                return None
            raise
        finally:
            if not own:
                engine.dispose()

    @contextlib.contextmanager
    def _pointed_at(self, urls: dict[str | None, URL]) -> Iterator[None]:
        """Point the app's engines at the databases of ``urls`` inside the block (the
        migrations, ``create_all`` and the fixtures use whatever ``db.engines`` holds), each
        new connection judged by the gate."""
        if urls == self.urls:
            yield
            return
        live = engines_of(self.app)
        saved = dict(live)
        made = {key: self._engine_for(key, url) for key, url in urls.items()}
        try:
            live.update(made)
            watch(self.app)
            yield
        finally:
            with self.app.app_context():
                self.sqla.session.remove()
            live.update(saved)
            for engine in made.values():
                engine.dispose()

    def _engine_for(self, key: str | None, url: URL) -> Engine:
        """An unpooled engine on ``url`` with the options of the app's engine ``key``."""
        from ..database import binds
        from ..database.identity import strip_overrides

        options = {
            name: value
            for name, value in binds.engine_options(self.app, key).items()
            if name not in _POOL_OPTIONS
        }
        options["connect_args"] = strip_overrides(url, options.get("connect_args") or {})
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_foreign_keys)
        return engine

    # -- pytest-xdist: one template, a copy per worker ------------------------------------------

    def _templates(self) -> dict[str | None, URL] | None:
        """The template of each of this worker's databases (its name without ``_<worker>``),
        or ``None`` when they are not copied from one (no xdist, an engine that connects in
        its own way, a name of the suite's own)."""
        from ..database import binds
        from ..database.identity import sqlite_path

        if self.shared is None or not self.worker:
            return None
        suffix = f"_{self.worker}"
        found: dict[str | None, URL] = {}
        for key, url in self.urls.items():
            if _OWN_CONNECTING & set(binds.engine_options(self.app, key)):
                return None
            if url.get_backend_name() == "sqlite":
                path = sqlite_path(url, self.app.instance_path)
                folder, base = os.path.split(path)
                stem, ext = os.path.splitext(base)
                if not path or not stem.endswith(suffix):
                    return None
                found[key] = url.set(database=os.path.join(folder, stem[: -len(suffix)] + ext))
            else:
                name = url.database or ""
                if not name.endswith(suffix):
                    return None
                found[key] = url.set(database=name[: -len(suffix)])
        return found

    def _copy_of(self, templates: dict[str | None, URL], fingerprint: str) -> bool:
        """Make this worker's databases copies of ``templates``, built first (once per run, by
        whichever worker comes first; kept and checked with ``reuse``). ``False`` when a
        database cannot be copied (MySQL with views, triggers or routines): build it then."""
        assert self.shared is not None
        lock, state_file = copies.coordination(self.shared, templates)
        with copies.exclusive(lock):
            state = copies.read_state(state_file)
            if state.get("fingerprint") != fingerprint:
                current = self.reuse and not self.recreate
                current = current and not self._stale(templates, fingerprint)
                if not current:
                    self._build(templates, fingerprint)
                state.update(fingerprint=fingerprint, built_by="" if current else self.worker)
            # Whoever copies the template is one of its users: the last one done drops it.
            state["users"] = sorted({*state.get("users", []), self.worker})
            copies.write_state(state_file, state)
            self.template = templates
        # Outside the lock: the workers copy at once (nothing connects to a template that is
        # current, and it is dropped only once no worker uses it).
        self._dispose()
        copied: list[tuple[str | None, URL]] = []
        for key, url in self.urls.items():
            drop_database(url, self.app, self._connect_args(key))
            if not self._copy(key, templates[key], url):
                for done_key, done in copied:
                    drop_database(done, self.app, self._connect_args(done_key))
                return False
            copied.append((key, url))
        how = "from the migrations" if self.migrations_dir is not None else "with create_all"
        built_by = state["built_by"]
        source = (
            "kept by --reuse-db"
            if not built_by
            else f"built {how} by this worker"
            if built_by == self.worker
            else f"built {how} by {built_by}"
        )
        end = "kept for --reuse-db" if self.reuse else "dropped at the end"
        names = ", ".join(_shown(url) for url in templates.values())
        self.outcome = f"copied from {names} ({source}); {end}"
        return True

    def _copy(self, key: str | None, template: URL, url: URL) -> bool:
        """Create ``url``'s database as a copy of ``template``'s (which nothing else uses now);
        ``False`` when this backend cannot copy it."""
        connect_args = self._connect_args(key)
        _refuse_unless_test(url, self.app, connect_args, "create")
        backend = url.get_backend_name()
        if backend == "sqlite":
            copies.copy_sqlite(template, url, self.app.instance_path)
            return True
        if backend == "postgresql":
            copies.copy_postgres(template, url, connect_args)
            return True
        if backend in ("mysql", "mariadb"):
            return copies.copy_mysql(template, url, connect_args)
        return False

    def _leave_template(self) -> None:
        """This worker is done with the template: the last one out drops it (unless kept)."""
        assert self.shared is not None and self.template is not None
        lock, state_file = copies.coordination(self.shared, self.template)
        with copies.exclusive(lock):
            state = copies.read_state(state_file)
            users = [u for u in state.get("users", []) if u != self.worker]
            state["users"] = users
            if not users and state.get("fingerprint") and not self.reuse:
                for key, url in self.template.items():
                    drop_database(url, self.app, self._connect_args(key))
                state["fingerprint"] = None
            copies.write_state(state_file, state)

    def teardown(self) -> None:
        """Drop the test database unless it is kept for ``--reuse-db``."""
        for app in list(self.apps):
            _dispose(app)
        if self.suites_own:
            for key, url in self.urls.items():
                if url in self.created:
                    drop_database(url, self.app, self._connect_args(key))
            return
        if not self.reuse:
            for key, url in self.urls.items():
                drop_database(url, self.app, self._connect_args(key))
        if self.template is not None:
            self._leave_template()

    def describe(self) -> str:
        """The terminal summary's line for this database."""
        names = ", ".join(_shown(url) for url in self.urls.values())
        return f"test database {names}: {self.outcome}"

    def _connect_args(self, key: str | None) -> dict[str, t.Any]:
        from ..database import binds

        return binds.connect_args(self.app, key)

    def _dispose(self) -> None:
        _dispose(self.app)


#: Bumped when what a test database records, or how it is built, changes.
_FORMAT = "1"
#: :meth:`TestDatabase._stale`'s answer for a database that is not there.
_NONE = "none was kept"
_PARTS = {
    "migrations": "the migrations changed",
    "models": "the models changed",
    "fixtures": "the data fixtures changed",
}
#: Engine options the template's unpooled engine leaves out.
_POOL_OPTIONS = frozenset(
    {
        "poolclass",
        "pool",
        "pool_size",
        "max_overflow",
        "pool_timeout",
        "pool_recycle",
        "pool_pre_ping",
        "pool_use_lifo",
        "pool_reset_on_return",
    }
)
#: Engine options by which an engine connects somewhere of its own choosing, not to its URL.
_OWN_CONNECTING = frozenset({"creator", "async_creator", "module"})


def _import_alembic() -> threading.Thread | None:
    """Import what the migrations need in a thread, while the server drops and creates the
    database (a tenth of a second of imports against a wait of several tenths on PostgreSQL).
    Whoever imports a module first imports it; the caller joins before running Alembic."""
    if "alembic.runtime.migration" in sys.modules:
        return None

    def load() -> None:
        for name in _ALEMBIC_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # the migrations report it, in the main thread
                return

    thread = threading.Thread(target=load, name="flask_complete-import-alembic", daemon=True)
    thread.start()
    return thread


#: What running the migrations imports (Alembic, Flask-Migrate, our env.py helpers).
_ALEMBIC_MODULES = ("alembic", "alembic.command", "flask_migrate", "flask_complete.migration_env")


def _difference(recorded: str | None, fingerprint: str) -> str:
    """What changed between the fingerprint a database records and ``fingerprint``."""
    if recorded is None:
        return "it records no fingerprint (an interrupted build, or an older flask_complete)"
    if recorded == fingerprint:
        return ""
    old = dict(part.partition("=")[::2] for part in recorded.split(";"))
    new = dict(part.partition("=")[::2] for part in fingerprint.split(";"))
    if old.get("format") != new.get("format"):
        return "it was built by another version of flask_complete"
    if ("migrations" in old) != ("migrations" in new):
        return (
            "it was built from the migrations, and --no-migrations is given now"
            if "migrations" in old
            else "it was built with create_all, and the migrations build it now"
        )
    changed = [why for part, why in _PARTS.items() if old.get(part) != new.get(part)]
    return " and ".join(changed) or "its fingerprint differs"


def _shown(url: URL) -> str:
    """A database's name for the summary: its name on a server, its file name for SQLite."""
    if url.get_backend_name() == "sqlite":
        return os.path.basename(url.database or "") or "an in-memory database"
    return url.database or _config.redact_url(url)


def _sqlite_foreign_keys(dbapi_connection: t.Any, record: t.Any) -> None:
    # As the app's own engines have them (flask_complete.database.engines).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _refuse_unless_test(url: URL, app: Flask, connect_args: ConnectArgs, action: str) -> None:
    """Refuse to create ``url``'s database unless what it names (as its driver reads it) is a
    test database."""
    from ..database.identity import declared

    ident = declared(url, app.instance_path, connect_args)
    root = app.extensions[EXTENSION_KEY].root if EXTENSION_KEY in app.extensions else "."
    why = judge(ident, None, protected(app, root).items(), root)
    if why is not None:
        raise DatabaseRefused(
            f"flask_complete will not {action} {ident.describe()} for the tests: it {why}. "
            "Leave the test URL to the plugin (it derives test_<name>) or name it test_..."
        )


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
        #: What was done to each database the run set up, for the terminal summary.
        self.summary: list[str] = []
        #: app -> the engines it had when last prepared, and their test database: the same
        #: engines again (every test of a session-wide app) need no lookup and no second judgement
        #: (the gate still judges each new connection).
        self.by_app: weakref.WeakKeyDictionary[Flask, tuple[list[Engine], TestDatabase]] = (
            weakref.WeakKeyDictionary()
        )

    def created_on_first_use(self, app: Flask, key: str | None, url: URL) -> None:
        """Record a test database an app of the suite's own made by connecting."""
        self.first_use.setdefault(_render(url), (url, app, key))

    def prepare(self, app: Flask) -> TestDatabase:
        """The test database of ``app``, created and migrated on first use."""
        engines = {k: e for k, e in engines_of(app).items() if isinstance(e, Engine)}
        last = self.by_app.get(app)
        if last is not None and _same(last[0], list(engines.values())):
            return last[1]
        found = self._prepare(app, engines)
        self.by_app[app] = (list(engines.values()), found)
        return found

    def _prepare(self, app: Flask, engines: dict[str | None, Engine]) -> TestDatabase:
        from ..database.identity import declared

        require_test_databases(app)
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
            if found.outcome:
                self.summary.append(found.describe())
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
        self.by_app.clear()
        first_use, self.first_use = self.first_use, {}
        if self.options.get("reuse"):
            return
        for url, app, key in first_use.values():
            _dispose(app)
            from ..database import binds

            drop_database(url, app, binds.connect_args(app, key))


def _same(old: list[Engine], new: list[Engine]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


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

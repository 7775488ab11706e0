"""The test database behind the pytest plugin: never a development or production database, created
and dropped (per xdist worker), its schema built from the migrations, access blocked until asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import typing as t
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from . import config as _config
from .extension import EXTENSION_KEY, get_state

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


class DatabaseRefused(Exception):
    """The plugin will not use, create or drop this database; the message says why and how."""


class DatabaseBlocked(RuntimeError):
    """A test touched the plugin-built app's database without asking for it."""


def sqla_of(app: Flask) -> SQLAlchemy:
    """The ``SQLAlchemy`` instance ``app`` uses; a clear error when it has none."""
    state = app.extensions.get(EXTENSION_KEY)
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None or "sqlalchemy" not in app.extensions:
        raise DatabaseRefused(
            f"The app {app.name!r} has no database: the db fixtures need Flask-SQLAlchemy on it. "
            "Call Complete(app) (with COMPLETE_DATABASE on) in the app factory."
        )
    return t.cast("SQLAlchemy", sqla)


def engines_of(app: Flask) -> dict[str | None, t.Any]:
    """The app's live mapping of bind key to engine (or, during isolation, connection)."""
    sqla = sqla_of(app)
    with app.app_context():
        return t.cast(dict[str | None, t.Any], sqla.engines)


# -- never the development or production database -------------------------------------------------


def url_key(url: str | URL, instance_path: str) -> tuple[str, ...] | None:
    """What identifies a database: the resolved file for SQLite, else server and name."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite":
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return ("sqlite", os.path.realpath(os.path.join(instance_path, database)))
    host = parsed.host or "localhost"
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    return (backend, host, str(parsed.port or ""), database)


def protected_urls(app: Flask) -> dict[tuple[str, ...], str]:
    """The development and production databases ``app`` would use, keyed by :func:`url_key`,
    with a description of where each comes from."""
    from . import database

    state = get_state(app)
    found: dict[tuple[str, ...], str] = {}
    for env in ("development", "production"):
        try:
            settings = _config.load(app, env=env, root=state.root)
        except _config.ConfigError:
            continue
        urls: dict[str, t.Any] = {"": settings.values.get("DATABASE_URL")}
        if urls[""] is None:
            urls[""] = database.default_url(app, env)
        for key, value in (settings.values.get("SQLALCHEMY_BINDS") or {}).items():
            urls[key] = value.get("url") if isinstance(value, dict) else value
        for key, url in urls.items():
            if not isinstance(url, str):
                continue
            try:
                ident = url_key(database.normalize_url(url), app.instance_path)
            except (_config.ConfigError, sa.exc.ArgumentError):
                continue
            if ident is not None:
                where = _config.redact_url(url) + (f" (bind {key!r})" if key else "")
                found.setdefault(ident, f"the {env} database {where}")
    return found


def refusal(app: Flask) -> str | None:
    """Why ``app``, in testing, must not touch its database; ``None`` when it may."""
    hits = []
    protected = protected_urls(app)
    for key, engine in engines_of(app).items():
        url = engine.url if isinstance(engine, Engine) else engine.engine.url
        ident = url_key(url, app.instance_path)
        if ident in protected:
            bind = f" (bind {key!r})" if key else ""
            hits.append(f"{_config.redact_url(url)}{bind} is {protected[ident]}")
    if not hits:
        return None
    return (
        "flask_complete refuses to run tests against a development or production database: "
        + "; ".join(hits)
        + ". Tests get their own database: leave DATABASE_URL out of [testing] in settings.toml "
        "(the plugin derives test_<name> from the development URL) or point it at a "
        "database whose name starts with test_."
    )


_checked: weakref.WeakSet[Flask] = weakref.WeakSet()


def guard_app(app: Flask) -> None:
    """Make every engine of a testing ``app`` that points at a protected database refuse to
    connect. Runs on each app context push; after the first it costs a set lookup."""
    if app in _checked:
        return
    _checked.add(app)
    state = app.extensions.get(EXTENSION_KEY)
    if state is None or state.env != "testing" or "sqlalchemy" not in app.extensions:
        return
    message = refusal(app)
    if message is None:
        return

    def refuse(*args: t.Any) -> None:
        raise DatabaseRefused(message)

    for engine in engines_of(app).values():
        event.listen(engine, "do_connect", refuse)


# -- the test database ----------------------------------------------------------------------------

_allowed = 0


@contextlib.contextmanager
def database_access() -> Iterator[None]:
    """Allow the plugin-built app's engines to connect inside this block."""
    global _allowed
    _allowed += 1
    try:
        yield
    finally:
        _allowed -= 1


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
        if not _allowed:
            refuse()

    def on_connect(conn: Connection) -> None:
        if not _allowed:
            conn.close()
            refuse()

    # do_connect: before a new DBAPI connection is opened; engine_connect: a pooled one reused.
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

    engine.dispose()


def _in_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url_key(url, "") is None


def _require_test_name(url: URL, action: str) -> None:
    name = Path(url.database or "").name
    if not name.startswith("test_"):
        raise DatabaseRefused(
            f"flask_complete will not {action} the database {_config.redact_url(url)}: only "
            "databases whose name starts with test_ are created and dropped by the test run. "
            "Leave the test URL to the plugin (it derives test_<name>) or name it test_..."
        )


def create_database(url: URL) -> None:
    """Create the (``test_``-named) database of ``url``."""
    from . import dbcli

    if not _in_memory(url):
        _require_test_name(url, "create")
        dbcli.create_database(url)


def drop_database(url: URL) -> None:
    """Drop the (``test_``-named) database of ``url`` if it exists."""
    from . import dbcli

    if not _in_memory(url):
        _require_test_name(url, "drop")
        dbcli.drop_database(url)


def database_exists(url: URL) -> bool:
    """Whether the database of ``url`` exists (a file for SQLite)."""
    from . import dbcli

    return dbcli.database_exists(url)


def worker_url(url: URL, worker: str) -> URL:
    """``url`` for one pytest-xdist worker: ``test_notes`` -> ``test_notes_gw0``."""
    if _in_memory(url):
        return url
    database = url.database or ""
    if url.get_backend_name() == "sqlite":
        path = Path(database)
        return url.set(database=str(path.with_name(f"{path.stem}_{worker}{path.suffix}")))
    return url.set(database=f"{database}_{worker}")


def rebind(app: Flask, worker: str) -> None:
    """Point every engine of the plugin-built ``app`` at its per-worker database."""
    from . import database

    state = get_state(app)
    sqla = sqla_of(app)
    config = app.config
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    if uri is not None:
        config["SQLALCHEMY_DATABASE_URI"] = _render(worker_url(make_url(uri), worker))
    binds = config.get("SQLALCHEMY_BINDS") or {}
    for key, value in binds.items():
        options = dict(value) if isinstance(value, dict) else {"url": value}
        options["url"] = _render(worker_url(make_url(options["url"]), worker))
        binds[key] = options
    # Flask-SQLAlchemy builds engines in init_app only: register it afresh on the new URLs.
    for engine in engines_of(app).values():
        engine.dispose()
    del app.extensions["sqlalchemy"]
    sqla.init_app(app)
    bound, state.db_bound_before = state.db_bound_before, True
    try:
        database.init_app(app, state)  # the per-connection SQLite pragmas, the fork hook
    finally:
        state.db_bound_before = bound


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


class TestDatabase:
    """The session's test database for the plugin-built app: created (or reused), schema built,
    dropped at the end."""

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

    @property
    def migrations_dir(self) -> Path | None:
        """The migrations folder the schema is built from, or ``None`` for ``create_all``."""
        folder = get_state(self.app).migrations_dir
        if self.use_migrations and folder is not None and (folder / "env.py").is_file():
            return folder
        return None

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
        """Refuse a protected database, then create the test database and build its schema."""
        message = refusal(self.app)
        if message is not None:
            raise DatabaseRefused(message)
        for url in self.urls.values():
            if not _in_memory(url):
                _require_test_name(url, "create")
        for engine in engines_of(self.app).values():
            if engine.dialect.name == "sqlite":
                _sqlite_savepoints(engine)
        with database_access():
            fingerprint = self.fingerprint()
            if (
                self.reuse
                and not self.recreate
                and self.cache is not None
                and self.cache.get(self._cache_key(), None) == fingerprint
                and all(database_exists(url) for url in self.urls.values())
            ):
                self.reused = True
                return
            self._dispose()
            for url in self.urls.values():
                drop_database(url)
                create_database(url)
            self.build_schema()
            if self.cache is not None:
                self.cache.set(self._cache_key(), fingerprint if self.reuse else None)

    def build_schema(self) -> None:
        """Run the migrations to head, or ``create_all`` when there are none."""
        folder = self.migrations_dir
        with self.app.app_context():
            if folder is None:
                self.sqla.create_all()
                return
            from . import migrations

            migrations.upgrade(self.app, revision="head")

    def teardown(self) -> None:
        """Drop the test database unless it is kept for ``--reuse-db``."""
        self._dispose()
        if self.reuse:
            return
        for url in self.urls.values():
            drop_database(url)

    def _dispose(self) -> None:
        for engine in engines_of(self.app).values():
            if isinstance(engine, Engine):
                engine.dispose()


def _url(engine: t.Any) -> URL:
    return t.cast(URL, engine.url if isinstance(engine, Engine) else engine.engine.url)


def _dialect(url: URL) -> sa.engine.Dialect:
    return url.get_dialect()()


# -- migrations -----------------------------------------------------------------------------------


def check_migrations(app: Flask) -> str | None:
    """What differs between the models and the migrations, measured on the migrated test
    database; ``None`` when they match."""
    from . import migrations

    if not migrations.has_migrations(app):
        return (
            f"--check-migrations: there is no migrations folder ({migrations.migrations_dir(app)})."
            " Create it with `flask complete init` and `flask db migrate`, or drop the option."
        )
    with database_access():
        found = migrations.check(app)
    return f"--check-migrations: {found}" if found else None


def walk_migrations(app: Flask) -> list[str]:
    """Walk every migration on the test database: down to base, then for each revision
    upgrade, downgrade and upgrade again; the database ends at head. Returns the revisions in
    order. Use it in a test with ``transactional_db`` (schema changes cannot be rolled back on
    every database)."""
    from alembic.script import ScriptDirectory

    from . import migrations

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

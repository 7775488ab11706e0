"""What the pytest plugin's fixtures run: finding the app, per-test isolation, query counting,
settings overrides and the live server (the test database itself:
:mod:`flask_complete.testing.databases`).

Imported only when a fixture or hook needs it, so that loading the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
import threading
import typing as t
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Connection

from ..database.gate import require_test_databases
from ..settings import config as _config
from .databases import (
    DatabaseBlocked,
    DatabaseRefused,
    TestDatabase,
    TestDatabases,
    check_migrations,
    database_access,
    engines_of,
    sqla_of,
    walk_migrations,
)
from .isolation import begin_outer, close, connect, ending

if t.TYPE_CHECKING:
    from flask.testing import FlaskClient


__all__ = [
    "DatabaseBlocked",
    "DatabaseRefused",
    "LiveServer",
    "SettingsOverride",
    "TestDatabase",
    "TestDatabases",
    "check_migrations",
    "count_queries",
    "emptied_after",
    "isolated",
    "load_app",
    "test_client",
    "walk_migrations",
]

# -- finding the app ------------------------------------------------------------------------------


def load_app(import_name: str, app_name: str | None) -> Flask:
    """Import the app the way ``flask --app`` does (``module``, ``module:app`` or
    ``module:create_app()``), its folder already on ``sys.path``."""
    from flask.cli import locate_app

    app: Flask = locate_app(import_name, app_name)
    # The app this plugin builds is the one in testing mode; apps a suite builds keep their own.
    app.testing = True
    if not app.secret_key:
        # Sessions (logins, flash) need a key; a test run has no secret worth keeping.
        app.secret_key = secrets.token_hex(32)
    return app


def test_client(app: Flask) -> FlaskClient:
    """A test client whose requests each get their own app context (and ``g``), as in
    production, although the test has the app's context pushed."""
    return client_class(app)(app, app.response_class, use_cookies=True)


def client_class(app: Flask) -> type[FlaskClient]:
    """``app``'s test client class (Flask's, or the app's own), its requests each in their
    own app context: Flask reuses a pushed app context for a request of the same app, so ``g``
    (and Flask-Login's cached user) would leak from one request, and one client, to the next."""
    from flask.testing import FlaskClient

    base: type[FlaskClient] = app.test_client_class or FlaskClient
    if issubclass(base, _FreshContexts):
        return base
    found = _CLIENT_CLASSES.get(base)
    if found is None:
        found = _CLIENT_CLASSES[base] = type(base.__name__, (_FreshContexts, base), {})
    return found


def fresh_contexts(app: Flask) -> None:
    """Make ``app.test_client()`` (a conftest's own ``client`` fixture) such a client too."""
    app.test_client_class = client_class(app)


class _FreshContexts:
    """Mixed in before a ``FlaskClient`` class: see :func:`client_class`."""

    application: Flask
    preserve_context: bool

    def open(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        opened = super().open  # type: ignore[misc]
        if self.preserve_context:  # `with client:` keeps the request context: same context
            return opened(*args, **kwargs)
        session = _test_session(self.application)
        if session is not None:
            session.flush()  # the request sees what the test wrote
        response = contextvars.Context().run(opened, *args, **kwargs)
        if session is not None:
            session.expire_all()  # and the test sees what the request wrote
        return response


#: FlaskClient class -> its subclass with :class:`_FreshContexts`.
_CLIENT_CLASSES: dict[type[t.Any], type[t.Any]] = {}


def _test_session(app: Flask) -> t.Any:
    """The test's own session, when the test has ``app``'s context and has used the session."""
    from flask import current_app, has_app_context

    sqla = app.extensions.get("sqlalchemy")
    if sqla is None or not has_app_context():
        return None
    if current_app._get_current_object() is not app:  # type: ignore[attr-defined]
        return None
    return sqla.session if sqla.session.registry.has() else None


# -- per-test isolation ---------------------------------------------------------------------------

_MISSING = object()


def _end_sessions(app: Flask, sqla: t.Any) -> None:
    """Close the session of the current app context when it is ``app``'s (Flask-SQLAlchemy keeps
    one per context: a conftest may have pushed its own for the whole test). A context pushed
    later has a session of its own, and a popped one has closed its session."""
    from flask import current_app, has_app_context

    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        sqla.session.remove()


@contextlib.contextmanager
def isolated(app: Flask) -> Iterator[None]:
    """Run the block in one outer transaction per bind, rolled back after; the session joins it
    with SAVEPOINTs, so the code under test may ``commit()`` and ``rollback()`` freely."""
    sqla = sqla_of(app)
    require_test_databases(app)
    engines = engines_of(app)
    saved = dict(engines)
    factory = sqla.session.session_factory
    old_mode = factory.kw.get("join_transaction_mode", _MISSING)
    opened: list[tuple[Connection, sa.engine.Transaction]] = []
    with database_access():
        _end_sessions(app, sqla)
        try:
            for key, engine in saved.items():
                # A connection that also answers as the engine: db.engine stays engine-like.
                conn = connect(engine)
                try:
                    outer = begin_outer(conn)
                except BaseException:
                    close(conn, None)
                    raise
                opened.append((conn, outer))
                # Flask-SQLAlchemy's Session.get_bind reads this mapping, not a session bind.
                engines[key] = conn
            factory.configure(join_transaction_mode="create_savepoint")
            yield
        finally:
            for conn, _ in opened:
                ending(conn)
            _end_sessions(app, sqla)
            if old_mode is _MISSING:
                factory.kw.pop("join_transaction_mode", None)
            else:
                factory.kw["join_transaction_mode"] = old_mode
            engines.update(saved)
            for conn, outer in reversed(opened):
                close(conn, outer)


@contextlib.contextmanager
def emptied_after(app: Flask) -> Iterator[None]:
    """Let the block commit for real; delete every row of the models' tables after it."""
    sqla = sqla_of(app)
    require_test_databases(app)
    with database_access():
        try:
            yield
        finally:
            _end_sessions(app, sqla)
            with app.app_context():
                for key, engine in engines_of(app).items():
                    metadata = sqla.metadatas.get(key)
                    if metadata is None:
                        continue
                    with engine.begin() as conn:
                        for table in reversed(metadata.sorted_tables):
                            conn.execute(table.delete())


# -- query counting -------------------------------------------------------------------------------

_NOT_COUNTED = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK TO|BEGIN|COMMIT|ROLLBACK)\b", re.I)


class QueryCount:
    """The SQL statements run inside :func:`count_queries`."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def report(self) -> str:
        """The statements, numbered, for an assertion message."""
        return "\n".join(f"  {i}. {s.strip()}" for i, s in enumerate(self.statements, 1))


@contextlib.contextmanager
def count_queries(app: Flask) -> Iterator[QueryCount]:
    """Count the SQL statements the app's engines run inside the block (transaction control
    such as SAVEPOINT is not counted)."""
    found = QueryCount()

    def record(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        if not _NOT_COUNTED.match(statement):
            found.statements.append(statement)

    targets = list({id(e): e for e in engines_of(app).values()}.values())
    for target in targets:
        event.listen(target, "before_cursor_execute", record)
    try:
        yield found
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", record)


def query_assertion(app: Flask, check: Callable[[int], bool], expected: str) -> t.Any:
    """A context manager failing when the number of statements breaks ``check``."""

    @contextlib.contextmanager
    def manager() -> Iterator[QueryCount]:
        with count_queries(app) as found:
            yield found
        if not check(len(found)):
            raise AssertionError(
                f"Expected {expected} SQL statements, {len(found)} ran:\n{found.report()}"
            )

    return manager()


# -- settings, live server ------------------------------------------------------------------------


class SettingsOverride:
    """``settings["KEY"] = value`` for one test; every change is undone after it."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._saved: dict[str, t.Any] = {}

    def _remember(self, key: str) -> None:
        if _config.is_init_time_key(key):
            raise KeyError(
                f"{key} is read once, when the app is built (Complete.init_app): changing it for "
                "one test would have no effect. Build an app for that test instead, e.g. "
                f"create_app({{{key!r}: ...}}), or set it in [testing] in settings.toml."
            )
        if key not in self._saved:
            self._saved[key] = self._app.config.get(key, _MISSING)

    def __setitem__(self, key: str, value: t.Any) -> None:
        self._remember(key)
        self._app.config[key] = value

    def __getitem__(self, key: str) -> t.Any:
        return self._app.config[key]

    def __delitem__(self, key: str) -> None:
        self._remember(key)
        self._app.config.pop(key, None)

    def update(self, values: t.Mapping[str, t.Any] | None = None, **more: t.Any) -> None:
        """Set several keys at once."""
        for key, value in {**(values or {}), **more}.items():
            self[key] = value

    def restore(self) -> None:
        """Put back every value changed through this object."""
        for key, value in self._saved.items():
            if value is _MISSING:
                self._app.config.pop(key, None)
            else:
                self._app.config[key] = value
        self._saved.clear()


class LiveServer:
    """The app served by Werkzeug on a free loopback port, in a thread."""

    def __init__(self, app: Flask, host: str = "127.0.0.1") -> None:
        from werkzeug.serving import make_server

        self.server = make_server(host, 0, app, threaded=True)
        self.host = host
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self._thread.join()
        self.server.server_close()

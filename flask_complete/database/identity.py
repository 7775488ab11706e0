"""Which database a connection is really on, as the server or the filesystem names it.

A URL's text is a hint: psycopg's ``dbname`` and PyMySQL's ``database``/``db`` query parameters
override its path, a service file or ``PGDATABASE`` fill in what it leaves out, and any number of
host names, sockets, links and encodings reach the same place. :func:`ask` asks the connection
itself (PostgreSQL ``current_database()`` and the cluster's system identifier, MySQL/MariaDB
``DATABASE()``, ``@@hostname`` and ``@@port``, SQLite ``PRAGMA database_list`` and the file's
inode); :func:`declared` reads a URL the way its driver will, for databases nobody may connect
to (production) or that do not exist yet.

Pure functions of connections, URLs and the filesystem: this module imports only SQLAlchemy.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError

#: Query parameters (and connect arguments) by which a driver picks another database than the
#: URL's path names.
OVERRIDES = {"postgresql": ("dbname",), "mysql": ("database", "db"), "sqlite": ()}


@dataclass(frozen=True)
class Identity:
    """A database as its server names it: ``backend`` (``sqlite``, ``postgresql``, ``mysql``),
    ``name`` (the database's name, or a SQLite file's real path; empty in memory), ``server``
    (the cluster or server; ``None`` when only declared, not asked) and, for a SQLite file that
    exists, its ``(device, inode)``."""

    backend: str
    name: str
    server: str | None = None
    file: tuple[int, int] | None = None

    @property
    def in_memory(self) -> bool:
        return self.backend == "sqlite" and not self.name

    def same(self, other: Identity) -> bool:
        """Whether both name one database. A declared identity (no server) matches any server
        with that database name: when in doubt, the same."""
        if self.backend != other.backend:
            return False
        if self.backend == "sqlite":
            if self.file is not None and other.file is not None:
                return self.file == other.file
            return bool(self.name) and self.name == other.name
        if self.name != other.name:
            return False
        return self.server is None or other.server is None or self.server == other.server

    def describe(self) -> str:
        if self.backend == "sqlite":
            return f"the SQLite file {self.name}" if self.name else "an in-memory SQLite database"
        return f"the {self.backend} database {self.name!r}"


def backend_of(url: URL) -> str:
    backend = url.get_backend_name()
    return "mysql" if backend == "mariadb" else backend


def _file(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


def sqlite_identity(path: str) -> Identity:
    """The SQLite file at ``path`` (real path, links resolved; its inode if it exists)."""
    if not path:
        return Identity("sqlite", "")
    real = os.path.realpath(path)
    return Identity("sqlite", real, "", _file(real))


def sqlite_path(url: URL, instance_path: str) -> str:
    """The file a SQLite ``url`` opens, resolved against ``instance_path`` as Flask-SQLAlchemy
    resolves it (``""`` in memory)."""
    database = url.database or ""
    if database.startswith("file:") and url.query.get("uri"):
        # Opened as a URI (any uri value, as Flask-SQLAlchemy reads it): the path is the file.
        if url.query.get("mode") == "memory":
            return ""
        database = database[5:]
    if not database or database == ":memory:":
        return ""
    return os.path.join(instance_path, database)


def declared_name(url: URL, connect_args: t.Mapping[str, t.Any] | None = None) -> str:
    """The database a server driver connects to for ``url``: a connect argument or query
    parameter that overrides the path, else the path, else (PostgreSQL) ``PGDATABASE``, a
    service or the user's name; ``""`` when nothing names one."""
    backend = backend_of(url)
    for source in (connect_args or {}, url.query):
        for key in OVERRIDES.get(backend, ()):
            value = source.get(key)
            if value:
                return str(value[-1] if isinstance(value, tuple) else value)
    if url.database:
        return url.database
    if backend == "postgresql":
        if "service" in url.query or os.environ.get("PGSERVICE"):
            return ""  # only the service file knows: ask the server
        return os.environ.get("PGDATABASE") or url.username or os.environ.get("PGUSER") or ""
    return ""


def declared(
    url: str | URL, instance_path: str, connect_args: t.Mapping[str, t.Any] | None = None
) -> Identity:
    """What ``url`` names, read as its driver reads it, without connecting."""
    parsed = make_url(url)
    backend = backend_of(parsed)
    if backend == "sqlite":
        return sqlite_identity(sqlite_path(parsed, instance_path))
    return Identity(backend, declared_name(parsed, connect_args))


def without_overrides(url: URL, name: str | None) -> URL:
    """``url`` naming the database ``name`` in its path (``None``: no database), with every
    query parameter that would override it removed."""
    url = url.difference_update_query(OVERRIDES.get(backend_of(url), ()))
    # set() keeps the old name for None: clearing it needs the tuple's own _replace.
    return url.set(database=name) if name else url._replace(database=None)


def strip_overrides(url: URL, connect_args: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``connect_args`` without the arguments that would pick another database than ``url``'s."""
    drop = OVERRIDES.get(backend_of(url), ())
    return {k: v for k, v in connect_args.items() if k not in drop}


# -- asking ---------------------------------------------------------------------------------------


def ask(connection: Connection) -> Identity:
    """The database ``connection`` is on, as its server (or SQLite) says. Leaves no transaction
    behind that it began."""
    began = not connection.in_transaction()
    try:
        return _ask(connection)
    finally:
        if began and connection.in_transaction():
            connection.rollback()


def _ask(connection: Connection) -> Identity:
    name = connection.dialect.name
    if name == "sqlite":
        rows = connection.exec_driver_sql("PRAGMA database_list").all()
        main = next((row[2] for row in rows if row[1] == "main"), "")
        return sqlite_identity(str(main or ""))
    if name == "postgresql":
        database, allowed = connection.exec_driver_sql(
            "SELECT current_database(), has_function_privilege('pg_control_system()', 'execute')"
        ).one()
        if allowed:  # the cluster's own identifier, however it was reached
            server = connection.exec_driver_sql(
                "SELECT system_identifier::text FROM pg_control_system()"
            ).scalar_one()
        else:
            address, port = connection.exec_driver_sql(
                "SELECT host(inet_server_addr()), current_setting('port')"
            ).one()
            server = f"{address or 'local'}:{port}"
        return Identity("postgresql", str(database), str(server))
    if name in ("mysql", "mariadb"):
        database, host, port = connection.exec_driver_sql(
            "SELECT DATABASE(), @@hostname, @@port"
        ).one()
        return Identity("mysql", str(database or ""), f"{host}:{port}")
    # Another dialect: trust what it was told.
    url = connection.engine.url
    return Identity(url.get_backend_name(), url.database or "", url.render_as_string())


def missing_database(error: BaseException) -> bool:
    """Whether connecting failed because the server has no such database (``error``: the
    driver's exception, or SQLAlchemy's around it)."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    code = orig.args[0] if orig is not None and orig.args else None
    text = str(orig).lower()
    return code == 1049 or ("database" in text and "does not exist" in text)


_probed: dict[tuple[str, ...], Identity | None] = {}


def probe(
    url: str | URL, connect_args: t.Mapping[str, t.Any] | None = None, *, cache: bool = False
) -> Identity | None:
    """Connect to ``url`` on its own connection and :func:`ask`; ``None`` when the database
    does not exist (a SQLite file is never created by looking). Raises on any other failure.
    With ``cache``, the answer is kept for the process (per URL, connect arguments and the
    libpq variables that steer it)."""
    parsed = make_url(url)
    if backend_of(parsed) == "sqlite":
        path = sqlite_path(parsed, "")
        return sqlite_identity(path) if not path or os.path.exists(path) else None
    key = (
        parsed.render_as_string(hide_password=False),
        repr(sorted((connect_args or {}).items())),
        *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PG")),
    )
    if cache and key in _probed:
        return _probed[key]
    engine = sa.create_engine(
        parsed, poolclass=sa.pool.NullPool, connect_args=dict(connect_args or {})
    )
    try:
        with engine.connect() as connection:
            found: Identity | None = ask(connection)
    except DBAPIError as e:
        if not missing_database(e):
            raise
        found = None
    finally:
        engine.dispose()
    if cache:
        _probed[key] = found
    return found

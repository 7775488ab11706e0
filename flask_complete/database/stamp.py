"""Which environment a database belongs to, as the database itself records it.

``flask db create | prepare | upgrade`` stamp the database with the environment they ran in, in a
one-row table of ours beside ``alembic_version`` (Rails keeps ``ar_internal_metadata`` for the
same purpose). No model's metadata holds that table, and autogenerate is told to ignore it. What
each command may do with a stamped database is :mod:`.environments`' to decide.

Importing this module costs nothing beyond SQLAlchemy and Click.
"""

from __future__ import annotations

import contextlib
import os
import typing as t

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError

from ..settings.config import redact_url
from .identity import missing_database

if t.TYPE_CHECKING:
    pass

#: The table of ours, beside ``alembic_version``; key/value rows, ``environment`` among them.
TABLE_NAME = "flask_complete_metadata"
ENV_KEY = "environment"
#: What the pytest plugin built a test database from (``--reuse-db`` compares it): see
#: :mod:`flask_complete.testing.databases`.
SCHEMA_KEY = "test_schema"
PRODUCTION = "production"
FLAG = "--i-know-this-is-production"
#: Tables that say nothing about whose data a database holds.
_BOOKKEEPING = frozenset({TABLE_NAME, "alembic_version"})

_metadata = sa.MetaData()
table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


# -- the stamp ------------------------------------------------------------------------------------

#: What :func:`_lookup` returns for a database that does not exist.
_MISSING = object()


def _sqlite_file(url: URL) -> str | None:
    """The file of a SQLite URL; ``None`` for an in-memory or URI database."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else database


def _read(connection: Connection) -> str | None:
    began = not connection.in_transaction()
    try:
        # Look before reading: a failed SELECT would abort the caller's transaction on
        # PostgreSQL. Listing the tables raises nothing anywhere (MySQL's has_table probes
        # with a statement that fails, which an app's error hooks would see).
        if TABLE_NAME not in sa.inspect(connection).get_table_names():
            return None
        query = sa.select(table.c.value).where(table.c.key == ENV_KEY)
        value = connection.execute(query).scalar_one_or_none()
        return None if value is None else str(value)
    finally:
        if began:
            # Leave the connection as it was: no transaction begun by the read.
            connection.rollback()


def _lookup(bind: Connection | URL | str, connect_args: dict[str, t.Any] | None) -> t.Any:
    """The stamp of ``bind``, ``None`` when unstamped, :data:`_MISSING` without a database."""
    if isinstance(bind, Connection):
        return _read(bind)
    url = make_url(bind)
    path = _sqlite_file(url)
    if path is not None and not os.path.exists(path):
        return _MISSING  # connecting would create the file
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args or {})
    try:
        with engine.connect() as connection:
            return _read(connection)
    except DBAPIError as e:
        if missing_database(e):
            return _MISSING
        raise
    finally:
        engine.dispose()


def _holdings(connection: Connection, rows: bool) -> list[str]:
    """The tables of ``connection``'s database that hold data (with ``rows``: that hold rows),
    ours and Alembic's aside. Leaves no transaction behind that it began."""
    began = not connection.in_transaction()
    try:
        names = sorted(set(sa.inspect(connection).get_table_names()) - _BOOKKEEPING)
        if not rows:
            return names
        quote = connection.dialect.identifier_preparer.quote
        return [
            name
            for name in names
            if connection.exec_driver_sql(f"SELECT 1 FROM {quote(name)} LIMIT 1").first()
        ]
    finally:
        if began and connection.in_transaction():
            connection.rollback()


def holdings(
    bind: Connection | URL | str, connect_args: dict[str, t.Any] | None = None, *, rows: bool
) -> list[str]:
    """:func:`_holdings` of ``bind`` (a URL is opened on its own unpooled connection; a missing
    database holds nothing)."""
    if isinstance(bind, Connection):
        return _holdings(bind, rows)
    url = make_url(bind)
    path = _sqlite_file(url)
    if path is not None and not os.path.exists(path):
        return []
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args or {})
    try:
        with engine.connect() as connection:
            return _holdings(connection, rows)
    except DBAPIError as e:
        if missing_database(e):
            return []
        raise
    finally:
        engine.dispose()


def read_stamp(
    bind: Connection | URL | str, connect_args: dict[str, t.Any] | None = None
) -> str | None:
    """The environment ``bind`` (a connection, or a URL opened on its own unpooled connection)
    is stamped with; ``None`` when unstamped or when the database, file or table is missing."""
    found = _lookup(bind, connect_args)
    return None if found is _MISSING else t.cast("str | None", found)


def read_values(connection: Connection) -> dict[str, str]:
    """Every key of our table on ``connection``'s database (empty without the table), in one
    listing and one query. Leaves no transaction behind that it began."""
    began = not connection.in_transaction()
    try:
        if TABLE_NAME not in sa.inspect(connection).get_table_names():
            return {}
        rows = connection.execute(sa.select(table.c.key, table.c.value)).all()
        return {str(key): str(value) for key, value in rows}
    finally:
        if began and connection.in_transaction():
            connection.rollback()


def record(connection: Connection, values: t.Mapping[str, str]) -> None:
    """Set ``values`` (key to value) in our table, creating it if needed; committed unless the
    caller holds a transaction."""
    with contextlib.nullcontext() if connection.in_transaction() else connection.begin():
        table.create(connection, checkfirst=True)
        connection.execute(table.delete().where(table.c.key.in_(list(values))))
        connection.execute(table.insert(), [{"key": k, "value": v} for k, v in values.items()])


def stamp(connection: Connection, env: str) -> None:
    """Record ``env`` as the environment of ``connection``'s database, creating our table if
    needed; committed unless the caller holds a transaction."""
    with contextlib.nullcontext() if connection.in_transaction() else connection.begin():
        table.create(connection, checkfirst=True)
        connection.execute(table.delete().where(table.c.key == ENV_KEY))
        connection.execute(table.insert().values(key=ENV_KEY, value=env))


# -- the app's own environment --------------------------------------------------------------------


class EnvironmentMismatch(RuntimeError):
    """A production app was asked to serve a request on a database stamped for another
    environment."""


def mismatch_message(url: URL, stamped: str, env: str, bind: str | None = None) -> str:
    """What to say when an app in ``env`` opens the database ``url`` stamped ``stamped``."""
    flag = f" {FLAG}" if stamped == PRODUCTION else ""
    where = f" --bind {bind}" if bind else ""
    refused = " It refuses to serve requests on it." if env == PRODUCTION else ""
    return (
        f"The database {redact_url(url)} is stamped {stamped}, but the app runs in {env}."
        f"{refused} Run the app in {stamped} (FLASK_ENV={stamped}), or point it at the {env} "
        f"database; if this database now belongs to {env}, re-stamp it: "
        f"`FLASK_ENV={env} flask db environment {env}{where}{flag}`."
    )


def refuse_requests(message: str) -> t.Callable[[Connection], None]:
    """An ``engine_connect`` listener that refuses connections made while serving a request
    (commands, such as the re-stamping one, still connect)."""

    def refuse(connection: Connection) -> None:
        from flask import has_request_context

        if has_request_context():
            connection.close()
            raise EnvironmentMismatch(message)

    return refuse


# -- an app's database ----------------------------------------------------------------------------


# -- autogenerate ---------------------------------------------------------------------------------

IncludeObject = t.Callable[[t.Any, str | None, str, bool, t.Any], bool]


def hide_table(then: IncludeObject | None = None) -> IncludeObject:
    """An Alembic ``include_object`` hook that hides our table from autogenerate, then asks
    ``then`` (the app's own hook) about everything else."""
    if getattr(then, "hides_flask_complete_table", False):
        return t.cast(IncludeObject, then)

    def include_object(
        obj: t.Any, name: str | None, type_: str, reflected: bool, compare_to: t.Any
    ) -> bool:
        if name == TABLE_NAME and type_ == "table":
            return False
        if type_ != "table" and getattr(getattr(obj, "table", None), "name", None) == TABLE_NAME:
            return False
        return then(obj, name, type_, reflected, compare_to) if then else True

    include_object.hides_flask_complete_table = True  # type: ignore[attr-defined]
    return include_object

"""Copies of a migrated template database for pytest-xdist workers: the lock and the state file
the workers share, and a copy per dialect (SQLite's backup API, PostgreSQL's ``CREATE DATABASE
... TEMPLATE``, MySQL/MariaDB's tables and rows)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

ConnectArgs = dict[str, t.Any] | None


def coordination(shared: Path, templates: dict[str | None, URL]) -> tuple[Path, Path]:
    """The lock file and the state file the workers share for ``templates``."""
    names = "|".join(
        url.render_as_string(hide_password=False) for _, url in sorted(templates.items(), key=str)
    )
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    return shared / f"{digest}.lock", shared / f"{digest}.json"


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing) across processes; a
    process that dies lets go."""
    with open(path, "a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)  # the lock covers the byte at the position
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ten seconds: keep waiting
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_state(path: Path) -> dict[str, t.Any]:
    try:
        return t.cast(dict[str, t.Any], json.loads(path.read_text()))
    except FileNotFoundError:
        return {}


def write_state(path: Path, state: dict[str, t.Any]) -> None:
    path.write_text(json.dumps(state))


def copy_sqlite(template: URL, url: URL, instance_path: str) -> None:
    """Copy the SQLite file of ``template`` to ``url``'s, with SQLite's backup API (what the
    template's journal still holds included)."""
    import sqlite3

    from ..database.identity import sqlite_path

    target = sqlite_path(url, instance_path)
    source = sqlite3.connect(sqlite_path(template, instance_path))
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    except BaseException:
        Path(target).unlink(missing_ok=True)
        raise
    finally:
        source.close()


def _maintenance(url: URL, connect_args: ConnectArgs) -> Engine:
    """An autocommit engine on ``url``'s server, outside any test database (PostgreSQL's
    ``postgres`` database; no database on MySQL)."""
    from ..database.identity import strip_overrides, without_overrides

    maintenance = "postgres" if url.get_backend_name() == "postgresql" else None
    return sa.create_engine(
        without_overrides(url, maintenance),
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args=strip_overrides(url, connect_args or {}),
    )


def _quote(url: URL, name: str) -> str:
    # Not the dialect's preparer: it doubles "%" for drivers that format their parameters.
    if url.get_backend_name() == "postgresql":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _run(connection: Connection, statement: str) -> list[t.Any]:
    """Run ``statement`` as it is, on the driver's own cursor (no parameters: a ``%`` in it
    stays a ``%``); its rows, if any."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        cursor.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []
    except driver_error as e:  # as SQLAlchemy would have wrapped it
        raise DBAPIError.instance(statement, None, e, driver_error) from e
    finally:
        cursor.close()


def copy_postgres(template: URL, url: URL, connect_args: ConnectArgs) -> None:
    """``CREATE DATABASE <url's> TEMPLATE <template's>`` (the template may have no other
    session)."""
    import click

    engine = _maintenance(url, connect_args)
    try:
        with engine.connect() as conn:
            _run(
                conn,
                f"CREATE DATABASE {_quote(url, url.database or '')} "
                f"TEMPLATE {_quote(url, template.database or '')}",
            )
    except DBAPIError as e:
        said = str(e.orig).strip()
        fix = (
            " Close the other sessions on it (pg_stat_activity lists them), then run the tests "
            "again."
            if "other users" in said
            else ""
        )
        raise click.ClickException(
            f"Could not copy the template database {template.database!r} for this pytest-xdist "
            f"worker: {said}.{fix}"
        ) from e
    finally:
        engine.dispose()


def copy_mysql(template: URL, url: URL, connect_args: ConnectArgs) -> bool:
    """Copy ``template``'s tables and rows into a new database of ``url``'s (``SHOW CREATE
    TABLE``, then ``INSERT ... SELECT`` each table, our own last); ``False`` when the template
    holds more than tables (views, triggers, routines, events, sequences), which a copy of
    tables would miss."""
    engine = _maintenance(url, connect_args)
    source, target = template.database or "", url.database or ""
    into, origin = _quote(url, target), _quote(url, source)
    try:
        with engine.connect() as conn:
            others = conn.execute(_MYSQL_OTHERS, {"schema": source}).scalar()
            if others:
                return False
            charset, collation = conn.execute(
                sa.text(
                    "SELECT default_character_set_name, default_collation_name "
                    "FROM information_schema.schemata WHERE schema_name = :schema"
                ),
                {"schema": source},
            ).one()
            columns: dict[str, list[str]] = {}
            for table, column in conn.execute(
                sa.text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = :schema AND COALESCE(generation_expression, '') = '' "
                    "ORDER BY table_name, ordinal_position"
                ),
                {"schema": source},
            ):
                columns.setdefault(str(table), []).append(_quote(url, str(column)))
            tables = sorted(columns, key=lambda name: (name == _STAMP_TABLE, name))
            creates = [
                _run(conn, f"SHOW CREATE TABLE {origin}.{_quote(url, name)}")[0][1]
                for name in tables
            ]
            _run(conn, f"CREATE DATABASE {into} CHARACTER SET {charset} COLLATE {collation}")
            try:
                _run(conn, f"USE {into}")
                _run(conn, "SET FOREIGN_KEY_CHECKS = 0")
                for create in creates:
                    _run(conn, create)
                for name in tables:
                    listed = ", ".join(columns[name])
                    table = _quote(url, name)
                    _run(
                        conn,
                        f"INSERT INTO {into}.{table} ({listed}) SELECT {listed} "
                        f"FROM {origin}.{table}",
                    )
            except BaseException:
                _run(conn, f"DROP DATABASE IF EXISTS {into}")
                raise
    finally:
        engine.dispose()
    return True


_STAMP_TABLE = "flask_complete_metadata"
_MYSQL_OTHERS = sa.text(
    "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :schema "
    "AND table_type <> 'BASE TABLE') + (SELECT COUNT(*) FROM information_schema.triggers "
    "WHERE trigger_schema = :schema) + (SELECT COUNT(*) FROM information_schema.routines "
    "WHERE routine_schema = :schema) + (SELECT COUNT(*) FROM information_schema.events "
    "WHERE event_schema = :schema)"
)

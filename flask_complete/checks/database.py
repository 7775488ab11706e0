"""The checks of ``flask complete check`` that need the database: can it be reached, are its
migrations at their head, is it stamped with this environment, does it have the login's tables.

Each connects; production start-up runs none of them. The findings are made by the check
functions of :mod:`flask_complete.checks.rules`, which imports this module when a check runs.
"""

from __future__ import annotations

import typing as t

from ..settings import config as _config
from ..settings.config import Problem
from .table import _found

if t.TYPE_CHECKING:
    from flask import Flask

    from ..state import CompleteState


def database_error(app: Flask, state: CompleteState, bind: str | None = None) -> str | None:
    """Connect to the database ``bind`` (default: the default one) and run ``SELECT 1``; what
    went wrong, or ``None``.

    Servers are tried on a separate, unpooled connection with a connect timeout, so a firewalled
    host fails the check instead of hanging it.
    """
    import sqlalchemy as sa

    from ..database import binds

    assert state.db is not None
    with app.app_context():
        engine = binds.bind_of(state.db, bind).engine
    if engine.dialect.name == "sqlite":
        from ..database.urls import sqlite_file

        path = sqlite_file(engine.url)
        if path is not None and not path.exists():
            # Connecting would create it: an empty file the app would then take for its data.
            return f"{_NO_SQLITE_FILE} {path} does not exist."
    temporary = engine.dialect.name in ("postgresql", "mysql", "mariadb")
    if temporary:
        user = binds.connect_args(app, bind)
        engine = sa.create_engine(
            engine.url,
            poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT, **user},
        )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:
        return _first_line(e)
    finally:
        if temporary:
            engine.dispose()
    return None


def database_findings(app: Flask, state: CompleteState) -> list[Problem]:
    """Reachability of every database, then the migrations and the environment stamps of those
    that answer."""
    import dataclasses

    from ..database import binds
    from ..database import environments as dbenv

    keys = binds.keys(app)
    findings: list[Problem] = []
    reachable = []
    for key in keys:
        with app.app_context():
            url = binds.url(state.db, key)  # type: ignore[arg-type]
        error = database_error(app, state, key)
        found = check_database(url.render_as_string(hide_password=False), error)
        findings += [dataclasses.replace(p, key=binds.setting(key)) for p in found]
        if error is None:
            reachable.append(key)
    if reachable:
        findings += _migration_findings(app, reachable)
        findings += [p for p in dbenv.check(app) if p.key in {binds.setting(k) for k in reachable}]
        findings += _auth_findings(app, reachable)
    return findings


def _auth_findings(app: Flask, reachable: list[str | None]) -> list[Problem]:
    import sqlalchemy as sa

    from ..auth.state import state_or_none
    from ..database import binds

    auth = state_or_none(app)
    if auth is None:
        return []
    from ..auth.state import tables

    needed = tables(auth)
    key = needed[0].metadata.info.get("bind_key")
    if key not in reachable:
        return []
    with app.app_context(), binds.connect(auth.db, key) as connection:
        inspector = sa.inspect(connection)
        missing = [t.name for t in needed if not inspector.has_table(t.name, schema=t.schema)]
    return check_auth_tables(missing, binds.setting(key))


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def revisions(app: Flask, bind: str | None = None) -> tuple[set[str], set[str]] | None:
    """The head revisions of the migrations folder and those the database ``bind`` is at;
    ``None`` without a migrations folder or when the migrations do not cover that database."""
    from ..migrations import binds as migration_binds
    from ..migrations import migrate as migrations

    with app.app_context():
        if bind not in migration_binds.covered(app):
            return None
    return migrations.head_revisions(app), migrations.current_revisions(app, bind)


def _migration_findings(app: Flask, keys: list[str | None] | None = None) -> list[Problem]:
    import dataclasses

    from ..database import binds

    findings: list[Problem] = []
    for key in keys if keys is not None else [None]:
        try:
            found = revisions(app, key)
        except Exception as e:  # a broken folder fails deep in Alembic (even a KeyError)
            return [
                Problem(
                    "migrations.unreadable",
                    "MIGRATIONS_DIR",
                    "Cannot compare the database with the migrations: "
                    f"{type(e).__name__}: {_first_line(e)}",
                    "Run `flask db current` and `flask db heads` to see which side fails.",
                )
            ]
        if found is None:
            continue
        problems = check_migrations(*found)
        if key is not None:
            # Name the bind: every database has its own alembic_version.
            problems = [
                dataclasses.replace(p, message=f"{binds.setting(key)}: {p.message}")
                for p in problems
            ]
        findings += problems
    return findings


#: Seconds a database server may take to accept the check's connection.
CONNECT_TIMEOUT = 10


def check_database(url: str | None, error: str | None) -> list[Problem]:
    """The database could not be reached (``error`` is what connecting raised)."""
    if error is None:
        return []
    shown = _config.redact_url(url) if url else "the database"
    if error.startswith(_NO_SQLITE_FILE):
        return [
            _found(
                "database.unreachable",
                "DATABASE_URL",
                f"Cannot open {shown}: {error}",
                "Run `flask db prepare` to create and migrate it, or correct DATABASE_URL if "
                "the database is elsewhere.",
            )
        ]
    return [
        _found(
            "database.unreachable",
            "DATABASE_URL",
            f"Cannot connect to {shown}: {error}",
            "Start the database server or correct DATABASE_URL; `flask db create` creates a "
            "database that does not exist yet.",
        )
    ]


def check_migrations(heads: set[str], current: set[str]) -> list[Problem]:
    """The database is not at the head revision of the migrations folder."""
    if not heads or heads == current:
        return []
    at = ", ".join(sorted(current)) or "no revision (no migration applied)"
    unknown = current - heads
    return [
        _found(
            "migrations.not_head",
            "MIGRATIONS_DIR",
            f"The database is at {at}; the migrations' head is {', '.join(sorted(heads))}."
            + (" The database has revisions that are not the head." if unknown else ""),
            "Run `flask db upgrade` before starting this code (`flask db prepare` also creates "
            "the database).",
        )
    ]


_NO_SQLITE_FILE = "the SQLite file"


def check_auth_tables(missing: list[str], setting: str) -> list[Problem]:
    """Tables of the login (users, tokens, login records, throttle) missing from the database."""
    if not missing:
        return []
    return [
        _found(
            "auth.tables_missing",
            setting,
            f"The database has no table {', '.join(missing)}: logins answer 503 until it does.",
            'Run `flask db migrate -m "auth tables"` and then `flask db upgrade` (without '
            "migrations: `flask db prepare`).",
        )
    ]

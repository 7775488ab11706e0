"""The lifecycle commands of ``flask db``: create, drop, seed, reset, prepare, check, init and
environment.

They act on the current environment's database (the default bind) and say what they did, where
(the URL with its password hidden) and in which environment. Every one that writes goes through
:func:`flask_complete.dbenv.guard` first.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app, g
from flask.cli import with_appcontext
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from . import dbenv, migrations
from .config import ENVIRONMENTS, redact_url
from .database import bundled_extra
from .extension import get_state

if t.TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

#: Drivers the ``postgres`` and ``mysql`` extras install.
_BUNDLED = ("psycopg", "pymysql")
_DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


# -- errors -----------------------------------------------------------------------------------


def explain(error: BaseException, url: URL) -> str | None:
    """A one-paragraph explanation of a connection ``error`` on ``url``, or ``None``."""
    shown = redact_url(url)
    backend = url.get_backend_name()
    if isinstance(error, NoSuchModuleError):
        return (
            f"Unknown database driver {url.drivername!r} in {shown}. Use postgresql://, mysql:// "
            "or sqlite:// URLs; the drivers come with `pip install flask-complete[postgres]` "
            "or `pip install flask-complete[mysql]`."
        )
    if isinstance(error, ModuleNotFoundError):
        name = (error.name or "").partition(".")[0]
        extra = bundled_extra(backend)
        if name in _BUNDLED and extra:
            return (
                f"The database driver {name!r} for {shown} is not installed. Install it with "
                f"`pip install flask-complete[{extra}]`."
            )
        message = (
            f"The database driver {name!r} for {shown} is not installed. Install it "
            f"(`pip install {name}`)"
        )
        if extra is None:
            return message + "."
        return (
            f"{message}, or use the bundled driver: write the URL as {backend}://... "
            f"and `pip install flask-complete[{extra}]`."
        )
    if not isinstance(error, DBAPIError):
        return None
    orig = error.orig
    text = str(orig).lower()
    code = orig.args[0] if orig is not None and orig.args else None
    where = f"{url.host or 'localhost'}:{url.port or _DEFAULT_PORT.get(backend, '')}"
    if backend == "sqlite":
        if "unable to open database file" in text:
            return (
                f"Cannot open the SQLite file of {shown}: its folder does not exist or is not "
                "writable. Run `flask db create`, or fix the path in DATABASE_URL."
            )
        return None
    if (
        code == 1045
        or "password authentication failed" in text
        or "access denied" in text
        or ("role" in text and "does not exist" in text)
    ):
        return (
            f"The database server at {where} refused the login of user {url.username!r} "
            f"({shown}). Check the user name and password in DATABASE_URL."
        )
    if code == 1049 or ("database" in text and "does not exist" in text):
        return (
            f"The database {url.database!r} does not exist on the server at {where} ({shown}). "
            "Create it with `flask db create` (or `flask db prepare`)."
        )
    unreachable = (
        "connection refused",
        "can't connect",
        "could not translate host",
        "name or service not known",
        "timeout",
        "timed out",
        "no route to host",
        "connection failed",
    )
    if code in (2002, 2003, 2005, 2013) or any(s in text for s in unreachable):
        return (
            f"Cannot reach the database server at {where} ({shown}). Is it running, and are "
            "the host and port in DATABASE_URL right?"
        )
    return None


@contextlib.contextmanager
def database_errors(url: URL | None = None) -> Iterator[None]:
    """Turn connection failures and Alembic errors into a :class:`click.ClickException`."""
    try:
        yield
    except (DBAPIError, NoSuchModuleError, ModuleNotFoundError) as e:
        if url is None and current_app:
            sqla = get_state().db
            url = migrations.bound_url(sqla) if sqla is not None else None
        message = explain(e, url) if url is not None else None
        if message is None:
            raise
        raise click.ClickException(message) from e
    except Exception as e:
        alembic_util = sys.modules.get("alembic.util")
        if alembic_util is not None and isinstance(e, alembic_util.CommandError):
            raise click.ClickException(str(e)) from e
        raise


# -- the database itself ----------------------------------------------------------------------


def _admin_engine(url: URL, connect_args: dict[str, t.Any]) -> sa.Engine:
    """An autocommit engine on the server's maintenance database."""
    maintenance = "postgres" if url.get_backend_name() == "postgresql" else None
    return sa.create_engine(
        url._replace(database=maintenance),  # set() cannot clear the name
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args=connect_args,
    )


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def database_exists(url: URL, connect_args: dict[str, t.Any] | None = None) -> bool:
    """Whether the database of ``url`` exists (an in-memory SQLite database always does)."""
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        return path is None or path.exists()
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                query = "SELECT 1 FROM pg_database WHERE datname = :name"
            else:
                query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
            return conn.execute(sa.text(query), {"name": url.database}).first() is not None
    finally:
        engine.dispose()


def create_database(url: URL, connect_args: dict[str, t.Any] | None = None) -> bool:
    """Create the database of ``url``; ``False`` when it exists already."""
    if database_exists(url, connect_args):
        return False
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
        return True
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            name = engine.dialect.identifier_preparer.quote_identifier(str(url.database))
            if url.get_backend_name() == "postgresql":
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
            else:
                charset = url.query.get("charset", "utf8mb4")
                conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET {charset}"))
    finally:
        engine.dispose()
    return True


def drop_database(url: URL, connect_args: dict[str, t.Any] | None = None) -> bool:
    """Drop the database of ``url``; ``False`` when there was none."""
    if not database_exists(url, connect_args):
        return False
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        if path is None:
            return False
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return True
    engine = _admin_engine(url, connect_args or {})
    try:
        with database_errors(url), engine.connect() as conn:
            name = engine.dialect.identifier_preparer.quote_identifier(str(url.database))
            if url.get_backend_name() == "postgresql":
                # Other sessions (a shell, a worker) would block the drop.
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": url.database},
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        engine.dispose()
    return True


# -- helpers ----------------------------------------------------------------------------------


def _target() -> tuple[Flask, SQLAlchemy, URL, dict[str, t.Any]]:
    app = t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]
    sqla = get_state(app).db
    if sqla is None:
        raise click.ClickException(
            "This app has no database (COMPLETE_DATABASE = false): nothing to do."
        )
    options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
    return app, sqla, migrations.bound_url(sqla), dict(options.get("connect_args") or {})


def _say(url: URL, what: str) -> None:
    click.echo(f"{what}: {redact_url(url)} ({get_state().env})")


def _destroy(
    action: str, yes: bool, i_know: bool
) -> tuple[Flask, SQLAlchemy, URL, dict[str, t.Any]]:
    """Pass the gate (a production database needs both flags: no prompt there), ask unless
    ``yes``, close the pool, drop."""
    app, sqla, url, connect_args = _target()
    with database_errors(url):
        dbenv.guard(app, action, i_know=yes and i_know, command=f"flask db {action} --yes")
    if not yes:
        click.confirm(f"{action.capitalize()} {redact_url(url)}? All its data is lost.", abort=True)
    # Pooled connections would keep the database in use (PostgreSQL refuses to drop it).
    migrations.dispose(app)
    if drop_database(url, connect_args):
        _say(url, "dropped database")
    else:
        _say(url, "no database to drop")
    return app, sqla, url, connect_args


def _tables_with_rows(sqla: SQLAlchemy) -> int:
    """How many of the models' tables hold rows (0 for a new or empty database)."""
    metadata = sqla.metadatas[None]
    with migrations.connect(sqla) as conn:
        present = set(sa.inspect(conn).get_table_names())
        return sum(
            conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None
            for table in metadata.sorted_tables
            if table.name in present
        )


def _model_tables_present(sqla: SQLAlchemy) -> bool:
    with migrations.connect(sqla) as conn:
        present = set(sa.inspect(conn).get_table_names())
    return any(name in present for name in sqla.metadatas[None].tables)


def _build_schema(app: Flask, sqla: SQLAlchemy, url: URL) -> None:
    if migrations.has_migrations(app):
        before = migrations.current_revisions(app)
        if not before and _model_tables_present(sqla):
            raise click.ClickException(
                f"{redact_url(url)} has the models' tables but no migration revision (made with "
                "create_all?), so upgrading would create them again. If the tables match the "
                "first migration, mark it applied once with `flask db stamp <revision>` (or "
                "`flask db stamp head` if they match the models), then run this again."
            )
        migrations.upgrade(app)  # stamps the environment
        after = migrations.current_revisions(app)
        if before == after:
            _say(url, f"already at head {', '.join(sorted(after)) or '(no revisions)'}")
        else:
            shown = ", ".join(sorted(before)) or "an empty schema"
            _say(url, f"upgraded from {shown} to {', '.join(sorted(after))}")
    else:
        dbenv.guard(app, "upgrade", record=True)
        migrations.import_models(app)
        sqla.create_all()
        _say(url, "created the tables with create_all (no migrations folder)")


def _seed(app: Flask, url: URL) -> None:
    from . import seeds

    added = seeds.run(app)
    if added is None:
        _say(url, f"no SEEDS setting for {get_state().env}: nothing seeded")
    elif any(added.values()):
        counts = ", ".join(f"{table} +{n}" for table, n in added.items() if n)
        _say(url, f"seeded ({counts})")
    else:
        _say(url, "seeded (no new rows)")


# -- commands ---------------------------------------------------------------------------------

_yes = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
_i_know = click.option(
    "--i-know-this-is-production",
    "i_know",
    is_flag=True,
    help="Allow this on a production database (drop and reset: with --yes).",
)


def _create(app: Flask, url: URL, connect_args: dict[str, t.Any]) -> bool:
    """Create the database; stamp a new one with the environment."""
    created = create_database(url, connect_args)
    if created:
        with database_errors(url):
            dbenv.set_stamp(app, get_state(app).env)
    return created


@click.command("create")
@with_appcontext
def create_command() -> None:
    """Create the database of this environment."""
    app, _, url, connect_args = _target()
    created = _create(app, url, connect_args)
    _say(url, "created database" if created else "database exists already")


@click.command("drop")
@_yes
@_i_know
@with_appcontext
def drop_command(yes: bool, i_know: bool) -> None:
    """Drop the database of this environment, with all its data."""
    _destroy("drop", yes, i_know)


@click.command("seed")
@_i_know
@with_appcontext
def seed_command(i_know: bool) -> None:
    """Run the SEEDS of this environment in one transaction."""
    app, _, url, _ = _target()
    with database_errors(url):
        dbenv.guard(app, "seed", i_know=i_know)
        _seed(app, url)


@click.command("reset")
@_yes
@_i_know
@with_appcontext
def reset_command(yes: bool, i_know: bool) -> None:
    """Drop and recreate the database, upgrade it to head and seed it."""
    app, sqla, url, connect_args = _destroy("reset", yes, i_know)
    _create(app, url, connect_args)
    _say(url, "created database")
    with database_errors(url):
        _build_schema(app, sqla, url)
        _seed(app, url)


@click.command("prepare")
@with_appcontext
def prepare_command() -> None:
    """Create the database if missing, upgrade it to head, seed it if it was empty."""
    app, sqla, url, connect_args = _target()
    created = _create(app, url, connect_args)
    _say(url, "created database" if created else "database exists")
    with database_errors(url):
        dbenv.guard(app, "prepare")
        had_rows = not created and _tables_with_rows(sqla) > 0
        _build_schema(app, sqla, url)
        if had_rows:
            _say(url, "not seeded: the database has data (run `flask db seed` to seed anyway)")
        else:
            _seed(app, url)


@click.command("init")
@click.option("-d", "--directory", default=None, help="The folder (default: MIGRATIONS_DIR).")
@with_appcontext
def init_command(directory: str | None) -> None:
    """Create the migrations folder from flask_complete's template."""
    folder = Path(directory or g.get("directory") or migrations.migrations_dir())
    if migrations.write_migrations(folder):
        click.echo(f"wrote   {folder} (flask_complete's env.py template)")
        click.echo('Next: `flask db migrate -m "initial"`, review the file, `flask db upgrade`.')
    else:
        click.echo(f"kept    {folder}: it exists and is not empty")


@click.command("check")
@click.option("-d", "--directory", default=None, help="The folder (default: MIGRATIONS_DIR).")
@with_appcontext
def check_command(directory: str | None) -> None:
    """Fail when the database is behind the migrations or differs from the models."""
    app, _, url, _ = _target()
    with database_errors(url):
        problem = migrations.check(app, directory or g.get("directory"))
    stamp = dbenv.check(app)
    errors = [f"{p.message} {p.fix}" for p in stamp if p.level == "error"]
    if problem or errors:
        raise click.ClickException(
            f"{redact_url(url)} ({get_state().env}): " + "\n".join(filter(None, [problem, *errors]))
        )
    for finding in stamp:
        click.echo(f"warning: {finding.message} {finding.fix}", err=True)
    _say(url, "database matches the models and the migrations")


@click.command("environment")
@click.argument("env", required=False, type=click.Choice(ENVIRONMENTS))
@_i_know
@with_appcontext
def environment_command(env: str | None, i_know: bool) -> None:
    """Show the environment the database is stamped with, or stamp it with ENV."""
    app, _, url, connect_args = _target()
    with database_errors(url):
        if not database_exists(url, connect_args):
            raise click.ClickException(
                f"The database {redact_url(url)} does not exist: create it with `flask db create`"
                " (which stamps it)."
            )
        found = dbenv.current(app)
        if env is None:
            hint = f"not stamped (stamp it with `flask db environment {get_state().env}`)"
            _say(url, f"stamped {found}" if found else hint)
            return
        if found == env:
            _say(url, f"stamped {env} already")
            return
        if env != dbenv.PRODUCTION:
            # Stamping production only protects more; anything else may lift a protection.
            command = f"flask db environment {env}"
            dbenv.guard(app, "environment", i_know=i_know, command=command)
        dbenv.set_stamp(app, env)
    _say(url, f"stamped {env}" + (f" (was {found})" if found else ""))

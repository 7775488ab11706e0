"""The lifecycle commands of ``flask db``: create, drop, seed, reset, prepare, check, init and
environment.

They act on the current environment's database (the default bind) and say what they did, where
(the URL with its password hidden) and in which environment. Every one that writes goes through
:func:`flask_complete.database.stamp.guard` first.
"""

from __future__ import annotations

import contextlib
import re
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

from ..database import binds
from ..database import stamp as dbenv
from ..database.engines import bundled_extra, sqlite_file
from ..migrations import migrate as migrations
from ..settings.config import ENVIRONMENTS, redact_url
from ..state import get_state

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
    table = missing_table(error)
    if table is not None:
        return (
            f"The database {shown} has no table {table!r}: its tables were never made (or it is "
            "behind the migrations). Run `flask db prepare` to create and migrate it."
        )
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
        from ..database.identity import declared_name

        return (
            f"The database {declared_name(url)!r} does not exist on the server at {where} "
            f"({shown}). Create it with `flask db create` (or `flask db prepare`)."
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


#: What each server answers for a table that does not exist: PostgreSQL's SQLSTATE, MySQL's and
#: MariaDB's error number; SQLite has no code of its own for it, only its message.
_UNDEFINED_TABLE_STATE = "42P01"
_NO_SUCH_TABLE_ERRNO = 1146
_QUOTED = re.compile(r"""["'`]([^"'`]+)["'`]""")


def missing_table(error: DBAPIError) -> str | None:
    """The table the server said does not exist, or ``None`` for any other error."""
    orig = error.orig
    if orig is None:
        return None
    message = str(orig)
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE_STATE:
        said = getattr(getattr(orig, "diag", None), "message_primary", None) or message
    elif orig.args and orig.args[0] == _NO_SUCH_TABLE_ERRNO:
        said = str(orig.args[-1])  # "Table 'database.name' doesn't exist"
    elif isinstance(orig, sqlite3.OperationalError) and message.startswith("no such table: "):
        return message.removeprefix("no such table: ").rpartition(".")[2]
    else:
        return None
    found = _QUOTED.search(said)
    return found.group(1).rpartition(".")[2] if found else "?"


@contextlib.contextmanager
def database_errors(url: URL | None = None) -> Iterator[None]:
    """Turn connection failures and Alembic errors into a :class:`click.ClickException`."""
    try:
        yield
    except (DBAPIError, NoSuchModuleError, ModuleNotFoundError) as e:
        if url is None and current_app:
            url = _failed_url()
        message = explain(e, url) if url is not None else None
        if message is None:
            raise
        raise click.ClickException(message) from e
    except Exception as e:
        alembic_util = sys.modules.get("alembic.util")
        if alembic_util is not None and isinstance(e, alembic_util.CommandError):
            raise click.ClickException(str(e)) from e
        raise


def _failed_url() -> URL | None:
    """The URL to explain ``error`` with when the command did not say which database failed:
    the first database of the current app."""
    sqla = get_state().db
    if sqla is None:
        return None
    keys = binds.keys()
    return binds.url(sqla, keys[0]) if keys else None


# -- the database itself ----------------------------------------------------------------------


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


# -- helpers ----------------------------------------------------------------------------------


class Database(t.NamedTuple):
    """One database a command acts on: its bind key (``None``: the default one), URL and the
    driver's connect arguments."""

    key: str | None
    url: URL
    connect_args: dict[str, t.Any]
    #: Whether the app has several databases (then each line names its bind).
    several: bool


def _targets(names: t.Iterable[str] = ()) -> tuple[Flask, SQLAlchemy, list[Database]]:
    """The app, its ``SQLAlchemy`` and the databases ``--bind`` chose (every one by default)."""
    app = t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]
    sqla = binds.sqla_of(app)
    every = binds.keys(app)
    several = every != [None]
    chosen = binds.select(names, app)
    return (
        app,
        sqla,
        [
            Database(key, binds.url(sqla, key), binds.connect_args(app, key), several)
            for key in chosen
        ],
    )


def _say(db: Database, what: str) -> None:
    where = f", bind {binds.label(db.key)}" if db.several else ""
    click.echo(f"{what}: {redact_url(db.url)} ({get_state().env}{where})")


def _bind_flag(db: Database) -> str:
    return f" --bind {binds.label(db.key)}" if db.several else ""


def _destroy(action: str, yes: bool, i_know: bool, names: t.Iterable[str]) -> DestroyResult:
    """Pass the gate on every chosen database first (a production database needs both flags:
    no prompt there), ask unless ``yes``, close the pools, drop each."""
    app, sqla, dbs = _targets(names)
    for db in dbs:
        with database_errors(db.url):
            command = f"flask db {action} --yes{_bind_flag(db)}"
            dbenv.guard(app, action, i_know=yes and i_know, command=command, bind=db.key)
    if not yes:
        shown = ", ".join(redact_url(db.url) for db in dbs)
        click.confirm(f"{action.capitalize()} {shown}? All its data is lost.", abort=True)
    # Pooled connections would keep the database in use (PostgreSQL refuses to drop it).
    migrations.dispose(app)
    for db in dbs:
        if drop_database(db.url, db.connect_args):
            _say(db, "dropped database")
        else:
            _say(db, "no database to drop")
    return app, sqla, dbs


DestroyResult = tuple["Flask", "SQLAlchemy", list[Database]]


def _tables_with_rows(sqla: SQLAlchemy, key: str | None) -> int:
    """How many of the models' tables of database ``key`` hold rows (0 for a new or empty
    database)."""
    with binds.connect(sqla, key) as conn:
        present = set(sa.inspect(conn).get_table_names())
        return sum(
            conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None
            for table in binds.tables(sqla, key)
            if table.name in present
        )


def _model_tables_present(sqla: SQLAlchemy, key: str | None) -> bool:
    with binds.connect(sqla, key) as conn:
        present = set(sa.inspect(conn).get_table_names())
    return any(table.name in present for table in binds.tables(sqla, key))


def _build_schema(app: Flask, sqla: SQLAlchemy, dbs: list[Database]) -> None:
    """Upgrade the databases the migrations cover to head; ``create_all`` the others."""
    from ..migrations import binds as migration_binds

    covered = set(migration_binds.covered(app))
    migrated = [db for db in dbs if db.key in covered]
    if migrated:
        before = {db.key: migrations.current_revisions(app, db.key) for db in migrated}
        for db in migrated:
            if not before[db.key] and _model_tables_present(sqla, db.key):
                raise click.ClickException(
                    f"{redact_url(db.url)} has the models' tables but no migration revision (made"
                    " with create_all?), so upgrading would create them again. If the tables "
                    "match the first migration, mark it applied once with `flask db stamp "
                    "<revision>` (or `flask db stamp head` if they match the models), then run "
                    "this again."
                    + (
                        " It records no environment: say whose it is first, with "
                        f"`flask db environment {get_state().env}{_bind_flag(db)}`."
                        if dbenv.current(app, db.key) is None
                        else ""
                    )
                )
        chosen = None if len(migrated) == len(covered) else [db.key for db in migrated]
        migrations.upgrade(app, binds=chosen)  # stamps the environment
        for db in migrated:
            after = migrations.current_revisions(app, db.key)
            if before[db.key] == after:
                _say(db, f"already at head {', '.join(sorted(after)) or '(no revisions)'}")
            else:
                shown = ", ".join(sorted(before[db.key])) or "an empty schema"
                _say(db, f"upgraded from {shown} to {', '.join(sorted(after))}")
    rest = [db for db in dbs if db.key not in covered]
    if not rest:
        return
    migrations.import_models(app)
    why = "no migrations folder" if not covered else "the migrations do not cover this database"
    for db in rest:
        dbenv.guard(app, "upgrade", record=True, bind=db.key)
        sqla.create_all(bind_key=db.key)
        _say(db, f"created the tables with create_all ({why})")


def _seed(app: Flask, dbs: list[Database]) -> None:
    from .. import seeds

    added = seeds.run(app)
    for db in dbs:
        if added is None:
            _say(db, f"no SEEDS setting for {get_state().env}: nothing seeded")
            return
        mine = {
            table.name: added.get(table.name, 0)
            for table in binds.tables(binds.sqla_of(app), db.key)
        }
        if any(mine.values()):
            counts = ", ".join(f"{table} +{n}" for table, n in mine.items() if n)
            _say(db, f"seeded ({counts})")
        else:
            _say(db, "seeded (no new rows)")


# -- commands ---------------------------------------------------------------------------------

_yes = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
_i_know = click.option(
    "--i-know-this-is-production",
    "i_know",
    is_flag=True,
    help="Allow this on a production database (drop and reset: with --yes).",
)
_bind = binds.bind_option


def _create(app: Flask, db: Database) -> bool:
    """Create the database; stamp a new one with the environment."""
    created = create_database(db.url, db.connect_args)
    if created:
        with database_errors(db.url):
            dbenv.set_stamp(app, get_state(app).env, db.key)
    return created


@click.command("create")
@_bind
@with_appcontext
def create_command(bind_names: tuple[str, ...]) -> None:
    """Create the database of this environment (every bind's)."""
    app, _, dbs = _targets(bind_names)
    for db in dbs:
        created = _create(app, db)
        _say(db, "created database" if created else "database exists already")


@click.command("drop")
@_yes
@_i_know
@_bind
@with_appcontext
def drop_command(yes: bool, i_know: bool, bind_names: tuple[str, ...]) -> None:
    """Drop the database of this environment (every bind's), with all its data."""
    _destroy("drop", yes, i_know, bind_names)


@click.command("seed")
@_i_know
@_bind
@with_appcontext
def seed_command(i_know: bool, bind_names: tuple[str, ...]) -> None:
    """Run the SEEDS of this environment in one transaction."""
    app, _, dbs = _targets(bind_names)
    # The seeds may write to any database: each passes the gate, --bind only picks the report.
    _, _, every = _targets()
    for db in every:
        with database_errors(db.url):
            dbenv.guard(app, "seed", i_know=i_know, bind=db.key)
    with database_errors(dbs[0].url if len(dbs) == 1 else None):
        _seed(app, dbs)


@click.command("reset")
@_yes
@_i_know
@_bind
@with_appcontext
def reset_command(yes: bool, i_know: bool, bind_names: tuple[str, ...]) -> None:
    """Drop and recreate the database (every bind's), upgrade it to head and seed it."""
    app, sqla, dbs = _destroy("reset", yes, i_know, bind_names)
    for db in dbs:
        _create(app, db)
        _say(db, "created database")
    with database_errors(dbs[0].url if len(dbs) == 1 else None):
        _build_schema(app, sqla, dbs)
        _seed(app, dbs)


@click.command("prepare")
@_bind
@with_appcontext
def prepare_command(bind_names: tuple[str, ...]) -> None:
    """Create the database (every bind's) if missing, upgrade it to head, seed it if it was
    empty."""
    app, sqla, dbs = _targets(bind_names)
    had_rows = False
    for db in dbs:
        created = _create(app, db)
        _say(db, "created database" if created else "database exists")
        with database_errors(db.url):
            dbenv.guard(app, "prepare", bind=db.key)
            had_rows = had_rows or (not created and _tables_with_rows(sqla, db.key) > 0)
    with database_errors(dbs[0].url if len(dbs) == 1 else None):
        _build_schema(app, sqla, dbs)
        if had_rows:
            for db in dbs:
                _say(db, "not seeded: the database has data (run `flask db seed` to seed anyway)")
        else:
            _seed(app, dbs)


@click.command("init")
@click.option("-d", "--directory", default=None, help="The folder (default: MIGRATIONS_DIR).")
@click.option(
    "--multidb/--single-db",
    default=None,
    help="Migrate every bind (default when the app has SQLALCHEMY_BINDS), or the default "
    "database only.",
)
@with_appcontext
def init_command(directory: str | None, multidb: bool | None) -> None:
    """Create the migrations folder from flask_complete's template."""
    folder = Path(directory or g.get("directory") or migrations.migrations_dir())
    if multidb is None:
        multidb = binds.keys() != [None]
    if migrations.write_migrations(folder, multidb=multidb):
        kind = "several databases" if multidb else "one database"
        click.echo(f"wrote   {folder} (flask_complete's env.py template, {kind})")
        click.echo('Next: `flask db migrate -m "initial"`, review the file, `flask db upgrade`.')
    else:
        click.echo(f"kept    {folder}: it exists and is not empty")


@click.command("check")
@click.option("-d", "--directory", default=None, help="The folder (default: MIGRATIONS_DIR).")
@_bind
@with_appcontext
def check_command(directory: str | None, bind_names: tuple[str, ...]) -> None:
    """Fail when a database is behind the migrations or differs from the models."""
    app, _, dbs = _targets(bind_names)
    for db in dbs:
        # Each database named on its own: an error from the check itself cannot say which.
        with database_errors(db.url):
            if not database_exists(db.url, db.connect_args):
                raise click.ClickException(
                    f"The database {redact_url(db.url)}"
                    + (f" (bind {binds.label(db.key)})" if db.several else "")
                    + " does not exist: create it "
                    f"with `flask db prepare{_bind_flag(db)}`."
                )
    with database_errors(dbs[0].url if len(dbs) == 1 else None):
        problem = migrations.check(app, directory or g.get("directory"))
    chosen = {db.key for db in dbs}
    stamp = [p for p in dbenv.check(app) if p.key in {binds.setting(k) for k in chosen}]
    errors = [f"{p.message} {p.fix}" for p in stamp if p.level == "error"]
    if problem or errors:
        shown = ", ".join(redact_url(db.url) for db in dbs)
        raise click.ClickException(
            f"{shown} ({get_state().env}): " + "\n".join(filter(None, [problem, *errors]))
        )
    for finding in stamp:
        click.echo(f"warning: {finding.message} {finding.fix}", err=True)
    for db in dbs:
        _say(db, "database matches the models and the migrations")


@click.command("environment")
@click.argument("env", required=False, type=click.Choice(ENVIRONMENTS))
@_i_know
@_bind
@with_appcontext
def environment_command(env: str | None, i_know: bool, bind_names: tuple[str, ...]) -> None:
    """Show the environment the database (every bind's) is stamped with, or stamp it with
    ENV."""
    app, _, dbs = _targets(bind_names)
    for db in dbs:
        with database_errors(db.url):
            _environment(app, db, env, i_know)


def _environment(app: Flask, db: Database, env: str | None, i_know: bool) -> None:
    if not database_exists(db.url, db.connect_args):
        raise click.ClickException(
            f"The database {redact_url(db.url)} does not exist: create it with `flask db "
            f"create{_bind_flag(db)}` (which stamps it)."
        )
    found = dbenv.current(app, db.key)
    if env is None:
        hint = f"not stamped (stamp it with `flask db environment {get_state().env}`)"
        _say(db, f"stamped {found}" if found else hint)
        return
    if found == env:
        _say(db, f"stamped {env} already")
        return
    if env != dbenv.PRODUCTION:
        # Stamping production only protects more; anything else may lift a protection.
        command = f"flask db environment {env}{_bind_flag(db)}"
        dbenv.guard(app, "environment", i_know=i_know, command=command, bind=db.key)
    dbenv.set_stamp(app, env, db.key)
    _say(db, f"stamped {env}" + (f" (was {found})" if found else ""))

"""The lifecycle commands of ``flask db``: create, drop, seed, reset, prepare, check, init and
environment.

They act on the current environment's database (the default bind) and say what they did, where
(the URL with its password hidden) and in which environment. Every one that writes goes through
:func:`flask_complete.database.stamp.guard` first.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app, g
from flask.cli import with_appcontext
from sqlalchemy.engine import URL

from ..database import binds, environments
from ..database import stamp as dbenv
from ..database.admin import create_database, database_exists, drop_database
from ..database.errors import database_errors
from ..migrations import binds as migration_binds
from ..migrations import migrate as migrations
from ..settings.config import ENVIRONMENTS, redact_url
from ..state import get_state

if t.TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

#: Drivers the ``postgres`` and ``mysql`` extras install.
_BUNDLED = ("psycopg", "pymysql")
_DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


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
            environments.guard(app, action, i_know=yes and i_know, command=command, bind=db.key)
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
                        if environments.current(app, db.key) is None
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
        environments.guard(app, "upgrade", record=True, bind=db.key)
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
            environments.set_stamp(app, get_state(app).env, db.key)
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
            environments.guard(app, "seed", i_know=i_know, bind=db.key)
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
            environments.guard(app, "prepare", bind=db.key)
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
        problem = migration_binds.check(app, directory or g.get("directory"))
    chosen = {db.key for db in dbs}
    stamp = [p for p in environments.check(app) if p.key in {binds.setting(k) for k in chosen}]
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
    found = environments.current(app, db.key)
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
        environments.guard(app, "environment", i_know=i_know, command=command, bind=db.key)
    environments.set_stamp(app, env, db.key)
    _say(db, f"stamped {env}" + (f" (was {found})" if found else ""))

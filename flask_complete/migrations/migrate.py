"""Migrations: Flask-Migrate wired per app, with our ``env.py`` template and a ``db`` command group.

Nothing here imports Flask-Migrate or Alembic at init (they cost about an eighth of the import
time): the ``db`` group resolves its commands on use, and :func:`ensure_migrate` registers the
``Migrate`` options the first time a command or helper needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import decimal
import functools
import importlib
import re
import sys
import typing as t
from pathlib import Path

import click
from flask import current_app, g
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import CompileError

from ..state import get_state
from .folder import Folder, check_folder, locate

# Where the folder is, and writing it, live in migration_folder; kept importable from here.
from .folder import MigrationsFolderError as MigrationsFolderError
from .folder import migrations_dir as migrations_dir
from .folder import usable_migrations as usable_migrations
from .folder import write_migrations as write_migrations

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.config import Config
    from flask import Flask
    from flask_migrate import Migrate
    from flask_sqlalchemy import SQLAlchemy

    from ..state import CompleteState

#: Our commands, beside Flask-Migrate's; ``init`` and ``check`` replace Flask-Migrate's own.
OWN_COMMANDS = (
    "check",
    "create",
    "drop",
    "dump",
    "environment",
    "init",
    "load",
    "prepare",
    "reset",
    "seed",
    "server",
)
#: Our commands defined outside :mod:`flask_complete.cli.db`.
_COMMAND_MODULES = {
    "dump": "flask_complete.cli.fixtures",
    "load": "flask_complete.cli.fixtures",
    "server": "flask_complete.cli.server",
}
#: Commands that work without a migrations folder.
NO_FOLDER_NEEDED = (
    "create",
    "drop",
    "dump",
    "environment",
    "init",
    "list-templates",
    "load",
    "prepare",
    "reset",
    "seed",
)
#: Flask-Migrate's commands that write to the database: each passes the gate first.
GATED = ("downgrade", "migrate", "stamp", "upgrade")


class DbGroup(AppGroup):
    """The ``flask db`` group of one app: Flask-Migrate's commands and ours, imported on use.

    Flask-Migrate's own group is one object shared by every app in the process; this one is made
    per app, so adding commands never changes another app.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from flask_migrate.cli import db as migrate_group

        return sorted({*migrate_group.list_commands(ctx), *OWN_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in OWN_COMMANDS:
            module = importlib.import_module(
                _COMMAND_MODULES.get(cmd_name, "flask_complete.cli.db")
            )
            return t.cast(click.Command, getattr(module, f"{cmd_name}_command"))
        from flask_migrate.cli import db as migrate_group

        command: click.Command | None = migrate_group.get_command(ctx, cmd_name)
        if command is None or command.callback is None:
            return command
        # A copy, so the shared group keeps its own callback and options.
        wrapped = copy.copy(command)
        wrapped.callback = _gated(cmd_name, command.callback)
        if cmd_name in ("downgrade", "stamp"):
            wrapped.params = [*command.params, _i_know_option()]
        return wrapped


def _i_know_option() -> click.Option:
    return click.Option(
        ["--i-know-this-is-production", "i_know"],
        is_flag=True,
        help="Allow this on a production database.",
    )


def _gated(name: str, callback: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """``callback`` with clear errors and, for the commands in :data:`GATED`, the gate before
    it (``upgrade`` also stamps the environment)."""

    @functools.wraps(callback)
    def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
        from ..database import environments
        from ..database.errors import database_errors

        i_know = kwargs.pop("i_know", False)
        with database_errors(), compile_errors():
            # --sql writes SQL to standard output and never connects.
            if name in GATED and not kwargs.get("sql"):
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                revision = kwargs.get("revision")
                command = f"flask db {name}" + (f" {revision}" if revision else "")
                environments.guard(
                    app, name, i_know=i_know, command=command, record=name == "upgrade"
                )
            return callback(*args, **kwargs)

    return run


@contextlib.contextmanager
def compile_errors() -> Iterator[None]:
    """Turn a type the database cannot create (a VARCHAR without a length on MySQL) into a
    :class:`click.ClickException` naming the column and the fix."""
    try:
        yield
    except CompileError as e:
        fix = (
            "Give the column a length in the model (mapped_column(String(200))) and in the "
            "revision that creates it (sa.String(length=200)), then run the command again."
            if "requires a length" in str(e)
            else "Change the column's type in the model and in the revision that creates it."
        )
        raise click.ClickException(f"The database cannot create a column: {e}. {fix}") from e


@with_appcontext
def _db_callback(directory: str | None, x_arg: tuple[str, ...]) -> None:
    # Flask-Migrate's commands read these from g.
    g.directory = directory
    g.x_arg = x_arg
    ctx = click.get_current_context()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Close pooled connections when the command ends, not at interpreter exit (where drivers
    # warn about connections still open).
    ctx.call_on_close(functools.partial(dispose, app))
    name = ctx.invoked_subcommand
    if name is None or name in OWN_COMMANDS:
        return
    ensure_migrate(app)
    if name in NO_FOLDER_NEEDED:
        return
    folder = Folder(Path(directory), "the -d option") if directory else locate(app)
    # Flask-Migrate's commands would resolve a relative folder against the working directory.
    g.directory = str(check_folder(*folder))


def dispose(app: Flask) -> None:
    """Close the pooled connections of ``app``'s database."""
    sqla = get_state(app).db
    if sqla is None:
        return
    with app.app_context():
        engines = list(sqla.engines.values())
        if not all(isinstance(engine, Engine) for engine in engines):
            # The pytest plugin's isolation holds a connection and session: leave them be.
            return
        sqla.session.remove()
        for engine in engines:
            engine.dispose()


def make_group() -> DbGroup:
    """A new ``db`` group for one app."""
    params = [
        click.Option(
            ["-d", "--directory"], help="The migrations folder (default: MIGRATIONS_DIR)."
        ),
        click.Option(
            ["-x", "--x-arg"], multiple=True, help="Arguments for env.py, e.g. allow_drop=old."
        ),
    ]
    return DbGroup(
        "db",
        params=params,
        callback=_db_callback,
        help="Create, migrate, seed and drop the database.",
    )


def _is_migrate_group(command: click.Command | None) -> bool:
    """Whether ``command`` is Flask-Migrate's shared ``db`` group (never imported for this)."""
    migrate_cli = sys.modules.get("flask_migrate.cli")
    return command is not None and command is getattr(migrate_cli, "db", None)


def init_app(app: Flask, state: CompleteState) -> None:
    """Register the per-app ``flask db`` group; keep an app's own ``db`` command."""
    existing = app.cli.commands.get("db")
    if existing is not None and not _is_migrate_group(existing):
        state.notes.append(
            "The app has its own `db` command: flask_complete's database commands "
            "(create, drop, seed, reset, prepare) are not registered."
        )
        return
    if "migrate" in app.extensions:
        # The app ran Migrate(app, db) itself: its folder (see migrations_dir) and options.
        state.migrations_dir = migrations_dir(app)
    group = make_group()
    app.cli.add_command(group, "db")
    _prefer_group(app, group)


def _prefer_group(app: Flask, group: DbGroup) -> None:
    """Make ``app.cli`` resolve Flask-Migrate's shared group to ``group``.

    ``Migrate(app, db)`` after ``Complete`` registers the shared group again (under its
    ``command`` name): the app's commands would lose ``create``, ``prepare`` and the gate.
    Only this app's ``cli`` is touched; the shared group stays as it is.
    """
    resolve = app.cli.get_command

    def get_command(ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = resolve(ctx, cmd_name)
        return group if _is_migrate_group(command) else command

    app.cli.get_command = get_command  # type: ignore[method-assign]


def ensure_migrate(app: Flask) -> Migrate:
    """The app's ``Migrate``: the one it registered, else ours, created now. Either way
    autogenerate ignores our environment table, even with an ``env.py`` of Flask-Migrate's."""
    from ..database import stamp as dbenv

    found = app.extensions.get("migrate")
    if found is None:
        from flask_migrate import Migrate

        state = get_state(app)
        migrate = Migrate(
            db=state.db,
            directory=str(migrations_dir(app)),
            compare_type=True,
            render_as_batch=True,
            compare_server_default=compare_server_default,
        )
        # Migrate.init_app registers Flask-Migrate's shared group: put back what was there.
        before = app.cli.commands.get("db")
        migrate.init_app(app)
        if before is not None:
            app.cli.commands["db"] = before
        else:
            app.cli.commands.pop("db", None)
        found = app.extensions["migrate"]
    # configure_args is what every env.py, Flask-Migrate's too, passes to context.configure.
    args = found.configure_args
    args["include_object"] = dbenv.hide_table(args.get("include_object"))
    return t.cast("Migrate", found.migrate)


def has_migrations(app: Flask) -> bool:
    """Whether ``app`` has a migrations folder; an error when it has one that cannot be used
    (see :func:`usable_migrations`)."""
    return usable_migrations(app) is not None


def alembic_config(app: Flask) -> Config:
    """The Alembic config of ``app`` (call inside its app context); a clear error without a
    usable migrations folder."""
    migrate = ensure_migrate(app)
    folder = check_folder(*locate(app))
    return t.cast("Config", migrate.get_config(str(folder)))


def upgrade(app: Flask, revision: str = "head", binds: list[str | None] | None = None) -> None:
    """Upgrade the app's databases (``binds``, default: every one the migrations cover) to
    ``revision`` and stamp them with the app's environment; refused on a database stamped with
    another one."""
    from alembic import command

    from ..database import environments
    from ..database.binds import EVERY, label

    with app.app_context():
        config = alembic_config(app)
        if binds is not None:
            # What a multi-database env.py reads (-x binds=...); a single one ignores it.
            given = list(getattr(config.cmd_opts, "x", None) or [])
            chosen = f"binds={','.join(map(label, binds))}"
            config.cmd_opts = argparse.Namespace(x=[*given, chosen])
        for key in binds if binds is not None else [EVERY]:
            command_line = f"flask db upgrade {revision}"
            environments.guard(app, "upgrade", command=command_line, record=True, bind=key)
        with compile_errors():
            command.upgrade(config, revision)


def downgrade(app: Flask, revision: str = "-1", *, i_know: bool = False) -> None:
    """Downgrade the app's database to ``revision``; a production database needs ``i_know``
    (``--i-know-this-is-production``)."""
    from alembic import command

    from ..database import environments

    with app.app_context():
        config = alembic_config(app)
        environments.guard(
            app, "downgrade", i_know=i_know, command=f"flask db downgrade {revision}"
        )
        command.downgrade(config, revision)


def head_revisions(app: Flask) -> set[str]:
    """The head revisions of the migrations folder (empty without migrations)."""
    from alembic.script import ScriptDirectory

    with app.app_context():
        if not has_migrations(app):
            return set()
        return set(ScriptDirectory.from_config(alembic_config(app)).get_heads())


def current_revisions(app: Flask, bind: str | None = None) -> set[str]:
    """The revisions the app's database ``bind`` is at (empty when it was never migrated)."""
    from alembic.migration import MigrationContext

    with app.app_context():
        migrate = ensure_migrate(app)
        options = {
            k: v
            for k, v in migrate.alembic_ctx_kwargs.items()
            if k in ("version_table", "version_table_schema")
        }
        sqla = get_state(app).db
        assert sqla is not None
        with connect(sqla, bind) as connection:
            return set(MigrationContext.configure(connection, opts=options).get_current_heads())


@contextlib.contextmanager
def connect(sqla: SQLAlchemy, bind: str | None = None) -> Iterator[Connection]:
    """A connection to the database ``bind`` (default: the default one; call inside an app
    context); under the pytest plugin's isolation, the connection standing in for the engine."""
    from ..database import binds

    with binds.connect(sqla, bind) as connection:
        yield connection


def bound_url(sqla: SQLAlchemy, bind: str | None = None) -> URL:
    """The URL of the database ``bind`` (default: the default one; call inside an app
    context)."""
    from ..database import binds

    return binds.url(sqla, bind)


# -- server defaults ------------------------------------------------------------------------------

_CAST = re.compile(r"::[\w\s]+(\(\d+(,\s*\d+)?\))?(\[\])?$")
_NOW = {"now()", "current_timestamp", "current_timestamp()", "localtimestamp", "getdate()"}


def _normal(text: str) -> tuple[str, str]:
    """``("str", value)`` for a quoted SQL string literal, else ``("sql", canonical text)``."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    text = _CAST.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] == "'" and "'" not in text[1:-1].replace("''", ""):
        return "str", text[1:-1].replace("''", "'")
    lowered = " ".join(text.lower().split())
    if lowered in _NOW:
        return "sql", "current_timestamp"
    return "sql", {"true": "1", "false": "0"}.get(lowered, lowered)


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _same_number(a: str, b: str) -> bool:
    try:
        return decimal.Decimal(a) == decimal.Decimal(b)
    except decimal.InvalidOperation:
        return False


def compare_server_default(
    context: t.Any,
    inspected_column: t.Any,
    metadata_column: t.Any,
    inspected_default: str | None,
    metadata_default: t.Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's ``compare_server_default`` hook: ``True`` when the defaults differ.

    Normalises how SQLite, PostgreSQL and MariaDB reflect literals (parentheses, ``::type``
    casts, quoting, ``now()`` spellings, booleans); returns ``None`` to let Alembic decide for
    expressions it cannot read.
    """
    if inspected_default is None or metadata_default is None or rendered_metadata_default is None:
        return None
    found = _normal(inspected_default)
    arg = getattr(metadata_default, "arg", None)
    # A plain string server_default is a string literal, rendered unquoted by Alembic.
    wanted = ("str", arg) if isinstance(arg, str) else _normal(rendered_metadata_default)
    if found == wanted:
        return False
    values = {found[1], wanted[1]}
    if _same_number(found[1], wanted[1]):
        return False
    if found[0] != wanted[0] and len(values) == 1:
        # '0' on a number column reflects as 0 on some databases.
        return False
    if found[0] == "sql" and wanted[0] == "sql":
        return None
    return True


def import_models(app: Flask) -> None:
    """Import the modules named in the ``MODELS`` setting, so every model is declared."""
    names = app.config.get("MODELS") or []
    for name in [names] if isinstance(names, str) else names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise click.ClickException(
                f"MODELS lists {name!r}, which does not import: {e}. Fix the module name in "
                'settings.toml (MODELS = ["yourapp.models"]).'
            ) from e


def import_string(path: str, setting: str) -> t.Any:
    """The object named ``"module:attribute"`` (or a module), with an error naming ``setting``."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise click.ClickException(
            f'{setting} = {path!r} does not import: {e}. Use "package.module:function".'
        ) from e
    if not attr:
        return module
    try:
        return functools.reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise click.ClickException(
            f"{setting} = {path!r}: module {module_name!r} has no {attr!r}."
        ) from None

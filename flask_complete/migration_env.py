"""Helpers for the ``env.py`` of a flask_complete migrations folder; imported only by Alembic.

They keep the template short and let fixes reach projects that generated ``env.py`` long ago:
importing the ``MODELS`` modules, the drop guard, dropping enum types on downgrade, and running
SQLite migrations in one transaction with foreign keys off and checked before the commit.
"""

from __future__ import annotations

import contextlib
import logging
import typing as t

import click
import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.operations import ops
from sqlalchemy import event
from sqlalchemy.sql.schema import DEFAULT_NAMING_CONVENTION

from .database import stamp as dbenv

# Kept for env.py files that call it from here.
from .migrations.migrate import import_models as import_models

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from flask import Flask
    from sqlalchemy.engine import Connection

log = logging.getLogger("alembic.env")


def configure_options(
    context: t.Any, app: Flask, metadata: sa.MetaData, databases: int = 1
) -> dict[str, t.Any]:
    """Options for ``context.configure`` (``context`` is ``alembic.context``): the app's Migrate
    options with the drop guard and the revision post-processing chained in front of any the app
    set. ``databases``: how many databases one run migrates (the post-processing waits for the
    last)."""
    options = dict(app.extensions["migrate"].configure_args)
    allow = context.get_x_argument(as_dictionary=True).get("allow_drop", "")
    # Our environment table is hidden before the drop guard: allow_drop=* never drops it.
    options["include_object"] = dbenv.hide_table(drop_guard(allow, options.get("include_object")))
    if options.get("compare_type", True) is not False:
        options["compare_type"] = enum_values_differ(options.get("compare_type"))
    options["process_revision_directives"] = revision_directives(
        context.config, options.get("process_revision_directives"), databases
    )
    if metadata.tables and dict(metadata.naming_convention) == dict(DEFAULT_NAMING_CONVENTION):
        log.warning(
            "The models' metadata has no naming convention: constraints get no names and later "
            "migrations cannot drop them. Declare models on flask_complete.db, or give your base "
            "MetaData(naming_convention=flask_complete.database.engines.NAMING_CONVENTION)."
        )
    return options


IncludeObject = dbenv.IncludeObject


def drop_guard(allow: str, then: IncludeObject | None = None) -> IncludeObject:
    """An ``include_object`` hook that hides tables found only in the database from
    autogenerate, so it never proposes ``drop_table`` for them, unless ``allow`` names them
    (comma-separated, or ``*``)."""
    allowed = {name.strip() for name in allow.split(",") if name.strip()}

    def include_object(
        obj: t.Any, name: str | None, type_: str, reflected: bool, compare_to: t.Any
    ) -> bool:
        foreign = type_ == "table" and reflected and compare_to is None
        if foreign and "*" not in allowed and name not in allowed:
            log.warning(
                "Keeping table %r: it is in the database but no model declares it. To drop "
                "it, run `flask db migrate -x allow_drop=%s`.",
                name,
                name,
            )
            return False
        return then(obj, name, type_, reflected, compare_to) if then else True

    return include_object


Directives = t.Callable[[t.Any, t.Any, list[t.Any]], None]


def revision_directives(
    config: Config, then: Directives | None = None, databases: int = 1
) -> Directives:
    """A ``process_revision_directives`` hook: write no file when autogenerate found nothing,
    and drop the enum types an upgrade creates when it is downgraded. Alembic calls it after
    each database: it acts after the last of ``databases``."""

    def process(context: MigrationContext, revision: t.Any, directives: list[t.Any]) -> None:
        if not directives or len(directives[0].upgrade_ops_list) < databases:
            return
        if then is not None:
            then(context, revision, directives)
        if not directives:
            return
        script = directives[0]
        if getattr(config.cmd_opts, "autogenerate", False) and all(
            u.is_empty() for u in script.upgrade_ops_list
        ):
            directives[:] = []
            log.info("No changes in schema detected.")
            return
        unbounded(script.upgrade_ops_list, refuse=context.dialect.name in MYSQL)
        postgres = context.dialect.name == "postgresql"
        for upgrade, downgrade in zip(
            script.upgrade_ops_list, script.downgrade_ops_list, strict=False
        ):
            for name in created_enums(upgrade):
                downgrade.ops.append(DropEnumOp(name))
            warn_renames(upgrade)
            if postgres:
                # ALTER COLUMN ... TYPE cannot add values to a PostgreSQL enum type.
                _replace_enum_changes(upgrade, add=True)
                _replace_enum_changes(downgrade, add=False)

    return process


MYSQL = ("mysql", "mariadb")


def unbounded(upgrades: list[ops.UpgradeOps], refuse: bool = False) -> None:
    """Name the columns the revision creates or retypes as a VARCHAR without a length, which
    MySQL and MariaDB refuse: a warning, or with ``refuse`` (on MySQL) an error, before any
    revision file is written."""
    found: list[str] = []

    def visit(op: ops.MigrateOperation) -> None:
        columns: list[tuple[str, str, t.Any]] = []
        if isinstance(op, ops.OpContainer):
            for child in op.ops:
                visit(child)
        elif isinstance(op, ops.CreateTableOp):
            columns = [
                (op.table_name, c.name, c.type) for c in op.columns if isinstance(c, sa.Column)
            ]
        elif isinstance(op, ops.AddColumnOp):
            columns = [(op.table_name, op.column.name, op.column.type)]
        elif isinstance(op, ops.AlterColumnOp) and op.modify_type is not None:
            columns = [(op.table_name, op.column_name, op.modify_type)]
        for table, column, type_ in columns:
            if needs_length(type_):
                found.append(f"{table}.{column}")

    for upgrade in upgrades:
        visit(upgrade)
    if not found:
        return
    message = (
        f"Column {', '.join(found)} is a VARCHAR without a length: MySQL and MariaDB refuse it "
        '("VARCHAR requires a length"). Give it one in the model, e.g. '
        "mapped_column(String(200)), or Text for long text (models declared on "
        "flask_complete.db get String(255) for a plain Mapped[str])."
    )
    if refuse:
        raise click.ClickException(message + " No revision was written.")
    log.warning(message)


def needs_length(type_: t.Any) -> bool:
    """Whether MySQL refuses ``type_`` for want of a length (asked of its compiler)."""
    from sqlalchemy.dialects import mysql

    try:
        type_.compile(dialect=mysql.dialect())
    except sa.exc.CompileError as e:
        return "requires a length" in str(e)
    return False


def warn_renames(upgrade: ops.UpgradeOps) -> None:
    """Warn when a table both gains and loses columns: Alembic writes a rename as drop + add,
    which loses the column's data."""
    changes: dict[str, tuple[list[str], list[str]]] = {}

    def visit(op: ops.MigrateOperation) -> None:
        if isinstance(op, ops.OpContainer):
            for child in op.ops:
                visit(child)
        elif isinstance(op, ops.AddColumnOp):
            changes.setdefault(op.table_name, ([], []))[0].append(op.column.name)
        elif isinstance(op, ops.DropColumnOp):
            changes.setdefault(op.table_name, ([], []))[1].append(op.column_name)

    visit(upgrade)
    for table, (added, dropped) in changes.items():
        if added and dropped:
            log.warning(
                "Table %s loses %s and gains %s. If that is a rename, edit the revision to use "
                "batch_op.alter_column(old, new_column_name=new): drop + add loses the data.",
                table,
                ", ".join(dropped),
                ", ".join(added),
            )


def created_enums(upgrade: ops.UpgradeOps) -> list[str]:
    """Names of the native enum types the tables and columns created by ``upgrade`` bring."""
    names: list[str] = []

    def visit(op: ops.MigrateOperation) -> None:
        columns: list[sa.Column[t.Any]] = []
        if isinstance(op, ops.CreateTableOp):
            columns = [c for c in op.columns if isinstance(c, sa.Column)]
        elif isinstance(op, ops.AddColumnOp):
            columns = [op.column]
        elif isinstance(op, ops.OpContainer):
            for child in op.ops:
                visit(child)
        for column in columns:
            type_ = column.type
            if (
                isinstance(type_, sa.Enum)
                and type_.native_enum
                and type_.name
                and type_.name not in names
            ):
                names.append(type_.name)

    visit(upgrade)
    return names


class DropEnumOp(ops.MigrateOperation):
    """Drop a PostgreSQL enum type if it exists (nothing on other databases)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def reverse(self) -> ops.MigrateOperation:
        raise NotImplementedError("an enum type is created with the table that uses it")


@renderers.dispatch_for(DropEnumOp)
def _render_drop_enum(context: AutogenContext, op: DropEnumOp) -> str:
    # A no-op on SQLite and MySQL, where enums are not separate types.
    return f"sa.Enum(name={op.name!r}).drop(op.get_bind(), checkfirst=True)"


def enum_values_differ(then: t.Any = None) -> t.Callable[..., bool | None]:
    """A ``compare_type`` hook that also sees values added to or removed from an enum column
    (Alembic compares only the enum's type), then defers to ``then`` (a user hook)."""

    def compare_type(
        context: t.Any,
        inspected_column: t.Any,
        metadata_column: t.Any,
        inspected_type: t.Any,
        metadata_type: t.Any,
    ) -> bool | None:
        found: t.Any = getattr(inspected_type, "enums", None)
        enum = isinstance(metadata_type, sa.Enum) and found is not None
        if enum and set(found) != set(metadata_type.enums):
            return True
        if callable(then):
            return t.cast(
                "bool | None",
                then(context, inspected_column, metadata_column, inspected_type, metadata_type),
            )
        return None

    return compare_type


def _replace_enum_changes(container: ops.OpContainer, add: bool) -> None:
    """Turn enum value changes in ``container`` into ``ALTER TYPE ... ADD VALUE`` (upgrade) or
    drop them (downgrade: PostgreSQL cannot remove an enum value)."""
    kept: list[ops.MigrateOperation] = []
    for op in container.ops:
        if isinstance(op, ops.OpContainer):
            _replace_enum_changes(op, add)
            if not op.is_empty():
                kept.append(op)
            continue
        new, old = getattr(op, "modify_type", None), getattr(op, "existing_type", None)
        if not (
            isinstance(op, ops.AlterColumnOp)
            and isinstance(new, sa.Enum)
            and new.name
            and getattr(old, "enums", None) is not None
        ):
            kept.append(op)
            continue
        before = list(getattr(old, "enums", []))
        added = [v for v in new.enums if v not in before]
        if add and added:
            kept.append(AddEnumValuesOp(op.table_name, op.column_name, new.name, added))
        removed = [v for v in before if v not in new.enums]
        if add and removed:
            log.warning(
                "Enum %s loses %s: PostgreSQL cannot drop enum values; write that part of the "
                "migration by hand.",
                new.name,
                ", ".join(removed),
            )
        op.modify_type = None
        unchanged = (
            op.modify_nullable is None
            and op.modify_server_default is False
            and op.modify_comment is False
            and op.modify_name is None
        )
        if not unchanged:
            kept.append(op)
    container.ops = kept


class AddEnumValuesOp(ops.MigrateOperation):
    """Add values to a PostgreSQL enum type (nothing on other databases)."""

    def __init__(self, table: str, column: str, name: str, values: list[str]) -> None:
        self.table, self.column, self.name, self.values = table, column, name, values

    def to_diff_tuple(self) -> tuple[t.Any, ...]:
        return ("add_enum_values", self.table, self.column, self.name, tuple(self.values))


@renderers.dispatch_for(AddEnumValuesOp)
def _render_add_enum_values(context: AutogenContext, op: AddEnumValuesOp) -> list[str]:
    lines = ['if op.get_bind().dialect.name == "postgresql":']
    for value in op.values:
        literal = value.replace("'", "''")
        lines.append(
            f"    op.execute(\"ALTER TYPE {op.name} ADD VALUE IF NOT EXISTS '{literal}'\")"
        )
    return lines


# -- several databases ----------------------------------------------------------------------------


def revision_names(app: Flask) -> list[str]:
    """The name of each database of ``app`` in revision files: ``""`` for the default one (as
    in Flask-Migrate's multi-database template), else the bind key."""
    from .database import binds

    return ["" if key is None else key for key in binds.keys(app)]


def databases(context: t.Any, app: Flask) -> dict[str | None, str]:
    """Bind key -> name in revision files for each database this run migrates: every one, or
    those ``-x binds=a,b`` names (``default`` for the default one)."""
    from .database import binds

    chosen = context.get_x_argument(as_dictionary=True).get("binds", "")
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    with app.app_context():
        keys = binds.select(names, app)
    return {key: "" if key is None else key for key in keys}


def metadata_of(db: t.Any, key: str | None) -> sa.MetaData:
    """The models' metadata of the database ``key`` (an empty one when no model uses it)."""
    from .database.engines import NAMING_CONVENTION

    found = db.metadatas.get(key)
    return found if found is not None else sa.MetaData(naming_convention=NAMING_CONVENTION)


@contextlib.contextmanager
def connections(
    db: t.Any, databases: dict[str | None, str]
) -> Iterator[dict[str | None, tuple[Connection, dict[str, t.Any]]]]:
    """A connection per database, each in its own transaction (SQLite ones prepared by
    :func:`sqlite_safety`), all committed when the block succeeds, all rolled back when it
    fails."""
    from .database import binds

    with contextlib.ExitStack() as stack:
        opened: dict[str | None, tuple[Connection, dict[str, t.Any]]] = {}
        transactions = []
        for key in databases:
            connection = stack.enter_context(binds.connect(db, key))
            extra = stack.enter_context(sqlite_safety(connection))
            if not connection.in_transaction():
                transactions.append(connection.begin())
            opened[key] = (connection, extra)
        try:
            yield opened
        except BaseException:
            for transaction in transactions:
                transaction.rollback()
            raise
        for transaction in transactions:
            transaction.commit()


# -- SQLite: one transaction, foreign keys off, checked before the commit -------------------------

#: ``Connection.info`` key: foreign keys were turned off for this run, check them before commit.
_CHECK_FOREIGN_KEYS = "flask_complete.check_foreign_keys"


def _pragma(dbapi_connection: t.Any, statement: str) -> t.Any:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(statement)
        row = cursor.fetchone()
        return row[0] if row else None
    finally:
        cursor.close()


def _begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


@contextlib.contextmanager
def sqlite_safety(connection: Connection) -> Iterator[dict[str, t.Any]]:
    """Prepare ``connection`` for the migrations; yields extra ``context.configure`` options.

    On SQLite, batch mode rebuilds a table by copying it and dropping the old one, which fails
    when other tables' rows reference it with foreign keys on. So, as Alembic's batch docs
    advise, foreign keys are off for the run (and checked by :func:`check_foreign_keys` before
    the commit), and the whole run, DDL included, is one transaction: a failure leaves no
    half-done schema and no ``_alembic_tmp_*`` table. Other databases, and a connection already
    in a transaction (the pytest plugin's isolation), are left alone.
    """
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield {}
        return
    raw: t.Any = connection.connection.dbapi_connection
    # PRAGMA foreign_keys does nothing inside a transaction: set it before the first BEGIN.
    keys_before = _pragma(raw, "PRAGMA foreign_keys")
    level_before = getattr(raw, "isolation_level", None)
    # pysqlite starts no transaction for DDL: emit BEGIN ourselves when SQLAlchemy begins,
    # unless the engine already does (the pytest plugin's test engines).
    emit_begin = level_before is not None or not connection.dispatch.begin
    _pragma(raw, "PRAGMA foreign_keys=OFF")
    raw.isolation_level = None
    if emit_begin:
        event.listen(connection, "begin", _begin)
    connection.info[_CHECK_FOREIGN_KEYS] = bool(keys_before)
    try:
        yield {"transactional_ddl": True}
    finally:
        connection.info.pop(_CHECK_FOREIGN_KEYS, None)
        if emit_begin:
            event.remove(connection, "begin", _begin)
        if connection.in_transaction():
            connection.rollback()
        raw.isolation_level = level_before
        _pragma(raw, f"PRAGMA foreign_keys={'ON' if keys_before else 'OFF'}")
        if bool(_pragma(raw, "PRAGMA foreign_keys")) != bool(keys_before):
            # The pool must not hand out a connection without its foreign keys.
            connection.invalidate()


def check_foreign_keys(connection: Connection, shown: int = 10) -> None:
    """Fail the migration, before its commit, when it left rows whose foreign key points at no
    row (SQLite, when :func:`sqlite_safety` turned foreign keys off for it)."""
    if not connection.info.get(_CHECK_FOREIGN_KEYS):
        return
    found = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if not found:
        return
    lines = [
        f"  - {table} row {rowid}: no matching row in {parent}"
        for table, rowid, parent, _ in found[:shown]
    ]
    more = f"  ... and {len(found) - shown} more\n" if len(found) > shown else ""
    raise click.ClickException(
        f"The migration leaves {len(found)} row(s) whose foreign key points at no row:\n"
        + "\n".join(lines)
        + "\n"
        + more
        + "Nothing was applied (the migration runs in one transaction). Make the migration "
        "update or delete those rows (op.execute(...)) before it changes the tables, then run "
        "`flask db upgrade` again."
    )

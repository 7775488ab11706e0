"""Data fixtures: dump rows of the models as data, load them back (``flask db dump`` /
``flask db load``, seeds and tests).

A load runs in one transaction per database: a bad record leaves every database as it was, and
the error names the file, the record number, the model and the field. Models are loaded parents
first (their foreign keys' order; the columns of a foreign key cycle or a self-reference are set
by a second pass), in batches of :data:`BATCH` rows with Core ``executemany``. A record whose
primary key exists updates that row (only when a value differs), so loading twice changes
nothing. On PostgreSQL the sequences are moved past the loaded keys afterwards, so the next
insert gets a fresh key. Call these inside an app context.
"""

from __future__ import annotations

import contextlib
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import click
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.ddl import sort_tables_and_constraints

from . import binds
from .fixture_format import FixtureError, Record, Writer, codec, format_of, models_in, read

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

#: Rows per executemany (and per SELECT of the existing keys).
BATCH = 1000
#: Rows per fetch when dumping.
FETCH = 2000
FOLDER = "fixtures"

__all__ = ["FixtureError", "Report", "dump", "find", "load", "load_in_session", "models"]


@dataclass
class Column:
    """A field of a model: its name in fixtures, its column and codec."""

    name: str
    column: sa.Column[t.Any]
    encode: t.Callable[[t.Any], t.Any] | None
    decode: t.Callable[[t.Any], t.Any] | None


@dataclass
class Model:
    """A table as fixtures see it: the name records use, its database, fields and key."""

    name: str
    table: sa.Table
    bind: str | None
    rank: int
    fields: dict[str, Column]
    pk: list[Column]
    #: Foreign key columns set by a second pass (a cycle or a self-reference).
    deferred: set[str] = field(default_factory=set)

    def pk_of(self, record: Record) -> tuple[t.Any, ...] | None:
        if record.pk is None:
            return None
        values = record.pk if isinstance(record.pk, list) else [record.pk]
        if len(values) != len(self.pk):
            raise FixtureError(
                f"pk has {len(values)} value(s), the key has {len(self.pk)} column(s) "
                f"({', '.join(c.name for c in self.pk)})",
                file=record.file,
                record=record.number,
                model=self.name,
            )
        return tuple(_decode(c, v, record, self.name) for c, v in zip(self.pk, values, strict=True))


def _decode(column: Column, value: t.Any, record: Record, model: str) -> t.Any:
    if value is None or column.decode is None:
        return value
    try:
        return column.decode(value)
    except (ValueError, TypeError, ArithmeticError) as e:
        raise FixtureError(
            f"{value!r} is not a valid {column.column.type}: {e}",
            file=record.file,
            record=record.number,
            model=model,
            field=column.name,
        ) from None


def _fields(table: sa.Table, mapper: t.Any) -> dict[str, Column]:
    names: dict[sa.Column[t.Any], str] = {}
    if mapper is not None:
        for prop in mapper.column_attrs:
            for col in prop.columns:
                if col.table is table:
                    names.setdefault(col, prop.key)
    found = {}
    for col in table.columns:
        name = names.get(col, col.key)
        found[name] = Column(name, col, *codec(col))
    return found


def models(app: Flask) -> dict[str, Model]:
    """Every table of the models, in every database, by the name records use (the mapped class
    name, else the table name), parents before the tables that reference them."""
    sqla = binds.sqla_of(app)
    mappers: dict[sa.Table, t.Any] = {}
    for registry in {m.registry for m in _mappers(sqla)}:
        for mapper in registry.mappers:
            local = mapper.local_table
            if isinstance(local, sa.Table) and (
                mapper.inherits is None or mapper.inherits.local_table is not local
            ):
                mappers.setdefault(local, mapper)
    found: dict[str, Model] = {}
    rank = 0
    for key in binds.keys(app):
        tables = binds.tables(sqla, key)
        cyclic = _cycles(tables)
        for table in tables:
            mapper = mappers.get(table)
            name = mapper.class_.__name__ if mapper is not None else table.name
            if name in found:
                name = table.name if table.name not in found else f"{binds.label(key)}.{name}"
            columns = _fields(table, mapper)
            by_column = {c.column: c for c in columns.values()}
            deferred = {
                by_column[fk.parent].name
                for fk in table.foreign_keys
                if (fk.column.table is table or fk in cyclic) and fk.parent.nullable
            }
            pk = [by_column[c] for c in table.primary_key.columns]
            found[name] = Model(name, table, key, rank, columns, pk, deferred)
            rank += 1
    return found


def _cycles(tables: list[sa.Table]) -> set[sa.ForeignKey]:
    """The foreign keys SQLAlchemy leaves out of the tables' order to break a cycle."""
    found: set[sa.ForeignKey] = set()
    for table, constraints in sort_tables_and_constraints(tables):  # type: ignore[no-untyped-call]
        if table is None:
            found.update(fk for constraint in constraints for fk in constraint.elements)
    return found


def _mappers(sqla: SQLAlchemy) -> list[t.Any]:
    model = getattr(sqla, "Model", None)
    registry = getattr(model, "registry", None)
    return list(registry.mappers) if registry is not None else []


def _lookup(known: dict[str, Model], name: str) -> Model | None:
    if name in known:
        return known[name]
    lowered = name.lower()
    for model in known.values():
        if model.table.name == name or model.name.lower() == lowered:
            return model
    return None


def chosen(app: Flask, names: Iterable[str] = (), bind_names: Iterable[str] = ()) -> list[Model]:
    """The models ``names`` (every one when empty) of the databases ``bind_names``, in load
    order; a usage error for an unknown name."""
    known = models(app)
    keys = set(binds.select(bind_names, app))
    picked = []
    for name in names:
        model = _lookup(known, name)
        if model is None:
            raise click.UsageError(
                f"No model {name!r}. Models: {', '.join(known) or 'none'} (class or table names)."
            )
        picked.append(model)
    return sorted(
        {m.name: m for m in picked or known.values() if m.bind in keys}.values(),
        key=lambda m: m.rank,
    )


# -- dump -----------------------------------------------------------------------------------------


def dump(
    app: Flask,
    stream: t.TextIO,
    names: Iterable[str] = (),
    *,
    bind_names: Iterable[str] = (),
    fmt: str = "json",
    connection: t.Callable[[str | None], contextlib.AbstractContextManager[Connection]]
    | None = None,
) -> dict[str, int]:
    """Write the rows of the models ``names`` (default: every one) to ``stream``, parents first
    and by primary key, streamed from the database; rows written per model."""
    sqla = binds.sqla_of(app)
    writer = Writer(stream, fmt)
    counts: dict[str, int] = {}
    open_ = connection or (lambda key: binds.connect(sqla, key))
    for model in chosen(app, names, bind_names):
        fields = [c for c in model.fields.values() if c not in model.pk]
        pk = model.pk
        query = sa.select(*(c.column for c in pk), *(c.column for c in fields)).order_by(
            *(c.column for c in pk)
        )
        n = 0
        with open_(model.bind) as conn:
            result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(query)
            width = len(pk)
            for row in result:
                keys = [
                    v if v is None or c.encode is None else c.encode(v)
                    for c, v in zip(pk, row[:width], strict=True)
                ]
                values = {
                    c.name: v if v is None or c.encode is None else c.encode(v)
                    for c, v in zip(fields, row[width:], strict=True)
                }
                writer.write(model.name, keys[0] if width == 1 else keys, values)
                n += 1
        counts[model.name] = n
    writer.close()
    return counts


# -- load -----------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a load did (or, with ``dry_run``, would do), per model."""

    added: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    def lines(self) -> list[str]:
        """One line per model, in load order."""
        names = dict.fromkeys([*self.added, *self.updated, *self.unchanged])
        return [
            f"{name}: {self.added.get(name, 0)} added, {self.updated.get(name, 0)} updated, "
            f"{self.unchanged.get(name, 0)} unchanged"
            for name in names
        ]


def find(app: Flask, name: str) -> Path:
    """The fixture file ``name``: a path as it is, else ``fixtures/<env>/<name>`` then
    ``fixtures/<name>`` under the project root (``.json``, ``.yaml`` or ``.yml`` may be left
    out)."""
    from .state import get_state

    path = Path(name)
    if path.is_file():
        return path
    state = get_state(app)
    folders = [state.root / FOLDER / state.env, state.root / FOLDER]
    tried = []
    for folder in folders:
        for suffix in ("", ".json", ".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            tried.append(candidate)
            if candidate.is_file():
                return candidate
    raise click.UsageError(
        f"No fixture file {name!r}: not a file, and none in {folders[0]} or {folders[1]} "
        "(NAME.json, NAME.yaml). Write one with `flask db dump MODEL -o FILE`."
    )


class _Loader:
    """Loads the records of one model in batches on its connection."""

    def __init__(self, model: Model, conn: Connection, report: Report) -> None:
        self.model, self.conn, self.report = model, conn, report
        self.rows: dict[t.Any, tuple[Record, dict[str, t.Any]]] = {}
        self.keyless: list[tuple[Record, dict[str, t.Any]]] = []
        #: (pk, {column key: value}) for the second pass.
        self.later: list[tuple[tuple[t.Any, ...], dict[str, t.Any]]] = []
        self.dialect = conn.dialect.name

    def add(self, record: Record) -> None:
        model = self.model
        params: dict[str, t.Any] = {}
        for name, value in record.fields.items():
            column = model.fields.get(name)
            if column is None:
                raise FixtureError(
                    f"no such field (fields: {', '.join(model.fields)})",
                    file=record.file,
                    record=record.number,
                    model=model.name,
                    field=name,
                )
            params[column.column.key] = _decode(column, value, record, model.name)
        pk = model.pk_of(record)
        if pk is not None:
            for column, value in zip(model.pk, pk, strict=True):
                params[column.column.key] = value
            self.rows[pk] = (record, params)
        else:
            self.keyless.append((record, params))
        if len(self.rows) + len(self.keyless) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.rows and not self.keyless:
            return
        model, table = self.model, self.model.table
        existing: dict[tuple[t.Any, ...], t.Any] = {}
        if self.rows:
            pk_columns = [c.column for c in model.pk]
            key = pk_columns[0] if len(pk_columns) == 1 else sa.tuple_(*pk_columns)
            wanted = [k[0] if len(pk_columns) == 1 else k for k in self.rows]
            for row in self.conn.execute(sa.select(table).where(key.in_(wanted))):
                existing[tuple(row._mapping[c] for c in pk_columns)] = row._mapping
        inserts: list[tuple[Record, dict[str, t.Any]]] = list(self.keyless)
        updates = []
        unchanged = 0
        deferred = {model.fields[name].column.key for name in model.deferred}
        for pk, (record, params) in self.rows.items():
            found = existing.get(pk)
            if found is None:
                if deferred:
                    # Set by the second pass, once every row it may point at is there.
                    later = {k: params.pop(k) for k in deferred if params.get(k) is not None}
                    if later:
                        self.later.append((pk, later))
                inserts.append((record, params))
            elif any(found[table.c[k]] != v for k, v in params.items()):
                updates.append((record, params))
            else:
                unchanged += 1
        self._run(inserts, self._insert, "insert")
        self._run(updates, self._update, "update")
        name = model.name
        self.report.added[name] = self.report.added.get(name, 0) + len(inserts)
        self.report.updated[name] = self.report.updated.get(name, 0) + len(updates)
        self.report.unchanged[name] = self.report.unchanged.get(name, 0) + unchanged
        self.rows, self.keyless = {}, []

    def _insert(self, keys: frozenset[str]) -> sa.Insert:
        statement = sa.insert(self.model.table)
        if self.dialect == "postgresql":
            # With RETURNING, SQLAlchemy sends many rows per INSERT ("insertmanyvalues"); psycopg
            # would otherwise send one statement per row.
            statement = statement.returning(*self.model.table.primary_key.columns)
        return statement

    def _update(self, keys: frozenset[str]) -> sa.Update:
        table = self.model.table
        where = [c.column == sa.bindparam(f"_pk_{c.column.key}") for c in self.model.pk]
        values: dict[str, t.Any] = {k: sa.bindparam(f"_v_{k}") for k in keys}
        return sa.update(table).where(*where).values(values)

    def _run(
        self,
        rows: list[tuple[Record, dict[str, t.Any]]],
        statement: t.Callable[[frozenset[str]], sa.Insert | sa.Update],
        kind: str,
    ) -> None:
        groups: dict[frozenset[str], list[tuple[Record, dict[str, t.Any]]]] = {}
        for record, params in rows:
            groups.setdefault(frozenset(params), []).append((record, params))
        for keys, group in groups.items():
            if kind == "update":
                pk_keys = {c.column.key for c in self.model.pk}
                batch = [
                    {
                        **{f"_pk_{k}": p[k] for k in pk_keys},
                        **{f"_v_{k}": v for k, v in p.items() if k not in pk_keys},
                    }
                    for _, p in group
                ]
                keys = keys - pk_keys
                if not keys:
                    continue
            else:
                batch = [p for _, p in group]
            self._execute(statement(keys), batch, [r for r, _ in group])

    def _execute(
        self, statement: sa.Executable, batch: list[dict[str, t.Any]], records: list[Record]
    ) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(statement, batch)
        except DBAPIError:
            # Find the record: one at a time, each in its own savepoint.
            for record, params in zip(records, batch, strict=True):
                try:
                    with self.conn.begin_nested():
                        self.conn.execute(statement, [params])
                except DBAPIError as e:
                    raise FixtureError(
                        _first_line(e),
                        file=record.file,
                        record=record.number,
                        model=self.model.name,
                    ) from None
            raise

    def second_pass(self) -> None:
        """Set the deferred foreign key columns, once every model's rows are in."""
        if not self.later:
            return
        groups: dict[frozenset[str], list[dict[str, t.Any]]] = {}
        for pk, values in self.later:
            where = {f"_pk_{c.column.key}": v for c, v in zip(self.model.pk, pk, strict=True)}
            groups.setdefault(frozenset(values), []).append(
                {**where, **{f"_v_{k}": v for k, v in values.items()}}
            )
        for keys, batch in groups.items():
            statement = self._update(keys)
            for start in range(0, len(batch), BATCH):
                try:
                    with self.conn.begin_nested():
                        self.conn.execute(statement, batch[start : start + BATCH])
                except DBAPIError as e:
                    raise FixtureError(
                        f"setting {', '.join(sorted(keys))}: {_first_line(e)}",
                        model=self.model.name,
                    ) from None
        self.later = []

    def reset_sequence(self) -> None:
        """Move a PostgreSQL sequence past the loaded keys (``sqlsequencereset``)."""
        pk = self.model.table.primary_key.columns
        if self.dialect != "postgresql" or len(pk) != 1:
            return
        (column,) = pk
        if not isinstance(column.type, sa.Integer):
            return
        preparer = self.conn.dialect.identifier_preparer
        table = preparer.format_table(self.model.table)
        name = preparer.quote(column.name)
        self.conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE((SELECT MAX({name}) FROM {table}), 0) + 1, false)"
            ),
            {"table": table, "column": column.name},
        )


def _first_line(error: DBAPIError) -> str:
    text = str(error.orig if error.orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _plan(
    files: list[tuple[Path, str]], known: dict[str, Model]
) -> tuple[bool, list[tuple[Path, str]]]:
    """Whether the records can be loaded in file order (every model after those it depends
    on, as :func:`dump` writes them)."""
    last = -1
    for path, fmt in files:
        names = models_in(path, fmt)
        if names is None:
            return False, files
        for name in names:
            model = _lookup(known, name)
            rank = model.rank if model is not None else last
            if rank < last:
                return False, files
            last = rank
    return True, files


def _records(files: list[tuple[Path, str]], known: dict[str, Model]) -> Iterator[Record]:
    """Every record, parents first: in file order when that order is right (streamed), else
    model by model (a pass over the files for each)."""
    in_order, _ = _plan(files, known)
    if in_order:
        for path, fmt in files:
            yield from read(path, fmt)
        return
    whole = [(p, f) for p, f in files if models_in(p, f) is None]
    held = [r for p, f in whole for r in read(p, f)]
    names = {r.model for r in held}
    for path, fmt in files:
        if (path, fmt) not in whole:
            names.update(models_in(path, fmt) or [])
    ordered = sorted(names, key=lambda n: (m.rank if (m := _lookup(known, n)) else -1, n))
    for name in ordered:
        yield from (r for r in held if r.model == name)
        for path, fmt in files:
            if (path, fmt) not in whole:
                yield from read(path, fmt, only=name)


def load_on(
    app: Flask,
    paths: Iterable[Path],
    connections: t.Callable[[str | None], Connection],
    *,
    bind_names: Iterable[str] = (),
) -> Report:
    """Load the files on the connections ``connections(bind)`` gives, each already in the
    transaction the caller commits or rolls back."""
    known = models(app)
    keys = set(binds.select(bind_names, app))
    files = [(p, format_of(p)) for p in paths]
    report = Report()
    loaders: dict[str, _Loader] = {}
    current: _Loader | None = None
    for record in _records(files, known):
        model = _lookup(known, record.model)
        if model is None:
            raise FixtureError(
                f"no model {record.model!r} (models: {', '.join(known) or 'none'})",
                file=record.file,
                record=record.number,
            )
        if model.bind not in keys:
            report.skipped += 1
            continue
        loader = loaders.get(model.name)
        if loader is None:
            loader = loaders[model.name] = _Loader(model, connections(model.bind), report)
        if current is not None and current is not loader:
            current.flush()
        current = loader
        loader.add(record)
    for loader in loaders.values():
        loader.flush()
    for loader in loaders.values():
        loader.second_pass()
        loader.reset_sequence()
    return report


def load(
    app: Flask, paths: Iterable[Path], *, bind_names: Iterable[str] = (), dry_run: bool = False
) -> Report:
    """Load fixture files into the app's databases in one transaction each, committed when every
    record loaded (rolled back with ``dry_run``, after reporting what would change)."""
    sqla = binds.sqla_of(app)
    with contextlib.ExitStack() as stack:
        opened: dict[str | None, Connection] = {}

        def connection(key: str | None) -> Connection:
            if key not in opened:
                conn = stack.enter_context(binds.connect(sqla, key))
                stack.enter_context(_transaction(conn, commit=not dry_run))
                opened[key] = conn
            return opened[key]

        return load_on(app, list(paths), connection, bind_names=bind_names)


@contextlib.contextmanager
def _transaction(conn: Connection, *, commit: bool) -> Iterator[None]:
    """A transaction on ``conn`` (a SAVEPOINT when one is open already: the test isolation, a
    seed), committed on success when ``commit``, else rolled back."""
    raw = conn.connection.dbapi_connection
    # pysqlite begins a transaction only before a write: a first SAVEPOINT would be the
    # outermost one, committed by its RELEASE. Begin for real first.
    manual = conn.dialect.name == "sqlite" and not getattr(raw, "in_transaction", True)
    if manual and conn.in_transaction():
        conn.exec_driver_sql("BEGIN")
        manual = False
    transaction = conn.begin_nested() if conn.in_transaction() else conn.begin()
    # Unless the engine emits BEGIN itself (the pytest plugin's test engines do).
    if manual and not getattr(raw, "in_transaction", True):
        conn.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        transaction.rollback()
        raise
    if commit:
        transaction.commit()
    else:
        transaction.rollback()


def load_in_session(app: Flask, *names: str, session: t.Any = None) -> Report:
    """Load the fixtures ``names`` (files, or names under ``fixtures/``) inside the current
    session's transaction, for tests and seeds: rolled back with it. A bad record leaves the
    transaction as it was."""
    sqla = binds.sqla_of(app)
    session = session if session is not None else sqla.session
    session.flush()
    paths = [find(app, name) for name in names]
    with contextlib.ExitStack() as stack:

        def connection(key: str | None) -> Connection:
            conn = session.connection(bind_arguments={"bind": binds.bind_of(sqla, key)})
            if key not in opened:
                stack.enter_context(_transaction(conn, commit=True))
                opened.add(key)
            return t.cast(Connection, conn)

        opened: set[str | None] = set()
        report = load_on(app, paths, connection)
    session.expire_all()
    return report

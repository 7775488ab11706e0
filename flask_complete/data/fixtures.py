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
import os
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import click
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from ..database import binds
from .format import FixtureError, Record, Writer, format_of, models_in, read
from .models import Model, chosen, lookup, models
from .values import SQL_NULL, differs

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from flask import Flask

#: Rows per executemany (and per SELECT of the existing keys).
BATCH = 1000
#: Rows per fetch when dumping.
FETCH = 2000
FOLDER = "fixtures"

__all__ = [
    "FixtureError",
    "Report",
    "chosen",
    "dump",
    "find",
    "load",
    "load_in_session",
    "models",
]


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
        # JSON null and SQL NULL both read as None: ask the database which one each is.
        json_fields = [c for c in fields if c.json]
        query = sa.select(
            *(c.column for c in pk),
            *(c.column for c in fields),
            *(c.column.is_(None) for c in json_fields),
        ).order_by(*(c.column for c in pk))
        n = 0
        with open_(model.bind) as conn:
            result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(query)
            width, end = len(pk), len(pk) + len(fields)
            for row in result:
                keys = [
                    v if v is None or c.encode is None else c.encode(v)
                    for c, v in zip(pk, row[:width], strict=True)
                ]
                values = {
                    c.name: v if v is None or c.encode is None else c.encode(v)
                    for c, v in zip(fields, row[width:end], strict=True)
                }
                json_null = [
                    c.name
                    for c, sql_null in zip(json_fields, row[end:], strict=True)
                    if values[c.name] is None and not sql_null
                ]
                writer.write(model.name, keys[0] if width == 1 else keys, values, json_null)
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


def find(app: Flask, name: str | os.PathLike[str], *, paths: bool = False) -> Path:
    """The fixture file ``name`` in ``fixtures/<env>/`` then ``fixtures/`` under the project root
    (``.json``, ``.yaml`` or ``.yml`` may be left out); a usage error when the file it names is
    outside ``fixtures/`` (judged by its real path: ``..``, an absolute path and a symbolic link
    leading out are all refused). A path object, or with ``paths`` (the command line) a name that
    is a file from the current directory, is that file: the caller named it."""
    from ..state import get_state

    if isinstance(name, os.PathLike) or (paths and Path(name).is_file()):
        return Path(name)
    state = get_state(app)
    top = (state.root / FOLDER).resolve()
    folders = [state.root / FOLDER / state.env, state.root / FOLDER]
    for folder in folders:
        for suffix in ("", ".json", ".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            if not candidate.is_file():
                continue
            real = candidate.resolve()
            if not real.is_relative_to(top):
                raise click.UsageError(
                    f"Fixture name {name!r} leads outside {top} (to {real}): a name is a file "
                    f"inside {FOLDER}/. Move or copy the file there"
                    + (", or give its path to `flask db load`." if not paths else ".")
                )
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
        self.later: list[tuple[Record, tuple[t.Any, ...], dict[str, t.Any]]] = []
        self.dialect = conn.dialect.name
        self.checked = False

    def _check_table(self, record: Record) -> None:
        """A usage error naming the fix when the database lacks the model's table, or one its
        foreign keys reference (before a statement fails with the driver's words)."""
        table = self.model.table
        inspector = sa.inspect(self.conn)
        for needed in (table, *(fk.column.table for fk in table.foreign_keys)):
            if not inspector.has_table(needed.name, schema=needed.schema):
                raise FixtureError(
                    f"no table {needed.name} in the database ({binds.label(self.model.bind)}): "
                    "create the tables with `flask db upgrade` (or `flask db prepare`), then "
                    "load again",
                    file=record.file,
                    record=record.number,
                    model=self.model.name,
                )
        self.checked = True

    def add(self, record: Record) -> None:
        model = self.model
        if not self.checked:
            self._check_table(record)
        params = model.params(record)
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
        existing: dict[tuple[t.Any, ...], dict[str, t.Any]] = {}
        if self.rows:
            pk_columns = [c.column for c in model.pk]
            key = pk_columns[0] if len(pk_columns) == 1 else sa.tuple_(*pk_columns)
            wanted = [k[0] if len(pk_columns) == 1 else k for k in self.rows]
            # SQL NULL and JSON null both read as None: read which one a JSON column holds.
            nulls = [c.column for c in model.fields.values() if c.json]
            query = sa.select(table, *(c.is_(None) for c in nulls)).where(key.in_(wanted))
            for row in self.conn.execute(query):
                stored = {c.key: row._mapping[c] for c in table.columns}
                for column, sql_null in zip(nulls, row[len(table.columns) :], strict=True):
                    if sql_null:
                        stored[column.key] = SQL_NULL
                existing[tuple(row._mapping[c] for c in pk_columns)] = stored
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
                        self.later.append((record, pk, later))
                inserts.append((record, params))
            elif any(differs(v, found[k]) for k, v in params.items()):
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
        self,
        statement: sa.Executable,
        batch: list[dict[str, t.Any]],
        records: list[Record],
        field: str | None = None,
    ) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(statement, batch)
        except StatementError:
            # Find the record: one at a time, each in its own savepoint.
            for record, params in zip(records, batch, strict=True):
                try:
                    with self.conn.begin_nested():
                        self.conn.execute(statement, [params])
                except StatementError as e:
                    raise FixtureError(
                        _first_line(e),
                        file=record.file,
                        record=record.number,
                        model=self.model.name,
                        field=field,
                    ) from None
            raise

    def second_pass(self) -> None:
        """Set the deferred foreign key columns, once every model's rows are in."""
        groups: dict[frozenset[str], list[tuple[Record, dict[str, t.Any]]]] = {}
        for record, pk, values in self.later:
            where = {f"_pk_{c.column.key}": v for c, v in zip(self.model.pk, pk, strict=True)}
            groups.setdefault(frozenset(values), []).append(
                (record, {**where, **{f"_v_{k}": v for k, v in values.items()}})
            )
        names = {c.column.key: c.name for c in self.model.fields.values()}
        for keys, rows in groups.items():
            statement = self._update(keys)
            field = ", ".join(sorted(names[k] for k in keys))
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                self._execute(statement, [p for _, p in chunk], [r for r, _ in chunk], field)
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
        # No arithmetic on the largest key: MAX + 1 overflows a BIGINT holding 2**63 - 1. With
        # keys, the next is MAX + 1 (is_called); without, or with none above 0, it is 1.
        self.conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"GREATEST(MAX({name}), 1), COALESCE(MAX({name}) >= 1, false)) FROM {table}"
            ),
            {"table": table, "column": column.name},
        )


def _first_line(error: StatementError) -> str:
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
            model = lookup(known, name)
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
    ordered = sorted(names, key=lambda n: (m.rank if (m := lookup(known, n)) else -1, n))
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
        model = lookup(known, record.model)
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


def load_in_session(app: Flask, *names: str | os.PathLike[str], session: t.Any = None) -> Report:
    """Load the fixtures ``names`` (names under ``fixtures/``, or :class:`~pathlib.Path` objects
    for files elsewhere) inside the current session's transaction, for tests and seeds: rolled
    back with it. A bad record leaves the transaction as it was."""
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

"""The models as data fixtures see them: each table of every database by the name records use,
in load order (parents first), with its fields and their codecs; and a record's values checked
against them (:meth:`Model.params`)."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import click
import sqlalchemy as sa
from sqlalchemy.sql.ddl import sort_tables_and_constraints

from ..database import binds
from .format import FixtureError, Record
from .values import JSON_NULL, SQL_NULL, BadValue, codec, is_json

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy


@dataclass
class Column:
    """A field of a model: its name in fixtures, its column and codec."""

    name: str
    column: sa.Column[t.Any]
    encode: t.Callable[[t.Any], t.Any] | None
    decode: t.Callable[[t.Any], t.Any] | None
    #: A JSON column: SQL NULL and JSON null differ.
    json: bool = False

    def value(self, value: t.Any, record: Record, model: str) -> t.Any:
        """``value`` of ``record`` as it is bound: checked against the column, converted where
        JSON has no type for it; a :class:`FixtureError` naming the record when it is wrong."""
        if value is None:
            return SQL_NULL if self.json else None
        if self.decode is None:
            return value
        try:
            return self.decode(value)
        except BadValue as e:
            problem = f"{e} (the column is {self.column.type})"
        except (ValueError, TypeError, ArithmeticError) as e:
            problem = f"{value!r} is not a valid {self.column.type}: {e}"
        raise FixtureError(
            problem, file=record.file, record=record.number, model=model, field=self.name
        )


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
        """The record's primary key, checked against the key's columns."""
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
        return tuple(c.value(v, record, self.name) for c, v in zip(self.pk, values, strict=True))

    def params(self, record: Record) -> dict[str, t.Any]:
        """The record's fields by column key, each checked against its column."""
        params: dict[str, t.Any] = {}
        for name, value in record.fields.items():
            column = self._field(record, name)
            params[column.column.key] = column.value(value, record, self.name)
        for name in record.json_null:
            column = self._field(record, name)
            if not column.json or record.fields.get(name) is not None:
                what = "not a JSON column" if not column.json else "its value is not null"
                raise FixtureError(
                    f"named in json_null, but {what} (json_null lists the JSON columns "
                    "holding the JSON value null)",
                    file=record.file,
                    record=record.number,
                    model=self.name,
                    field=name,
                )
            params[column.column.key] = JSON_NULL
        return params

    def _field(self, record: Record, name: t.Any) -> Column:
        column = self.fields.get(name) if isinstance(name, str) else None
        if column is None:
            raise FixtureError(
                f"no such field (fields: {', '.join(self.fields)})",
                file=record.file,
                record=record.number,
                model=self.name,
                field=name,
            )
        return column


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
        found[name] = Column(name, col, *codec(col), json=is_json(col))
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


def lookup(known: dict[str, Model], name: str) -> Model | None:
    """The model records call ``name``: its class name, table name, or class name in any case."""
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
        model = lookup(known, name)
        if model is None:
            raise click.UsageError(
                f"No model {name!r}. Models: {', '.join(known) or 'none'} (class or table names)."
            )
        picked.append(model)
    return sorted(
        {m.name: m for m in picked or known.values() if m.bind in keys}.values(),
        key=lambda m: m.rank,
    )

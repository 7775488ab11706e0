"""The data fixture format: one record per row, ``{"model": ..., "pk": ..., "fields": {...}}``,
in JSON (or YAML when PyYAML is installed), and how each column type is written and read back.

Values are written so they read back exactly: dates, times and datetimes in ISO 8601 (with their
offset), decimals as strings, UUIDs as strings, enums by name, binary as base64, intervals as
``P<days>DT<seconds>.<microseconds>S``, JSON columns as JSON. Relationships are their foreign
key columns. The JSON writer puts one record per line, so that :func:`read` streams a file
written by :func:`write` without holding it in memory; other JSON and YAML files are read whole.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import re
import typing as t
import uuid
from pathlib import Path

import click
import sqlalchemy as sa

if t.TYPE_CHECKING:
    from collections.abc import Iterator

FORMATS = ("json", "yaml")
SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
Encode = t.Callable[[t.Any], t.Any]
Decode = t.Callable[[t.Any], t.Any]
#: The start of a line :func:`write` wrote: the model name without parsing the line.
_LINE = re.compile(r'\s*\{"model": "((?:[^"\\]|\\.)*)"')
_INTERVAL = re.compile(r"^P(-?\d+)DT(\d+)(?:\.(\d{1,6}))?S$")


class FixtureError(click.ClickException):
    """A fixture file or record that cannot be loaded; the message names the file, the record
    number, the model and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: int | None = None,
        model: str | None = None,
        field: str | None = None,
    ) -> None:
        where = [
            part
            for part in (
                file,
                f"record {record}" if record is not None else None,
                f"model {model}" if model else None,
                f"field {field}" if field else None,
            )
            if part
        ]
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.file, self.record, self.model, self.field = file, record, model, field


def yaml_module() -> t.Any:
    """PyYAML, or a usage error saying how to install it."""
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise click.UsageError(
            "YAML fixtures need PyYAML: `pip install pyyaml` (or use --format json)."
        ) from None
    return yaml


# -- values ---------------------------------------------------------------------------------------


def _interval(value: dt.timedelta) -> str:
    return f"P{value.days}DT{value.seconds}.{value.microseconds:06d}S"


def _read_interval(value: t.Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    found = _INTERVAL.match(str(value))
    if found is None:
        raise ValueError(f"{value!r} is not an interval like P1DT3600.000000S")
    days, seconds, micros = found.groups()
    return dt.timedelta(
        days=int(days), seconds=int(seconds), microseconds=int((micros or "0").ljust(6, "0"))
    )


def _typed(kind: type, parse: t.Callable[[str], t.Any]) -> Decode:
    def decode(value: t.Any) -> t.Any:
        # YAML reads unquoted dates as dates already.
        if isinstance(value, kind) and not (kind is dt.date and isinstance(value, dt.datetime)):
            return value
        return parse(value if isinstance(value, str) else str(value))

    return decode


def _enum(enum_class: type[enum.Enum]) -> tuple[Encode, Decode]:
    def decode(value: t.Any) -> enum.Enum:
        if isinstance(value, enum_class):
            return value
        try:
            return enum_class[value]
        except KeyError:
            try:
                return enum_class(value)
            except ValueError:
                names = ", ".join(enum_class.__members__)
                raise ValueError(f"{value!r} is not one of {names}") from None

    return (lambda v: v.name), decode


def _bytes(value: t.Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return base64.b64decode(str(value), validate=True)


def codec(column: sa.Column[t.Any]) -> tuple[Encode | None, Decode | None]:
    """How ``column``'s values are written and read back; ``None`` where JSON holds them as
    they are."""
    type_ = column.type
    if isinstance(type_, sa.JSON):
        return None, None
    if isinstance(type_, sa.Enum) and type_.enum_class is not None:
        return _enum(type_.enum_class)
    try:
        python = type_.python_type
    except NotImplementedError:
        return None, None
    if issubclass(python, dt.datetime):
        return dt.datetime.isoformat, _typed(dt.datetime, dt.datetime.fromisoformat)
    if issubclass(python, dt.date):
        return dt.date.isoformat, _typed(dt.date, dt.date.fromisoformat)
    if issubclass(python, dt.time):
        return dt.time.isoformat, _typed(dt.time, dt.time.fromisoformat)
    if issubclass(python, dt.timedelta):
        return _interval, _read_interval
    if issubclass(python, decimal.Decimal):
        return str, _typed(decimal.Decimal, decimal.Decimal)
    if issubclass(python, uuid.UUID):
        return str, _typed(uuid.UUID, uuid.UUID)
    if issubclass(python, bytes):
        return (lambda v: base64.b64encode(v).decode("ascii")), _bytes
    return None, None


# -- files ----------------------------------------------------------------------------------------


def format_of(path: Path, given: str | None = None) -> str:
    """The format of ``path``: ``given``, else by its suffix (JSON when it has none)."""
    found = given or SUFFIXES.get(path.suffix.lower(), "json")
    if found == "yaml":
        yaml_module()
    return found


class Writer:
    """Writes records to a text stream, one per line (JSON) or one list item each (YAML)."""

    def __init__(self, stream: t.TextIO, fmt: str = "json") -> None:
        self.stream, self.fmt, self.count = stream, fmt, 0
        self.yaml = yaml_module() if fmt == "yaml" else None
        if fmt == "json":
            stream.write("[")

    def write(self, model: str, pk: t.Any, fields: dict[str, t.Any]) -> None:
        record = {"model": model, "pk": pk, "fields": fields}
        if self.yaml is not None:
            text = self.yaml.safe_dump([record], sort_keys=False, allow_unicode=True)
            self.stream.write(text)
        else:
            self.stream.write(",\n" if self.count else "\n")
            self.stream.write(json.dumps(record, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        elif not self.count:
            self.stream.write("[]\n")


class Record(t.NamedTuple):
    """One record of a file: where it is, the model it names, its key and fields."""

    file: str
    number: int
    model: str
    pk: t.Any
    fields: dict[str, t.Any]


def _record(file: str, number: int, raw: t.Any) -> Record:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise FixtureError(
            'a record is {"model": ..., "pk": ..., "fields": {...}}', file=file, record=number
        )
    fields = raw.get("fields") or {}
    if not isinstance(fields, dict):
        raise FixtureError("fields is not a mapping", file=file, record=number, model=raw["model"])
    unknown = set(raw) - {"model", "pk", "fields"}
    if unknown:
        raise FixtureError(
            f"unknown key {sorted(unknown)[0]!r} (a record has model, pk and fields)",
            file=file,
            record=number,
            model=raw["model"],
        )
    return Record(file, number, raw["model"], raw.get("pk"), fields)


def _name(found: re.Match[str]) -> str:
    text = found[1]
    return t.cast(str, json.loads(f'"{text}"')) if "\\" in text else text


def _streamable(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        first, second = f.readline().strip(), f.readline()
    return first == "[" and (_LINE.match(second) is not None or second.strip() == "]")


def models_in(path: Path, fmt: str) -> list[str] | None:
    """The model of each record of ``path``, in order, read without parsing the records; ``None``
    when the file is not one :func:`write` wrote (it is then read whole)."""
    if fmt != "json" or not _streamable(path):
        return None
    found = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            match = _LINE.match(line)
            if match is not None:
                found.append(_name(match))
    return found


def read(path: Path, fmt: str, only: str | None = None) -> Iterator[Record]:
    """The records of ``path`` (those of model ``only``, if given), streamed when
    :func:`write` wrote the file."""
    file = str(path)
    if fmt == "json" and _streamable(path):
        with path.open(encoding="utf-8") as f:
            f.readline()
            number = 0
            for line in f:
                match = _LINE.match(line)
                if match is None:
                    if line.strip() in ("]", ""):
                        continue
                    raise FixtureError("not a record on its own line", file=file, record=number + 1)
                number += 1
                if only is not None and _name(match) != only:
                    continue
                try:
                    raw = json.loads(line.rstrip().removesuffix(","))
                except json.JSONDecodeError as e:
                    raise FixtureError(f"invalid JSON: {e.msg}", file=file, record=number) from e
                yield _record(file, number, raw)
        return
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml_module().safe_load(f) if fmt == "yaml" else json.load(f)
    except (ValueError, OSError) as e:
        raise FixtureError(f"cannot be read: {e}", file=file) from e
    except Exception as e:  # yaml.YAMLError, without importing yaml for JSON files
        raise FixtureError(f"invalid YAML: {e}", file=file) from e
    if data is None:
        return
    if not isinstance(data, list):
        raise FixtureError("a fixture file holds a list of records", file=file)
    for number, raw in enumerate(data, 1):
        record = _record(file, number, raw)
        if only is None or record.model == only:
            yield record

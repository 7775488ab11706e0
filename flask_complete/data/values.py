"""How a column's values are written to a data fixture and read back, and what a column accepts.

Values are written so they read back exactly: dates, times and datetimes in ISO 8601 (with their
offset), decimals as strings, UUIDs as strings, enums by name, binary as base64, intervals as
``P<days>DT<seconds>.<microseconds>S``, JSON columns as JSON. ``null`` is SQL NULL in every
column; a JSON column holding the JSON value ``null`` is named in the record's ``json_null``.

Reading checks each value against its column before it is bound: a string column takes strings,
an integer column integers (64-bit), a boolean column ``true``/``false``, a date column ISO 8601
text, and so on. A value of another type raises :class:`BadValue` instead of reaching the driver,
which would store ``["a", "b"]`` in a text column as ``{a,b}`` (PostgreSQL) or fail with a
traceback.
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

import sqlalchemy as sa
from sqlalchemy.sql.elements import Null

Encode = t.Callable[[t.Any], t.Any]
Decode = t.Callable[[t.Any], t.Any]
_INTERVAL = re.compile(r"^P(-?\d+)DT(\d+)(?:\.(\d{1,6}))?S$")
#: The integers every database stores (a narrower column is checked by the database).
INT64 = (-(2**63), 2**63 - 1)
#: What a loaded JSON column is bound to for SQL NULL and for JSON null (``None`` alone means
#: JSON null unless the column says ``none_as_null``).
SQL_NULL: t.Any = sa.null()
JSON_NULL: t.Any = sa.JSON.NULL


class BadValue(ValueError):
    """A value its column cannot hold; the message says what it is and what the column takes."""


def shown(value: t.Any) -> str:
    """``value`` as an error message shows it: its kind for containers, else a short repr."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _text(value: t.Any) -> str:
    if not isinstance(value, str):
        raise BadValue(f"{shown(value)} is not a string")
    _utf8(value)
    return value


def _utf8(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadValue(
            f"not valid Unicode: a lone surrogate {value[e.start]!r} at character {e.start}"
        ) from None


def _integer(value: t.Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadValue(f"{shown(value)} is not an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise BadValue(f"{shown(value)} is out of range for a 64-bit integer")
    return value


def _boolean(value: t.Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"{shown(value)} is not a boolean (true or false)")
    return value


def _number(value: t.Any) -> float | int:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadValue(f"{shown(value)} is not a number")
    return value


def _json(value: t.Any) -> t.Any:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadValue("a JSON value nested too deeply") from None
    except UnicodeEncodeError:
        raise BadValue("not valid Unicode: a lone surrogate in the JSON value") from None
    except (TypeError, ValueError) as e:
        raise BadValue(f"not a JSON value: {e}") from None
    return value


def _parsed(kind: type, parse: t.Callable[[str], t.Any], what: str) -> Decode:
    """Text parsed by ``parse``; a ``kind`` as it is (YAML reads unquoted dates as dates)."""

    def decode(value: t.Any) -> t.Any:
        if isinstance(value, kind) and not (kind is dt.date and isinstance(value, dt.datetime)):
            return value
        if isinstance(value, dt.date | dt.time) and kind in (dt.date, dt.datetime, dt.time):
            value = value.isoformat()
        if not isinstance(value, str):
            raise BadValue(f"{shown(value)} is not {what}")
        return parse(value)

    return decode


def _decimal(value: t.Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadValue(f'{shown(value)} is not a decimal (a string like "12.50")')
    return decimal.Decimal(str(value))


def _interval(value: dt.timedelta) -> str:
    return f"P{value.days}DT{value.seconds}.{value.microseconds:06d}S"


def _read_interval(value: t.Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if not isinstance(value, str):
        raise BadValue(f"{shown(value)} is not an interval like P1DT3600.000000S")
    found = _INTERVAL.match(value)
    if found is None:
        raise ValueError(f"{value!r} is not an interval like P1DT3600.000000S")
    days, seconds, micros = found.groups()
    return dt.timedelta(
        days=int(days), seconds=int(seconds), microseconds=int((micros or "0").ljust(6, "0"))
    )


def _enum(enum_class: type[enum.Enum]) -> tuple[Encode, Decode]:
    def decode(value: t.Any) -> enum.Enum:
        if isinstance(value, enum_class):
            return value
        names = ", ".join(enum_class.__members__)
        if isinstance(value, str) and value in enum_class.__members__:
            return enum_class[value]
        try:
            return enum_class(value)
        except (ValueError, TypeError):
            raise BadValue(f"{shown(value)} is not one of {names}") from None

    return (lambda v: v.name), decode


def _choices(choices: t.Sequence[str]) -> Decode:
    def decode(value: t.Any) -> str:
        if _text(value) not in choices:
            raise BadValue(f"{shown(value)} is not one of {', '.join(choices)}")
        return t.cast(str, value)

    return decode


def _bytes(value: t.Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise BadValue(f"{shown(value)} is not base64 text")
    return base64.b64decode(value, validate=True)


def _uuid(value: t.Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise BadValue(f"{shown(value)} is not a UUID string")
    return uuid.UUID(value)


def _kind(python: type) -> Decode | None:
    """What a column of this Python type accepts, for those JSON has no codec for."""
    if issubclass(python, bool):
        return _boolean
    if issubclass(python, int):
        return _integer
    if issubclass(python, float):
        return _number
    if issubclass(python, str):
        return _text
    return None


def codec(column: sa.Column[t.Any]) -> tuple[Encode | None, Decode | None]:
    """How ``column``'s values are written (``None``: as they are) and read back: checked, and
    converted where JSON has no type for them (``None``: a type this module does not know, whose
    values are bound as they are)."""
    type_ = column.type
    if isinstance(type_, sa.JSON):
        return None, _json
    if isinstance(type_, sa.Enum):
        if type_.enum_class is not None:
            return _enum(type_.enum_class)
        return None, _choices(list(type_.enums))
    try:
        python = type_.python_type
    except NotImplementedError:
        return None, None
    if issubclass(python, dt.datetime):
        return dt.datetime.isoformat, _parsed(
            dt.datetime, dt.datetime.fromisoformat, "a datetime (ISO 8601 text)"
        )
    if issubclass(python, dt.date):
        return dt.date.isoformat, _parsed(dt.date, dt.date.fromisoformat, "a date (ISO 8601 text)")
    if issubclass(python, dt.time):
        return dt.time.isoformat, _parsed(dt.time, dt.time.fromisoformat, "a time (ISO 8601 text)")
    if issubclass(python, dt.timedelta):
        return _interval, _read_interval
    if issubclass(python, decimal.Decimal):
        return str, _decimal
    if issubclass(python, uuid.UUID):
        return str, _uuid
    if issubclass(python, bytes):
        return (lambda v: base64.b64encode(v).decode("ascii")), _bytes
    return None, _kind(python)


def is_json(column: sa.Column[t.Any]) -> bool:
    """Whether ``column`` holds JSON, where SQL NULL and JSON null differ."""
    return isinstance(column.type, sa.JSON)


def comparable(value: t.Any) -> t.Any:
    """A bound value as it compares with one read back: JSON null reads as ``None``, and SQL
    NULL in a JSON column as :data:`SQL_NULL` (the loader reads it so)."""
    if value is JSON_NULL:
        return None
    if isinstance(value, Null):
        return SQL_NULL
    return value


def differs(bound: t.Any, stored: t.Any) -> bool:
    """Whether ``bound`` would change a column that holds ``stored`` (both :func:`comparable`)."""
    bound, stored = comparable(bound), comparable(stored)
    if bound is SQL_NULL or stored is SQL_NULL:
        return bound is not stored
    return bool(bound != stored)

"""The data fixture format: one record per row, ``{"model": ..., "pk": ..., "fields": {...}}``,
in JSON (or YAML when PyYAML is installed); how files are written and read back whole.

The JSON writer puts one record per line, so that :func:`read` streams a file :class:`Writer`
wrote without holding it in memory; other JSON and YAML files are read whole. A file is loaded
only when it is whole: a JSON file must end with its closing ``]`` (a streamed one has a comma
after every record but the last), and a YAML file :class:`Writer` wrote must end with the
document end line ``...`` it announces on its first line. A file cut short, text that is not
UTF-8, or nesting deeper than Python's recursion limit are one :class:`FixtureError` each. How a
column's values are written is :mod:`.fixture_values`.
"""

from __future__ import annotations

import contextlib
import json
import re
import typing as t
from pathlib import Path

import click

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterator

FORMATS = ("json", "yaml")
SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
#: The start of a line :class:`Writer` wrote: the model name without parsing the line.
_LINE = re.compile(r'\s*\{"model": "((?:[^"\\]|\\.)*)"')
#: The first line of a YAML file :class:`Writer` wrote: such a file must end with ``...``.
YAML_HEAD = "# data fixture written by flask db dump: it ends with a document end line"
_CUT = "it was cut short (an interrupted dump or copy): write it again with `flask db dump`"


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
                _safe(file),
                f"record {record}" if record is not None else None,
                f"model {_safe(model)}" if model else None,
                f"field {_safe(field)}" if field else None,
            )
            if part
        ]
        prefix = f"{', '.join(where)}: " if where else ""
        # Names and values come from the file: a lone surrogate cannot be printed.
        text = f"{prefix}{message}".encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(text)
        self.file, self.record, self.model, self.field = file, record, model, field


def _safe(name: t.Any) -> str | None:
    """A name from a file as a message shows it: quoted when it would not print as itself."""
    if name is None:
        return None
    text = str(name)
    return text if text.isprintable() else repr(text)


def yaml_module() -> t.Any:
    """PyYAML, or a usage error saying how to install it."""
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise click.UsageError(
            "YAML fixtures need PyYAML: `pip install pyyaml` (or use --format json)."
        ) from None
    return yaml


# -- writing --------------------------------------------------------------------------------------


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
        stream.write("[" if fmt == "json" else f"{YAML_HEAD}\n")

    def write(
        self, model: str, pk: t.Any, fields: dict[str, t.Any], json_null: t.Sequence[str] = ()
    ) -> None:
        """One record; ``json_null`` names the JSON fields holding JSON null (not SQL NULL)."""
        record = {"model": model, "pk": pk, "fields": fields}
        if json_null:
            record["json_null"] = list(json_null)
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
        else:
            self.stream.write("...\n" if self.count else "[]\n...\n")


# -- reading --------------------------------------------------------------------------------------


class Record(t.NamedTuple):
    """One record of a file: where it is, the model it names, its key and fields, and the JSON
    fields holding JSON null (their ``null`` in ``fields`` is not SQL NULL)."""

    file: str
    number: int
    model: str
    pk: t.Any
    fields: dict[str, t.Any]
    json_null: tuple[str, ...] = ()


def _record(file: str, number: int, raw: t.Any) -> Record:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise FixtureError(
            'a record is {"model": ..., "pk": ..., "fields": {...}}', file=file, record=number
        )
    model = raw["model"]
    fields = raw.get("fields")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise FixtureError("fields is not a mapping", file=file, record=number, model=model)
    json_null = raw.get("json_null") or []
    if not isinstance(json_null, list) or not all(isinstance(n, str) for n in json_null):
        raise FixtureError(
            "json_null is not a list of field names", file=file, record=number, model=model
        )
    unknown = set(raw) - {"model", "pk", "fields", "json_null"}
    if unknown:
        raise FixtureError(
            f"unknown key {sorted(map(str, unknown))[0]!r} (a record has model, pk, fields and "
            "json_null)",
            file=file,
            record=number,
            model=model,
        )
    return Record(file, number, model, raw.get("pk"), fields, tuple(json_null))


@contextlib.contextmanager
def _opened(path: Path, file: str) -> Iterator[t.BinaryIO]:
    try:
        with path.open("rb") as f:
            yield f
    except OSError as e:
        raise FixtureError(f"cannot be read: {e.strerror or e}", file=file) from None


def _not_utf8(byte: int, offset: int, file: str) -> FixtureError:
    return FixtureError(
        f"not UTF-8 text (byte 0x{byte:02x} at offset {offset}): a fixture file is UTF-8 JSON "
        "or YAML; save it as UTF-8",
        file=file,
    )


def _lines(path: Path, file: str) -> Generator[str]:
    """The lines of ``path``, each decoded from UTF-8."""
    offset = 0
    with _opened(path, file) as f:
        for raw in f:
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(raw[e.start], offset + e.start, file) from None
            offset += len(raw)


def _streamable(path: Path, file: str) -> bool:
    lines = _lines(path, file)
    first, second = next(lines, "").strip(), next(lines, "")
    lines.close()
    return first == "[" and (_LINE.match(second) is not None or second.strip() == "]")


def _name(found: re.Match[str], file: str, number: int) -> str:
    text = found[1]
    if "\\" not in text:
        return text
    try:
        return t.cast(str, json.loads(f'"{text}"'))
    except ValueError as e:
        raise FixtureError(f"invalid JSON in the model name: {e}", file=file, record=number) from e


def models_in(path: Path, fmt: str) -> list[str] | None:
    """The model of each record of ``path``, in order, read without parsing the records; ``None``
    when the file is not one :class:`Writer` wrote (it is then read whole)."""
    file = str(path)
    if fmt != "json" or not _streamable(path, file):
        return None
    found: list[str] = []
    for line in _lines(path, file):
        match = _LINE.match(line)
        if match is not None:
            found.append(_name(match, file, len(found) + 1))
    return found


def read(path: Path, fmt: str, only: str | None = None) -> Iterator[Record]:
    """The records of ``path`` (those of model ``only``, if given), streamed when
    :class:`Writer` wrote the file; a :class:`FixtureError` unless the file is whole."""
    file = str(path)
    if fmt == "json" and _streamable(path, file):
        yield from _stream(path, file, only)
        return
    for number, raw in enumerate(_whole(path, fmt, file), 1):
        record = _record(file, number, raw)
        if only is None or record.model == only:
            yield record


def _stream(path: Path, file: str, only: str | None) -> Iterator[Record]:
    """The records of a file :class:`Writer` wrote: ``[``, one record a line with a comma after
    each but the last, ``]``; anything else is refused, a file cut short too."""
    lines = _lines(path, file)
    next(lines)
    number, comma, closed = 0, True, False
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if closed:
            raise FixtureError(f"text after the closing ] (after record {number})", file=file)
        if text == "]":
            if number and comma:
                raise FixtureError(
                    f"record {number} ends with a comma and no record follows: {_CUT}, or "
                    "records were removed by hand",
                    file=file,
                )
            closed = True
            continue
        number += 1
        match = _LINE.match(line)
        if match is None and not any(rest.strip() for rest in lines):
            raise FixtureError(f"the file ends inside record {number}: {_CUT}", file=file)
        if match is None or not comma:
            what = "no comma after the record before" if comma is False else "not a record"
            raise FixtureError(
                f"{what}: a file `flask db dump` wrote has one record a line, separated by commas",
                file=file,
                record=number,
            )
        comma = text.endswith(",")
        name = _name(match, file, number)
        if only is not None and name != only:
            continue
        raw = _parse_line(text[:-1] if comma else text, lines, file, number)
        record = _record(file, number, raw)
        if record.model != name:
            raise FixtureError("the record names its model twice", file=file, record=number)
        yield record
    if not closed:
        raise FixtureError(f"the file ends after record {number}, before its ]: {_CUT}", file=file)


def _parse_line(text: str, rest: Iterator[str], file: str, number: int) -> t.Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise FixtureError(_DEEP, file=file, record=number) from None
    except ValueError as e:
        if not any(line.strip() for line in rest):
            raise FixtureError(
                f"the file ends inside record {number}: {_CUT}", file=file, record=number
            ) from None
        raise FixtureError(f"invalid JSON: {e}", file=file, record=number) from None


_DEEP = "nested too deeply: a fixture file is a list of records, and a record is a few levels deep"


def _whole(path: Path, fmt: str, file: str) -> list[t.Any]:
    """The records of a file read whole, checked to be a whole list."""
    with _opened(path, file) as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(data[e.start], e.start, file) from None
    found = _yaml(text, file) if fmt == "yaml" else _json(text, file)
    if found is None:
        raise FixtureError(
            "the file is empty: a fixture file holds a list of records (`[]` for none)", file=file
        )
    if not isinstance(found, list):
        raise FixtureError("a fixture file holds a list of records", file=file)
    return found


def _json(text: str, file: str) -> t.Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise FixtureError(_DEEP, file=file) from None
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()):
            raise FixtureError(f"the file ends before its JSON does: {_CUT}", file=file) from None
        raise FixtureError(
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", file=file
        ) from None
    except ValueError as e:
        raise FixtureError(f"cannot be read: {e}", file=file) from None


def _yaml(text: str, file: str) -> t.Any:
    yaml = yaml_module()
    if text.startswith(YAML_HEAD) and text.rstrip().rsplit("\n", 1)[-1].strip() != "...":
        raise FixtureError(f"the file ends before its document end line (...): {_CUT}", file=file)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise FixtureError(_DEEP, file=file) from None
    except Exception as e:  # yaml.YAMLError, and what its constructors raise (a bad date)
        raise FixtureError(f"invalid YAML: {' '.join(str(e).split())}", file=file) from None

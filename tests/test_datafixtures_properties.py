"""Property tests of ``flask db dump`` / ``flask db load`` on SQLite, PostgreSQL and MariaDB:

1. a dump cut anywhere loads whole or not at all (an error, and the row counts unchanged);
2. generated rows survive dump -> load exactly: unicode text, 64-bit integers, decimals,
   datetimes, SQL NULL and JSON null in a JSON column;
3. a value of the wrong type for its column is refused, naming file, record, model and field,
   and nothing is written;
4. arbitrary bytes as a fixture file are one error (never a traceback);
5. a fixture name never finds a file whose real path is outside ``fixtures/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from conftest import drop_database, new_database, unique_name
from dbapps import fresh_db, run
from flask import Flask
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column
from test_datafixtures import STRONG, Models, build, count, fill, sqlite_decimal

from flask_complete import Complete
from flask_complete.data import fixtures as datafixtures
from flask_complete.data.values import INT64

EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BACKENDS = ["sqlite", "postgres", "mysql"]


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database of ``kind`` for a module's examples, dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'props.sqlite3'}"
        return
    name = unique_name("test_fcfix")
    url = new_database(kind, name)
    try:
        yield url
    finally:
        drop_database(kind, name)


def start(url: str, root: Path, db: t.Any) -> Flask:
    app = Flask("fixture_props", root_path=str(root))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url)
    Complete(app, db=db, env="development", root=root)
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    return app


def dispose(app: Flask, db: t.Any) -> None:
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


class Built(t.NamedTuple):
    app: Flask
    m: Models
    root: Path


@pytest.fixture(scope="module", params=BACKENDS)
def items(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """The owners, items and tags of ``test_datafixtures``, empty, on each backend."""
    root = tmp_path_factory.mktemp("fixture-props")
    with database(request.param, root) as url:
        m = build()
        app = start(url, root, m.db)
        try:
            yield Built(app, m, root)
        finally:
            dispose(app, m.db)


def clear(app: Flask, m: Models) -> None:
    with app.app_context():
        s = m.db.session
        s.execute(sa.update(m.Owner).values(favourite_id=None))
        s.execute(sa.update(m.Item).values(parent_id=None))
        for model in (m.Tag, m.Item, m.Owner):
            s.execute(sa.delete(model))
        s.commit()


def counts(app: Flask, m: Models) -> tuple[int, int, int]:
    return count(app, m, m.Owner), count(app, m, m.Item), count(app, m, m.Tag)


def assert_one_error(result: t.Any, path: Path) -> None:
    """The load failed with one error line naming the file: a ClickException, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.startswith(f"Error: {path}"), result.output
    assert result.output.count("\n") == 1, result.output


# -- 1. a dump cut anywhere -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def whole(items: Built) -> dict[str, bytes]:
    """The dump of ``fill``'s rows, as JSON and as YAML; the tables left empty."""
    app, m, root = items
    fill(app, m)
    found = {}
    for fmt in ("json", "yaml"):
        path = root / f"whole.{fmt}"
        assert run(app, "db", "dump", "-o", str(path)).exit_code == 0
        found[fmt] = path.read_bytes()
    clear(app, m)
    return found


def cuts(text: bytes) -> st.SearchStrategy[int]:
    """Where to cut: anywhere, and around every line end (a record's comma, the bracket)."""
    ends = [i for i, c in enumerate(text) if c == ord("\n")]
    near = sorted({max(0, min(len(text), i + d)) for i in ends for d in (-2, -1, 0, 1)})
    return st.one_of(st.sampled_from(near), st.integers(0, len(text)))


@sqlite_decimal
@pytest.mark.parametrize("fmt", ["json", "yaml"])
@EXAMPLES
@given(data=st.data())
def test_a_dump_cut_anywhere_loads_whole_or_not_at_all(
    items: Built, whole: dict[str, bytes], fmt: str, data: st.DataObject
) -> None:
    app, m, root = items
    if fmt == "yaml" and not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the YAML format is the same on every database")
    text = whole[fmt]
    cut = data.draw(cuts(text), label="cut")
    path = root / f"cut.{fmt}"
    path.write_bytes(text[:cut])
    result = run(app, "db", "load", str(path))
    if text[:cut].rstrip() == text.rstrip():
        assert result.exit_code == 0, result.output
        assert counts(app, m) == (2, 3, 1)
        assert run(app, "db", "dump").output.encode() == whole["json"]
        clear(app, m)
    else:
        assert_one_error(result, path)
        assert counts(app, m) == (0, 0, 0)


# -- 2. generated rows round trip exactly ---------------------------------------------------------


class Sample(t.NamedTuple):
    db: t.Any
    Row: t.Any


def build_sample() -> Sample:
    db = fresh_db()

    class Row(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "sample"
        id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
        text: Mapped[str | None] = mapped_column(sa.Text)
        big: Mapped[int | None] = mapped_column(sa.BigInteger)
        # 15 digits: what SQLite's floats hold exactly too.
        price: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(15, 6))
        at: Mapped[dt.datetime | None] = mapped_column(
            sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
        )
        day: Mapped[dt.date | None] = mapped_column(sa.Date)
        ratio: Mapped[float | None] = mapped_column(sa.Double)
        flag: Mapped[bool | None] = mapped_column(sa.Boolean)
        uid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
        data: Mapped[t.Any] = mapped_column(sa.JSON, nullable=True)

    return Sample(db, Row)


@pytest.fixture(scope="module", params=BACKENDS)
def samples(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Flask, Sample, Path]]:
    root = tmp_path_factory.mktemp("fixture-samples")
    with database(request.param, root) as url:
        sample = build_sample()
        app = start(url, root, sample.db)
        try:
            yield app, sample, root
        finally:
            dispose(app, sample.db)


SQL_NULL = "SQL NULL"
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(*INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
rows = st.fixed_dictionaries(
    {
        "text": st.none() | text,
        "big": st.none() | st.integers(*INT64),
        "price": st.none()
        | st.decimals(-(10**8), 10**8, places=6, allow_nan=False, allow_infinity=False),
        "at": st.none() | st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31)),
        "day": st.none() | st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)),
        "ratio": st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64),
        "flag": st.none() | st.booleans(),
        # MariaDB's UUID type refuses the reserved variants; RFC 4122 ones are the UUIDs apps make.
        "uid": st.none() | st.uuids(version=4),
        # SQL NULL, JSON null (None) or a JSON document.
        "data": st.just(SQL_NULL) | json_values,
    }
)


def stored(app: Flask, sample: Sample) -> tuple[list[tuple[t.Any, ...]], list[int]]:
    """Every row as the database holds it, and the keys whose JSON column is SQL NULL."""
    with app.app_context():
        s = sample.db.session
        table = sample.Row.__table__
        found = [tuple(r) for r in s.execute(sa.select(table).order_by(table.c.id))]
        nulls = s.scalars(sa.select(table.c.id).where(table.c.data.is_(None)).order_by("id"))
        return found, list(nulls)


@sqlite_decimal
@EXAMPLES
@given(
    generated=st.lists(st.tuples(st.integers(*INT64), rows), max_size=5, unique_by=lambda r: r[0])
)
@example(generated=[(1, {"data": SQL_NULL}), (2, {"data": None}), (3, {"data": [None]})])
@example(generated=[(INT64[1], {"big": INT64[0], "text": "ü✓😀\r\n '\"\\"})])
def test_generated_rows_round_trip_exactly(
    samples: tuple[Flask, Sample, Path], generated: list[tuple[int, dict[str, t.Any]]]
) -> None:
    app, sample, root = samples
    table = sample.Row.__table__
    with app.app_context():
        s = sample.db.session
        s.execute(sa.delete(table))
        for key, values in generated:
            data = values.get("data", SQL_NULL)
            data = sa.null() if data == SQL_NULL else sa.JSON.NULL if data is None else data
            s.execute(sa.insert(table).values(id=key, **{**values, "data": data}))
        s.commit()
    before = stored(app, sample)
    path = root / "sample.json"
    result = run(app, "db", "dump", "-o", str(path))
    assert result.exit_code == 0, result.output
    with app.app_context():
        sample.db.session.execute(sa.delete(table))
        sample.db.session.commit()
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 0, result.output
    assert stored(app, sample) == before
    assert run(app, "db", "dump").output == path.read_text()
    # What every database holds exactly is what was generated.
    rows_by_key = {row[0]: row for row in before[0]}
    assert sorted(rows_by_key) == sorted(key for key, _ in generated)
    assert before[1] == sorted(k for k, v in generated if v.get("data", SQL_NULL) == SQL_NULL)
    columns = [c.key for c in table.columns]
    for key, values in generated:
        row = dict(zip(columns, rows_by_key[key], strict=True))
        for name in ("text", "big", "price", "at", "day", "flag", "uid", "ratio"):
            if name in values:
                assert row[name] == values[name], name
        if values.get("data", SQL_NULL) != SQL_NULL:
            assert row["data"] == values["data"]


# -- 3. values of the wrong type ------------------------------------------------------------------


containers = st.lists(st.integers(), max_size=2) | st.dictionaries(text, st.integers(), max_size=2)
numbers = st.integers(*INT64) | st.floats(allow_nan=False, allow_infinity=False)
wrong: dict[str, st.SearchStrategy[t.Any]] = {
    # A list is a composite key: one of another length is refused for the model, not a field.
    "id": text | st.booleans() | st.floats(allow_nan=False) | st.dictionaries(text, st.integers()),
    "owner_id": text | st.booleans() | st.floats(allow_nan=False) | containers,
    "title": numbers | st.booleans() | containers,
    "flag": text | numbers | containers,
    "day": numbers | st.booleans() | containers | text,
    "created": numbers | st.booleans() | containers | text,
    "at": numbers | st.booleans() | containers | text,
    "ratio": text | st.booleans() | containers,
    "price": st.booleans() | containers | text,
    "uid": numbers | st.booleans() | containers | text,
    "color": numbers | st.booleans() | containers | text,
    "blob": numbers | st.booleans() | containers,
    "span": st.booleans() | containers | text,
}
TIMES = {"day": dt.date, "created": dt.datetime, "at": dt.time}


def acceptable(field: str, value: t.Any) -> bool:
    """Whether ``value`` is, after all, a valid text form for ``field`` (a date string...)."""
    if not isinstance(value, str):
        return False
    parse: t.Callable[[str], t.Any] | None = {
        "day": dt.date.fromisoformat,
        "created": dt.datetime.fromisoformat,
        "at": dt.time.fromisoformat,
        "price": decimal.Decimal,
        "uid": uuid.UUID,
    }.get(field)
    if field == "color":
        return value in ("RED", "GREEN", "r", "g")
    if field == "span":
        return value.startswith("P")
    if parse is None:
        return False
    try:
        parse(value)
    except (ValueError, ArithmeticError):
        return False
    return True


@EXAMPLES
@given(field=st.sampled_from(sorted(wrong)), data=st.data())
def test_a_value_of_the_wrong_type_is_refused(
    items: Built, field: str, data: st.DataObject
) -> None:
    app, m, root = items
    value = data.draw(wrong[field], label="value")
    assume(not acceptable(field, value))
    item = {"owner_id": 1, "title": "a", "created": "2024-01-01T00:00:00"}
    bad = {"model": "Item", "pk": 2, "fields": dict(item)}
    if field == "id":
        bad["pk"] = value
    else:
        bad["fields"][field] = value
    path = root / "wrong.json"
    path.write_text(
        json.dumps(
            [
                {"model": "Owner", "pk": 1, "fields": {"name": "ann"}},
                {"model": "Item", "pk": 1, "fields": item},
                bad,
            ]
        )
    )
    result = run(app, "db", "load", str(path))
    assert_one_error(result, path)
    assert f"{path}, record 3, model Item, field {field}: " in result.output
    assert counts(app, m) == (0, 0, 0)


# -- 4. arbitrary bytes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noise_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("fixture-noise")
    m = build()
    app = start(f"sqlite:///{root / 'noise.sqlite3'}", root, m.db)
    try:
        yield Built(app, m, root)
    finally:
        dispose(app, m.db)


VALID = (
    b'[\n{"model": "Owner", "pk": 1, "fields": {"name": "ann", "favourite_id": null}},\n'
    b'{"model": "Item", "pk": 1, "fields": {"owner_id": 1, "title": "t", '
    b'"created": "2024-01-01T00:00:00", "data": null}, "json_null": ["data"]}\n]\n'
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file with a few bytes replaced, inserted or removed."""
    found = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(found) - 1))
        byte = draw(st.integers(0, 255) | st.sampled_from(list(b'[]{},":\\\n')))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "replace":
            found[at] = byte
        elif kind == "insert":
            found.insert(at, byte)
        else:
            del found[at]
    return bytes(found)


@sqlite_decimal
@EXAMPLES
@given(content=st.binary(max_size=200) | mutated(), suffix=st.sampled_from([".json", ".yaml", ""]))
@example(content=b"\xff\xfe[]", suffix=".json")
@example(content=b"[" * 5000, suffix=".yaml")
def test_arbitrary_bytes_are_one_error(noise_app: Built, content: bytes, suffix: str) -> None:
    app, m, root = noise_app
    path = root / f"noise{suffix}"
    path.write_bytes(content)
    result = run(app, "db", "load", str(path))
    if result.exit_code == 0:
        clear(app, m)
    else:
        assert_one_error(result, path)
        assert counts(app, m) == (0, 0, 0)


# -- 5. names stay in the fixtures folder ---------------------------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, Path]]:
    """A project with files inside and outside ``fixtures/``, and links both ways."""
    root = tmp_path_factory.mktemp("fixture-names") / "project"
    fixtures = root / "fixtures"
    (fixtures / "development").mkdir(parents=True)
    for path in (fixtures / "a.json", fixtures / "development" / "b.json", root / "secret.json"):
        path.write_text("[]")
    (root / "sub").mkdir()
    (root / "sub" / "c.json").write_text("[]")
    (fixtures / "out.json").symlink_to(root / "secret.json")
    (fixtures / "dirlink").symlink_to(root)
    (fixtures / "development" / "up").symlink_to(fixtures)
    (fixtures / "development" / "in.json").symlink_to(fixtures / "a.json")
    m = build()
    app = Flask("fixture_names", root_path=str(root))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, db=m.db, env="development", root=root)
    yield app, root


segments = st.sampled_from(
    ["..", ".", "a", "b", "c", "in", "secret", "out", "sub", "dirlink", "up", "development"]
)


@EXAMPLES
@given(
    parts=st.lists(segments, min_size=1, max_size=5),
    absolute=st.booleans(),
    suffix=st.sampled_from(["", ".json"]),
)
@example(parts=["..", "..", "secret"], absolute=False, suffix="")
@example(parts=["dirlink", "secret"], absolute=False, suffix="")
@example(parts=["up", "a"], absolute=False, suffix="")
def test_a_name_never_finds_a_file_outside_the_folder(
    layout: tuple[Flask, Path], parts: list[str], absolute: bool, suffix: str
) -> None:
    app, root = layout
    name = "/".join(parts) + suffix
    if absolute:
        name = str(root / name)
    top = (root / "fixtures").resolve()
    candidates = [
        folder / f"{name}{end}"
        for folder in (root / "fixtures" / "development", root / "fixtures")
        for end in ("", ".json", ".yaml", ".yml")
    ]
    first = next((c for c in candidates if c.is_file()), None)
    try:
        found = datafixtures.find(app, name)
    except click.UsageError as e:
        message = str(e)
        if first is None:
            assert message.startswith(f"No fixture file {name!r}"), message
        else:
            assert not first.resolve().is_relative_to(top)
            assert "leads outside" in message and str(first.resolve()) in message, message
    else:
        assert first is not None and found == first
        assert found.resolve().is_relative_to(top)

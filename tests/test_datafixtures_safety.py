"""What ``flask db load`` refuses, on SQLite, PostgreSQL and MariaDB: a file cut short, a value
of the wrong type for its column, bytes that are not a fixture file, a database without the
tables, a fixture name that leads out of ``fixtures/``. Each is one error naming the file, the
record, the model and the field, and nothing is written. SQL NULL and JSON null in a JSON column
stay apart through a dump and a load, also for files the previous release wrote."""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from dbapps import run
from flask import Flask
from test_datafixtures import Models, count, fill, make, sqlite_decimal

from flask_complete.data import fixtures as datafixtures


@pytest.fixture
def built(database_url: str, tmp_path: Path) -> t.Iterator[tuple[Flask, Models]]:
    app, models = make(tmp_path, database_url)
    assert run(app, "db", "prepare").exit_code == 0
    yield app, models
    with app.app_context():
        models.db.session.remove()
        for engine in models.db.engines.values():
            engine.dispose()


def counts(app: Flask, m: Models) -> tuple[int, int, int]:
    return count(app, m, m.Owner), count(app, m, m.Item), count(app, m, m.Tag)


def refused(app: Flask, path: Path, *where: str) -> str:
    """Load ``path``: one error (no traceback), naming ``where``; the output."""
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: "), result.output
    assert result.output.count("\n") == 1, result.output
    for part in where:
        assert part in result.output, result.output
    return result.output


ITEM = {"owner_id": 1, "title": "a", "created": "2024-01-01T00:00:00"}


def records(path: Path, *extra: dict[str, t.Any]) -> Path:
    """A file with a good owner and item, then ``extra``."""
    good = [
        {"model": "Owner", "pk": 1, "fields": {"name": "ann"}},
        {"model": "Item", "pk": 1, "fields": ITEM},
    ]
    path.write_text(json.dumps([*good, *extra], indent=1))
    return path


# -- a file cut short -----------------------------------------------------------------------------


@sqlite_decimal
def test_a_dump_cut_short_is_refused(built: tuple[Flask, Models], tmp_path: Path) -> None:
    app, m = built
    fill(app, m)
    whole = tmp_path / "whole.json"
    assert run(app, "db", "dump", "-o", str(whole)).exit_code == 0
    text = whole.read_text()
    with app.app_context():
        m.db.session.execute(sa.update(m.Owner).values(favourite_id=None))
        m.db.session.execute(sa.update(m.Item).values(parent_id=None))
        for model in (m.Tag, m.Item, m.Owner):
            m.db.session.execute(sa.delete(model))
        m.db.session.commit()
    cut = tmp_path / "cut.json"
    # Without the closing bracket; after a record's trailing comma; inside a record.
    for prefix in (text.rstrip().removesuffix("]"), text[: text.index(",\n") + 2], text[:-30]):
        cut.write_text(prefix)
        refused(app, cut, str(cut), "cut short")
        assert counts(app, m) == (0, 0, 0)
    # A trailing comma before the bracket is not a whole file either.
    cut.write_text(text.replace("}\n]", "},\n]"))
    refused(app, cut, "cut short")
    assert counts(app, m) == (0, 0, 0)


def test_a_yaml_dump_cut_short_is_refused(tmp_path: Path) -> None:
    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'y.sqlite3'}")
    assert run(app, "db", "prepare").exit_code == 0
    with app.app_context():
        m.db.session.add_all([m.Owner(id=n, name=f"o{n}") for n in (1, 2, 3)])
        m.db.session.commit()
    whole = tmp_path / "whole.yaml"
    assert run(app, "db", "dump", "Owner", "-o", str(whole)).exit_code == 0
    text = whole.read_text()
    with app.app_context():
        m.db.session.execute(sa.delete(m.Owner))
        m.db.session.commit()
    cut = tmp_path / "cut.yaml"
    # Cut after the second record: still valid YAML, with a record missing.
    cut.write_text(text[: text.index("- model", text.index("- model", 1) + 1)])
    refused(app, cut, "cut short")
    assert count(app, m, m.Owner) == 0
    cut.write_text(text)
    assert run(app, "db", "load", str(cut)).exit_code == 0
    assert count(app, m, m.Owner) == 3


# -- values of the wrong type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("title", ["EVIL", "list"], "a list is not a string"),
        ("title", {"a": 1}, "a mapping is not a string"),
        ("title", 5, "5 is not a string"),
        ("flag", "maybe", "'maybe' is not a boolean"),
        ("flag", 1, "1 is not a boolean"),
        ("owner_id", "1", "'1' is not an integer"),
        ("owner_id", True, "True is not an integer"),
        ("owner_id", 2**70, "out of range"),
        ("day", 20240101, "20240101 is not a date"),
        ("ratio", "1.5", "'1.5' is not a number"),
        ("title", "\ud800", "not valid Unicode"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    built: tuple[Flask, Models], tmp_path: Path, field: str, value: t.Any, problem: str
) -> None:
    app, m = built
    path = records(
        tmp_path / "bad.json", {"model": "Item", "pk": 2, "fields": {**ITEM, field: value}}
    )
    refused(app, path, f"{path}, record 3, model Item, field {field}: ", problem)
    assert counts(app, m) == (0, 0, 0)


def test_a_key_of_the_wrong_type_is_refused(built: tuple[Flask, Models], tmp_path: Path) -> None:
    app, m = built
    path = records(tmp_path / "bad.json", {"model": "Item", "pk": "abc", "fields": ITEM})
    refused(app, path, f"{path}, record 3, model Item, field id: 'abc' is not an integer")
    assert counts(app, m) == (0, 0, 0)


# -- files that are not fixture files -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("utf8.json", b'[{"model": "Owner", "pk": 1, "fields": {"name": "\xff"}}]', "not UTF-8"),
        ("noise.json", bytes(range(256)) * 4, "not UTF-8"),
        ("noise.yaml", b"\x00\x01- [", "invalid YAML"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("deep.yaml", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("empty.json", b"", "empty"),
        ("empty.yaml", b"# nothing\n", "empty"),
        ("line.json", b'[\n{"model": "Owner", "pk": 1, "fields": {"name": "\\x"}}\n]\n', "JSON"),
    ],
)
def test_bytes_that_are_not_a_fixture_file_are_one_error(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'b.sqlite3'}")
    assert run(app, "db", "prepare").exit_code == 0
    path = tmp_path / name
    path.write_bytes(content)
    refused(app, path, str(path), problem)
    assert counts(app, m) == (0, 0, 0)


def test_a_database_without_the_tables_is_one_error(database_url: str, tmp_path: Path) -> None:
    app, m = make(tmp_path, database_url)
    try:
        with app.app_context():
            m.Owner.__table__.create(m.db.engine)
        path = records(tmp_path / "good.json")
        refused(app, path, "record 1, model Owner: no table item", "flask db upgrade")
        assert count(app, m, m.Owner) == 0
    finally:
        with app.app_context():
            m.db.session.remove()
            for engine in m.db.engines.values():
                engine.dispose()


# -- SQL NULL and JSON null -----------------------------------------------------------------------


def _null_ids(app: Flask, m: Models) -> tuple[list[int], list[int]]:
    with app.app_context():
        s = m.db.session
        sql = s.scalars(sa.select(m.Item.id).where(m.Item.data.is_(None)).order_by(m.Item.id))
        present = s.scalars(sa.select(m.Item.id).where(m.Item.data.is_not(None)).order_by("id"))
        return list(sql), list(present)


def test_sql_null_and_json_null_stay_apart(built: tuple[Flask, Models], tmp_path: Path) -> None:
    app, m = built
    with app.app_context():
        s = m.db.session
        s.add(m.Owner(id=1, name="ann"))
        s.flush()
        created = {"owner_id": 1, "created": sa.func.current_timestamp()}
        s.execute(sa.insert(m.Item.__table__).values(id=1, title="sql", data=sa.null(), **created))
        s.execute(
            sa.insert(m.Item.__table__).values(id=2, title="json", data=sa.JSON.NULL, **created)
        )
        s.execute(sa.insert(m.Item.__table__).values(id=3, title="doc", data=[None], **created))
        s.commit()
    assert _null_ids(app, m) == ([1], [2, 3])
    out = tmp_path / "items.json"
    assert run(app, "db", "dump", "Owner", "Item", "-o", str(out)).exit_code == 0
    with app.app_context():
        m.db.session.execute(sa.delete(m.Item))
        m.db.session.commit()
    result = run(app, "db", "load", str(out))
    assert result.exit_code == 0, result.output
    assert _null_ids(app, m) == ([1], [2, 3])
    # Loading again changes nothing: SQL NULL and JSON null compare as different values.
    result = run(app, "db", "load", str(out))
    assert "Item: 0 added, 0 updated, 3 unchanged" in result.output


def test_files_of_the_previous_release_load(built: tuple[Flask, Models], tmp_path: Path) -> None:
    """The previous release wrote ``null`` for both: it reads as SQL NULL, like in any column."""
    app, m = built
    path = tmp_path / "old.json"
    path.write_text(
        "[\n"
        '{"model": "Owner", "pk": 1, "fields": {"name": "ann", "favourite_id": null}},\n'
        '{"model": "Item", "pk": 1, "fields": {"owner_id": 1, "parent_id": null, "title": "t", '
        '"created": "2024-01-01T00:00:00", "day": null, "at": null, "price": null, "ratio": null, '
        '"uid": null, "color": null, "data": null, "blob": null, "flag": false, "span": null}},\n'
        '{"model": "Item", "pk": 2, "fields": {"owner_id": 1, "title": "u", '
        '"created": "2024-01-01T00:00:00", "data": {"a": null}}}\n'
        "]\n"
    )
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 0, result.output
    assert _null_ids(app, m) == ([1], [2])


# -- names that leave the fixtures folder ---------------------------------------------------------


def test_a_fixture_name_leading_out_of_the_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    (root / "fixtures" / "development").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    outside = records(root / "elsewhere" / "x.json")
    (root / "fixtures" / "inside.json").write_text(outside.read_text())
    (root / "fixtures" / "link.json").symlink_to(outside)
    (root / "fixtures" / "development" / "shared.json").symlink_to(
        root / "fixtures" / "inside.json"
    )
    app, m = make(root, f"sqlite:///{tmp_path / 'n.sqlite3'}")
    assert run(app, "db", "prepare").exit_code == 0
    monkeypatch.chdir(root / "fixtures" / "development")
    with app.app_context():
        for name in ("../../elsewhere/x", "../elsewhere/x.json", str(outside), "link"):
            with pytest.raises(click.UsageError, match="outside") as raised:
                datafixtures.load_in_session(app, name)
            assert "fixtures" in str(raised.value)
        assert counts(app, m) == (0, 0, 0)
        # Inside the folder is fine, also through a link that stays in it; a Path is a path.
        assert datafixtures.load_in_session(app, "shared").added == {"Owner": 1, "Item": 1}
        m.db.session.rollback()
        assert datafixtures.load_in_session(app, outside).added == {"Owner": 1, "Item": 1}
        m.db.session.rollback()
    monkeypatch.chdir(tmp_path)
    result = run(app, "db", "load", "link")
    assert result.exit_code == 2 and "outside" in result.output, result.output
    result = run(app, "db", "load", "../../elsewhere/x")
    assert result.exit_code == 2 and "outside" in result.output, result.output
    assert counts(app, m) == (0, 0, 0)
    # A path typed on the command line is a path: the operator named that file.
    result = run(app, "db", "load", os.path.relpath(outside))  # project/elsewhere/x.json
    assert result.exit_code == 0, result.output


def test_a_dangling_key_set_by_the_second_pass_names_its_record(
    built: tuple[Flask, Models], tmp_path: Path
) -> None:
    app, m = built
    path = tmp_path / "dangling.json"
    path.write_text(
        json.dumps(
            [
                {"model": "Owner", "pk": 1, "fields": {"name": "ann"}},
                {"model": "Owner", "pk": 2, "fields": {"name": "bob", "favourite_id": 99}},
            ],
            indent=1,
        )
    )
    refused(app, path, f"{path}, record 2, model Owner, field favourite_id: ")
    assert counts(app, m) == (0, 0, 0)

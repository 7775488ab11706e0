"""Data fixtures on SQLite, PostgreSQL and MariaDB: ``flask db dump`` / ``flask db load`` round
trips every column type exactly, load in one transaction (a bad record changes nothing and is
named), idempotent, in foreign key order (cycles and self-references too), sequences moved past
the loaded keys; fixture folders per environment; seeds and tests loading fixtures."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import typing as t
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbapps import fresh_db, run
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_complete import Complete
from flask_complete.data import fixtures as datafixtures
from flask_complete.data.format import YAML_HEAD, FixtureError, models_in

STRONG = "Xq7vN2mL9pR4sT1uW8yZ3aB6cD0eF5gH2jK7lM4nP9qR6sT3uV0wX8yZ1aB5cD2e"
# SQLite stores NUMERIC as a float: SQLAlchemy says so once per type.
sqlite_decimal = pytest.mark.filterwarnings(
    "ignore:Dialect sqlite.*Decimal:sqlalchemy.exc.SAWarning"
)


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


class Models(t.NamedTuple):
    db: SQLAlchemy
    Owner: t.Any
    Item: t.Any
    Tag: t.Any


def build() -> Models:
    db = fresh_db()

    class Owner(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "owner"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)
        # A cycle: an owner's favourite item belongs to an owner.
        favourite_id: Mapped[int | None] = mapped_column(
            ForeignKey("item.id", use_alter=True, name="fk_owner_favourite")
        )

    class Item(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"))
        parent_id: Mapped[int | None] = mapped_column(ForeignKey("item.id"))
        title: Mapped[str] = mapped_column(String(100))
        created: Mapped[dt.datetime] = mapped_column(sa.DateTime)
        day: Mapped[dt.date | None] = mapped_column(sa.Date)
        at: Mapped[dt.time | None] = mapped_column(sa.Time)
        price: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(12, 4))
        ratio: Mapped[float | None] = mapped_column(sa.Double)
        uid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
        color: Mapped[Color | None] = mapped_column(sa.Enum(Color))
        data: Mapped[t.Any] = mapped_column(sa.JSON, nullable=True)
        blob: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
        flag: Mapped[bool] = mapped_column(default=False)
        span: Mapped[dt.timedelta | None] = mapped_column(sa.Interval)

    class Tag(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "tag"
        item_id: Mapped[int] = mapped_column(ForeignKey("item.id"), primary_key=True)
        name: Mapped[str] = mapped_column(String(30), primary_key=True)

    return Models(db, Owner, Item, Tag)


def make(root: Path, url: str, env: str = "development", **config: t.Any) -> tuple[Flask, Models]:
    models = build()
    app = Flask("fixtures_app", root_path=str(root))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url, **config)
    Complete(app, db=models.db, env=env, root=root)
    return app, models


@pytest.fixture
def built(database_url: str, tmp_path: Path) -> t.Iterator[tuple[Flask, Models]]:
    app, models = make(tmp_path, database_url)
    yield app, models
    with app.app_context():
        models.db.session.remove()
        for engine in models.db.engines.values():
            engine.dispose()


def fill(app: Flask, m: Models) -> None:
    with app.app_context():
        s = m.db.session
        ann, bob = m.Owner(id=1, name="ann"), m.Owner(id=2, name="böb ✓")
        s.add_all([ann, bob])
        s.flush()
        s.add_all(
            [
                m.Item(
                    id=1,
                    owner_id=1,
                    title='quotes " and \\ and\nnewline',
                    created=dt.datetime(2024, 2, 29, 23, 59, 58),
                    day=dt.date(1999, 12, 31),
                    at=dt.time(7, 8, 9),
                    price=decimal.Decimal("12345678.1234"),
                    ratio=0.1 + 0.2,
                    uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
                    color=Color.GREEN,
                    data={"a": [1, 2.5, None, True], "ü": {"n": "x"}},
                    blob=bytes(range(256)),
                    flag=True,
                    span=dt.timedelta(days=3, seconds=5),
                ),
                m.Item(
                    id=2, owner_id=2, parent_id=1, title="child", created=dt.datetime(2000, 1, 1)
                ),
                m.Item(
                    id=3,
                    owner_id=2,
                    parent_id=2,
                    title="grandchild",
                    created=dt.datetime(2001, 1, 1),
                ),
            ]
        )
        s.flush()
        ann.favourite_id = 3
        s.add(m.Tag(item_id=1, name="x"))
        s.commit()


def dumped(app: Flask, *args: str) -> str:
    result = run(app, "db", "dump", *args)
    assert result.exit_code == 0, result.output
    return result.output


def count(app: Flask, m: Models, model: t.Any) -> int:
    with app.app_context():
        return int(m.db.session.scalar(sa.select(sa.func.count()).select_from(model)))


# -- round trip -----------------------------------------------------------------------------------


@sqlite_decimal
def test_dump_drop_prepare_load_round_trips_exactly(
    built: tuple[Flask, Models], tmp_path: Path
) -> None:
    app, m = built
    assert run(app, "db", "prepare").exit_code == 0
    fill(app, m)
    out = tmp_path / "all.json"
    result = run(app, "db", "dump", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "dumped 6 record(s)" in result.output
    text = out.read_text()
    lines = text.splitlines()
    # Parents first, one record per line, relationships by foreign key.
    assert [json.loads(line.rstrip(","))["model"] for line in lines[1:-1]] == [
        "Owner",
        "Owner",
        "Item",
        "Item",
        "Item",
        "Tag",
    ]
    item = json.loads(lines[3].rstrip(","))
    assert item["pk"] == 1
    assert item["fields"]["price"] == "12345678.1234"
    assert item["fields"]["uid"] == "12345678-1234-5678-1234-567812345678"
    assert item["fields"]["color"] == "GREEN"
    assert item["fields"]["data"] == {"a": [1, 2.5, None, True], "ü": {"n": "x"}}
    assert item["fields"]["span"] == "P3DT5.000000S"
    assert json.loads(lines[6].rstrip(","))["pk"] == [1, "x"]

    assert run(app, "db", "drop", "--yes").exit_code == 0
    assert run(app, "db", "prepare").exit_code == 0
    result = run(app, "db", "load", str(out))
    assert result.exit_code == 0, result.output
    assert "Owner: 2 added, 0 updated, 0 unchanged" in result.output
    assert "Item: 3 added" in result.output
    assert dumped(app) == text

    with app.app_context():
        one = m.db.session.get(m.Item, 1)
        assert one.blob == bytes(range(256))
        assert one.price == decimal.Decimal("12345678.1234")
        assert one.ratio == 0.1 + 0.2
        assert one.color is Color.GREEN
        assert one.span == dt.timedelta(days=3, seconds=5)
        assert one.created == dt.datetime(2024, 2, 29, 23, 59, 58)
        assert m.db.session.get(m.Owner, 1).favourite_id == 3

    # Idempotent: nothing changes the second time; a changed record is updated.
    result = run(app, "db", "load", str(out))
    assert result.exit_code == 0, result.output
    assert "Item: 0 added, 0 updated, 3 unchanged" in result.output
    out.write_text(text.replace('"title": "child"', '"title": "renamed"'))
    result = run(app, "db", "load", str(out))
    assert "Item: 0 added, 1 updated, 2 unchanged" in result.output
    assert count(app, m, m.Item) == 3


def test_bad_record_rolls_back_the_whole_load(built: tuple[Flask, Models], tmp_path: Path) -> None:
    app, m = built
    assert run(app, "db", "prepare").exit_code == 0
    path = tmp_path / "bad.json"

    def records(*extra: dict[str, t.Any]) -> None:
        good = [
            {"model": "Owner", "pk": 1, "fields": {"name": "ann"}},
            {
                "model": "Item",
                "pk": 1,
                "fields": {"owner_id": 1, "title": "a", "created": "2024-01-01T00:00:00"},
            },
        ]
        path.write_text(json.dumps([*good, *extra], indent=2))

    records(
        {"model": "Item", "pk": 2, "fields": {"owner_id": 1, "title": "b", "created": "yesterday"}}
    )
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 1
    assert (
        f"{path}, record 3, model Item, field created: 'yesterday' is not a valid DATETIME"
        in result.output
    )
    assert count(app, m, m.Owner) == 0

    # A foreign key the database refuses: named too, and nothing stays.
    records(
        {
            "model": "Item",
            "pk": 2,
            "fields": {"owner_id": 99, "title": "b", "created": "2024-01-01T00:00:00"},
        }
    )
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 1, result.output
    assert f"{path}, record 3, model Item:" in result.output
    assert "Traceback" not in result.output
    assert count(app, m, m.Owner) == 0 and count(app, m, m.Item) == 0

    records({"model": "Nope", "pk": 1, "fields": {}})
    result = run(app, "db", "load", str(path))
    assert "record 3: no model 'Nope' (models: Owner, Item, Tag)" in result.output
    records({"model": "Owner", "pk": 5, "fields": {"nmae": "x"}})
    result = run(app, "db", "load", str(path))
    assert "record 3, model Owner, field nmae: no such field (fields: id, name, favourite_id)" in (
        result.output
    )
    assert count(app, m, m.Owner) == 0


def test_dry_run_changes_nothing(built: tuple[Flask, Models], tmp_path: Path) -> None:
    app, m = built
    assert run(app, "db", "prepare").exit_code == 0
    path = tmp_path / "owners.json"
    path.write_text(json.dumps([{"model": "owner", "pk": 1, "fields": {"name": "ann"}}]))
    result = run(app, "db", "load", "--dry-run", str(path))
    assert result.exit_code == 0, result.output
    assert "would load Owner: 1 added, 0 updated, 0 unchanged" in result.output
    assert "dry run, rolled back" in result.output
    assert count(app, m, m.Owner) == 0


@sqlite_decimal
def test_dumped_files_given_children_first_load_parents_first(
    built: tuple[Flask, Models], tmp_path: Path
) -> None:
    """Files ``dump`` wrote are streamed, a pass per model, when their order is not the foreign
    keys' (the one-line files above are read whole instead)."""
    app, m = built
    assert run(app, "db", "prepare").exit_code == 0
    fill(app, m)
    before = dumped(app)
    items, owners = tmp_path / "items.json", tmp_path / "owners.json"
    assert run(app, "db", "dump", "Item", "-o", str(items)).exit_code == 0
    assert run(app, "db", "dump", "Owner", "-o", str(owners)).exit_code == 0
    assert models_in(items, "json") == ["Item"] * 3
    assert models_in(owners, "json") == ["Owner"] * 2
    assert run(app, "db", "drop", "--yes").exit_code == 0
    assert run(app, "db", "prepare").exit_code == 0
    result = run(app, "db", "load", str(items), str(owners))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "Owner: 2 added, 0 updated, 0 unchanged\nItem: 3 added, 0 updated, 0 unchanged\n"
    )
    assert dumped(app, "Owner", "Item") == dumped_models(before, "Owner", "Item")
    result = run(app, "db", "load", str(items), str(owners))
    assert "Item: 0 added, 0 updated, 3 unchanged" in result.output


def dumped_models(text: str, *names: str) -> str:
    """The records of ``names`` in a file ``dump`` wrote, as ``dump NAME...`` writes them."""
    lines = [line.rstrip(",") for line in text.splitlines()[1:-1]]
    kept = [line for line in lines if json.loads(line)["model"] in names]
    return "[\n" + ",\n".join(kept) + "\n]\n"


def test_out_of_order_records_load_parents_first(
    built: tuple[Flask, Models], tmp_path: Path
) -> None:
    app, m = built
    assert run(app, "db", "prepare").exit_code == 0
    path = tmp_path / "mixed.json"
    path.write_text(
        json.dumps(
            [
                {
                    "model": "Item",
                    "pk": 2,
                    "fields": {
                        "owner_id": 1,
                        "parent_id": 3,
                        "title": "b",
                        "created": "2024-01-01T00:00:00",
                    },
                },
                {"model": "Owner", "pk": 1, "fields": {"name": "ann", "favourite_id": 3}},
                {
                    "model": "Item",
                    "pk": 3,
                    "fields": {
                        "owner_id": 1,
                        "parent_id": None,
                        "title": "c",
                        "created": "2024-01-01T00:00:00",
                    },
                },
            ]
        )
    )
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert m.db.session.get(m.Item, 2).parent_id == 3
        assert m.db.session.get(m.Owner, 1).favourite_id == 3


def test_postgresql_insert_after_load_gets_a_fresh_key(pg_url: str, tmp_path: Path) -> None:
    app, m = make(tmp_path, pg_url)
    try:
        assert run(app, "db", "prepare").exit_code == 0
        path = tmp_path / "owners.json"
        path.write_text(
            json.dumps([{"model": "Owner", "pk": n, "fields": {"name": f"o{n}"}} for n in (1, 7)])
        )
        assert run(app, "db", "load", str(path)).exit_code == 0
        with app.app_context():
            owner = m.Owner(name="new")
            m.db.session.add(owner)
            m.db.session.commit()
            assert owner.id == 8
    finally:
        with app.app_context():
            m.db.session.remove()
            for engine in m.db.engines.values():
                engine.dispose()


@sqlite_decimal
def test_yaml_round_trip(tmp_path: Path) -> None:
    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'y.sqlite3'}")
    assert run(app, "db", "prepare").exit_code == 0
    fill(app, m)
    out = tmp_path / "all.yaml"
    assert run(app, "db", "dump", "-o", str(out)).exit_code == 0
    text = out.read_text()
    assert text.startswith(f"{YAML_HEAD}\n- model: Owner\n") and text.endswith("\n...\n")
    json_before = dumped(app)
    assert run(app, "db", "drop", "--yes").exit_code == 0
    assert run(app, "db", "prepare").exit_code == 0
    result = run(app, "db", "load", str(out))
    assert result.exit_code == 0, result.output
    assert dumped(app) == json_before


def test_unknown_model_on_dump(tmp_path: Path) -> None:
    app, _ = make(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite3'}")
    result = run(app, "db", "dump", "Nope")
    assert result.exit_code == 2
    assert "No model 'Nope'. Models: Owner, Item, Tag" in result.output


def test_load_is_refused_in_production_without_the_flag(tmp_path: Path) -> None:
    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'p.sqlite3'}", env="production")
    assert run(app, "db", "prepare").exit_code == 0
    path = tmp_path / "owners.json"
    path.write_text(json.dumps([{"model": "Owner", "pk": 1, "fields": {"name": "ann"}}]))
    result = run(app, "db", "load", str(path))
    assert result.exit_code == 2
    assert f"flask db load {path} --i-know-this-is-production" in result.output
    assert count(app, m, m.Owner) == 0
    assert run(app, "db", "load", str(path), "--i-know-this-is-production").exit_code == 0
    assert count(app, m, m.Owner) == 1


# -- fixture folders, seeds, tests ----------------------------------------------------------------


def test_fixture_folders_per_environment_and_seeds(tmp_path: Path) -> None:
    (tmp_path / "fixtures" / "development").mkdir(parents=True)
    (tmp_path / "fixtures" / "owners.json").write_text(
        json.dumps([{"model": "Owner", "pk": 1, "fields": {"name": "everywhere"}}])
    )
    (tmp_path / "fixtures" / "development" / "owners.json").write_text(
        json.dumps([{"model": "Owner", "pk": 1, "fields": {"name": "dev"}}])
    )
    (tmp_path / "fixtures" / "items.yaml").write_text(
        "- model: Item\n  pk: 1\n  fields: {owner_id: 1, title: t, created: 2024-01-01 10:00:00}\n"
    )

    def seed() -> None:
        from flask import current_app

        datafixtures.load_in_session(current_app, "owners", "items")

    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'f.sqlite3'}", SEEDS=seed)
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "seeded (owner +1, item +1)" in result.output
    with app.app_context():
        assert m.db.session.get(m.Owner, 1).name == "dev"
        assert m.db.session.get(m.Item, 1).created == dt.datetime(2024, 1, 1, 10)
    result = run(app, "db", "load", "nothing")
    assert result.exit_code == 2
    assert "No fixture file 'nothing'" in result.output
    assert str(tmp_path / "fixtures" / "development") in result.output


def test_a_failing_seed_takes_its_fixtures_with_it(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "owners.json").write_text(
        json.dumps([{"model": "Owner", "pk": 1, "fields": {"name": "x"}}])
    )

    def seed() -> None:
        from flask import current_app

        datafixtures.load_in_session(current_app, "owners")
        raise RuntimeError("half-way")

    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'f.sqlite3'}", SEEDS=seed)
    result = run(app, "db", "prepare")
    assert isinstance(result.exception, RuntimeError)
    assert count(app, m, m.Owner) == 0


def test_fixtures_in_a_test_are_rolled_back(database_url: str, tmp_path: Path) -> None:
    """The machinery the plugin's ``load_fixtures`` uses: inside the test's isolation."""
    from flask_complete import testing

    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "owners.json").write_text(
        json.dumps([{"model": "Owner", "pk": n, "fields": {"name": f"o{n}"}} for n in (1, 2)])
    )
    app, m = make(tmp_path, database_url, env="testing")
    try:
        with app.app_context():
            m.db.create_all()
        with testing.isolated(app), app.app_context():
            report = datafixtures.load_in_session(app, "owners")
            assert report.added == {"Owner": 2}
            assert count(app, m, m.Owner) == 2
            # A bad record leaves the test's transaction as it was.
            (tmp_path / "fixtures" / "bad.json").write_text(
                json.dumps([{"model": "Owner", "pk": 3, "fields": {"name": "o1"}}])
            )
            with pytest.raises(FixtureError, match="record 1, model Owner"):
                datafixtures.load_in_session(app, "bad")
            assert count(app, m, m.Owner) == 2
        assert count(app, m, m.Owner) == 0
    finally:
        with app.app_context():
            m.db.session.remove()
            for engine in m.db.engines.values():
                engine.dispose()


def test_plugin_machinery(tmp_path: Path) -> None:
    """What the plugin wires: option values, the session load (committed) and the per-test
    loader (rolled back with the test)."""
    from flask_complete import testing
    from flask_complete.testing import fixtures as part

    assert part.names_of("users, notes\nitems") == ["users", "notes", "items"]
    assert part.names_of(["a,b", "c"]) == ["a", "b", "c"]
    (tmp_path / "fixtures" / "testing").mkdir(parents=True)
    (tmp_path / "fixtures" / "testing" / "owners.json").write_text(
        json.dumps([{"model": "Owner", "pk": 1, "fields": {"name": "session"}}])
    )
    (tmp_path / "fixtures" / "more.json").write_text(
        json.dumps([{"model": "Owner", "pk": 2, "fields": {"name": "test"}}])
    )
    app, m = make(tmp_path, f"sqlite:///{tmp_path / 'test_p.sqlite3'}", env="testing")
    try:
        with app.app_context():
            m.db.create_all()
        report = part.load_for_session(app, ["owners"])
        assert report is not None and report.added == {"Owner": 1}
        with testing.isolated(app), app.app_context():
            assert part.loader(app)("more").added == {"Owner": 1}
            assert count(app, m, m.Owner) == 2
        assert count(app, m, m.Owner) == 1
    finally:
        with app.app_context():
            m.db.session.remove()
            for engine in m.db.engines.values():
                engine.dispose()

"""Seeds: idempotent, one transaction (nothing half-written on any of the three databases),
per environment from settings.toml, clear errors, and a progress bar only on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
import typing as t
import uuid
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from dbapps import Apps, apps, build_models, rows, run, seed_for

from flask_complete import seeds
from flask_complete.settings.config import ConfigError

__all__ = ["apps"]  # fixture


def snapshot(app: t.Any) -> list[tuple[t.Any, ...]]:
    with app.app_context():
        engine = app.extensions["complete"].db.engine
        with engine.connect() as conn:
            return [
                tuple(row)
                for table in ("team", "member")
                for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
            ]


def test_seeding_twice_adds_nothing(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert "seeded (team +2, member +3)" in run(app, "db", "prepare").output
    result = run(app, "db", "seed")
    assert result.exit_code == 0, result.output
    assert "seeded (no new rows)" in result.output
    assert (rows(app, "team"), rows(app, "member")) == (2, 3)


def test_seed_that_fails_half_way_changes_nothing(database_url: str, apps: Apps) -> None:
    models = build_models()
    # Migrated but never seeded, with one row of its own: the first seed below has rows to add,
    # so a seed run that committed after each seed (or flushed for good) would leave them.
    app = apps.make(database_url, models, SEEDS=[])
    assert run(app, "db", "prepare").exit_code == 0
    with app.app_context():
        models.db.session.add(models.Team(name="grey"))
        models.db.session.commit()
    before = snapshot(app)
    assert [row[1] for row in before] == ["grey"]

    def half_way() -> None:
        from flask_complete.seeds import get_or_create

        green = get_or_create(models.Team, name="green")
        get_or_create(models.Member, team_id=green.id, email="g@x.test")
        raise RuntimeError("the seed broke half-way")

    broken = apps.make(database_url, models, SEEDS=[seed_for(models), half_way])
    result = run(broken, "db", "seed")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert snapshot(app) == before
    # The same seeds without the broken one add what the failed run rolled back.
    fixed = apps.make(database_url, models, SEEDS=[seed_for(models)])
    assert "seeded (team +2, member +3)" in run(fixed, "db", "seed").output


def test_seed_may_not_commit(apps: Apps, tmp_path: Path) -> None:
    models = build_models()

    def commits() -> None:
        seed_for(models)()
        models.db.session.commit()

    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", models, SEEDS=commits)
    result = run(app, "db", "prepare")
    assert result.exit_code == 1
    assert "called db.session.commit()" in result.output
    assert "db.session.flush()" in result.output
    assert rows(app, "team") == 0


@pytest.fixture
def seed_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A seeds module with ``run`` (development rows) and ``production`` (one row)."""
    name = f"fc_seeds_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from flask import current_app

            def _add(*names):
                db = current_app.extensions["complete"].db
                team = db.metadatas[None].tables["team"]
                for name in names:
                    found = db.session.execute(sa.select(team).filter_by(name=name)).first()
                    if found is None:
                        db.session.execute(sa.insert(team).values(name=name))

            def run():
                _add("sample-1", "sample-2", "sample-3")

            def production():
                _add("essential")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_seeds_per_environment_from_settings(apps: Apps, tmp_path: Path, seed_module: str) -> None:
    (tmp_path / "settings.toml").write_text(
        f'[development]\nSEEDS = "{seed_module}"\n\n'
        f'[production]\nSEEDS = "{seed_module}:production"\n'
    )
    dev = apps.make(f"sqlite:///{tmp_path / 'dev.sqlite3'}", seed_in_code=False)
    prod = apps.make(f"sqlite:///{tmp_path / 'prod.sqlite3'}", env="production", seed_in_code=False)
    assert "seeded (team +3)" in run(dev, "db", "prepare").output
    result = run(prod, "db", "prepare")
    assert "seeded (team +1)" in result.output
    assert "(production)" in result.output
    testing = apps.make(f"sqlite:///{tmp_path / 't.sqlite3'}", env="testing", seed_in_code=False)
    assert "no SEEDS setting for testing: nothing seeded" in run(testing, "db", "prepare").output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("json:nope", "module 'json' has no 'nope'"),
        ("json", "names a module without a run() function"),
    ],
)
def test_bad_seeds_setting(apps: Apps, tmp_path: Path, setting: object, message: str) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", SEEDS=setting)
    result = run(app, "db", "seed")
    assert result.exit_code == 1
    assert message in result.output


def test_seeds_setting_of_the_wrong_type_is_refused_at_init(apps: Apps, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SEEDS = 42 is not valid \(from code\)"):
        apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", SEEDS=42)


def test_progress_bar_only_on_a_terminal() -> None:
    assert list(seeds.progress(range(500), "rows")) == list(range(500))
    code = (
        "from flask_complete.seeds import progress\n"
        "assert sum(progress(range(500), 'seeding rows')) == sum(range(500))\n"
    )
    primary, secondary = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-c", code], stdout=secondary, stderr=subprocess.PIPE, check=True
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
    assert process.returncode == 0
    assert b"seeding rows" in output
    assert b"100%" in output


def test_create_batch_helper(apps: Apps, tmp_path: Path) -> None:
    import factory

    from flask_complete.factories import ModelFactory

    models = build_models()

    class TeamFactory(ModelFactory):
        class Meta:
            model = models.Team

        name = factory.Sequence(lambda n: f"team {n}")

    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", models, SEEDS=[])
    run(app, "db", "prepare")
    with app.app_context():
        made = seeds.create_batch(TeamFactory, 60)
        models.db.session.commit()
    assert len(made) == 60
    assert rows(app, "team") == 60


def test_run_outside_cli_returns_counts(apps: Apps, tmp_path: Path) -> None:
    models = build_models()
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", models)
    run(app, "db", "create")
    with app.app_context():
        models.db.create_all()
        assert seeds.run(app) == {"team": 2, "member": 3}
        assert seeds.run(app) == {"team": 0, "member": 0}
    with pytest.raises(click.ClickException, match="does not import"):
        seeds.resolve(apps.make(f"sqlite:///{tmp_path / 'y.sqlite3'}", SEEDS="nope.nope:run"))

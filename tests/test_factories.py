"""ModelFactory: defined at import time with no app, bound to the current app's session on each
create, flushed (so a rollback or the seed transaction decides), with sub-factories and batches.
The example app's factories, seeds and committed migrations are exercised too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import factory
import pytest
import sqlalchemy as sa
from dbapps import Apps, Models, apps, fresh_db, rows, run
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_complete.factories import ModelFactory
from flask_complete.migrations import migrate as migrations

__all__ = ["apps"]  # fixture

# Models and factories at import time: no app and no app context exist yet.
db = fresh_db()


class Team(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "team"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    team = relationship(Team)


class TeamFactory(ModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(ModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    team = factory.SubFactory(TeamFactory)


def test_factory_module_imports_without_an_app() -> None:
    code = (
        "import flask, example_app.factories as f\n"
        "assert not flask.current_app\n"
        "print(f.NoteFactory._meta.model.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    assert out.stdout.strip() == "Note"


def test_create_needs_an_app_context() -> None:
    with pytest.raises(RuntimeError, match=r"inside `with app\.app_context\(\):`"):
        TeamFactory.create()
    assert TeamFactory.build().id is None


def test_create_batch_persists_related_rows(database_url: str, apps: Apps) -> None:
    app = apps.make(database_url, Models(db), SEEDS=[])
    with app.app_context():
        db.create_all()
        users = UserFactory.create_batch(100)
        assert all(u.id is not None and u.team.id is not None for u in users)
        db.session.commit()
    assert rows(app, "user_account") == 100
    assert rows(app, "team") == 100


def test_flushed_objects_go_with_a_rollback(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'f.sqlite3'}", Models(db), SEEDS=[])
    with app.app_context():
        db.create_all()
        user = UserFactory.create()
        assert user.id is not None
        assert user.team.id is not None
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_example_app_migrations_seeds_and_factories(tmp_path: Path) -> None:
    from example_app import create_app
    from example_app.factories import NotebookFactory, NoteFactory
    from example_app.models import Note
    from flask_complete import db as shared_db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'notes.sqlite3'}",
            "SEEDS": "example_app.seeds:development",
        }
    )
    try:
        result = run(app, "db", "prepare")
        assert result.exit_code == 0, result.output
        assert "seeded (user +1, notebook +3, note +10)" in result.output
        assert "not seeded" in run(app, "db", "prepare").output
        assert "seeded (no new rows)" in run(app, "db", "seed").output
        result = run(app, "db", "check")
        assert result.exit_code == 0, result.output
        assert migrations.current_revisions(app) == migrations.head_revisions(app)
        with app.app_context():
            inbox = NotebookFactory.create(name="Inbox")
            assert inbox.id == NotebookFactory.create(name="Inbox").id
            notes = NoteFactory.create_batch(5)
            assert all(n.notebook.id for n in notes)
            assert len({n.notebook_id for n in notes}) == 5
            shared_db.session.rollback()
            assert shared_db.session.scalar(sa.select(sa.func.count()).select_from(Note)) == 10
    finally:
        with app.app_context():
            shared_db.session.remove()
            shared_db.engine.dispose()

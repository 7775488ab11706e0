"""Apps with their own models and databases, for the migration, lifecycle and seed tests.

Each app gets a fresh ``SQLAlchemy`` (its own metadata), so no test leaks tables into the global
``flask_complete.db`` the example app uses.
"""

from __future__ import annotations

import secrets
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import SERVERS, database_exists, drop_database, require_server, unique_name
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flask_complete import Complete
from flask_complete.database.engines import NAMING_CONVENTION


class Models(t.NamedTuple):
    db: SQLAlchemy
    Team: t.Any = None
    Member: t.Any = None


def fresh_db() -> SQLAlchemy:
    """A ``SQLAlchemy`` with its own metadata and flask_complete's naming convention."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)

    return SQLAlchemy(model_class=Base)


def build_models(extra: bool = False, with_note: bool = True, email_type: t.Any = None) -> Models:
    """Teams and members on a fresh ``SQLAlchemy``. ``extra`` adds ``member.nickname``,
    ``with_note`` keeps ``member.note``, ``email_type`` replaces ``String(100)``."""
    db = fresh_db()

    class Team(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "team"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)
        members = relationship("Member", back_populates="team")

    class Member(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "member"
        id: Mapped[int] = mapped_column(primary_key=True)
        team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
        email: Mapped[str] = mapped_column(email_type if email_type is not None else String(100))
        if with_note:
            # An empty server default: SQLite used to report it as drift right after upgrade.
            note: Mapped[str] = mapped_column(String(20), server_default="")
        team = relationship("Team", back_populates="members")
        if extra:
            nickname: Mapped[str | None] = mapped_column(String(30))

    return Models(db, Team, Member)


def seed_for(models: Models) -> t.Callable[[], None]:
    """An idempotent seed: two teams, three members."""

    def seed() -> None:
        from flask_complete.seeds import get_or_create

        red = get_or_create(models.Team, name="red")
        blue = get_or_create(models.Team, name="blue")
        for team, email in ((red, "a@x.test"), (red, "b@x.test"), (blue, "c@x.test")):
            get_or_create(models.Member, team_id=team.id, email=email)

    return seed


class Apps:
    """Builds apps for one test and disposes their engines after it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: list[tuple[Flask, SQLAlchemy]] = []

    def make(
        self,
        url: str,
        models: Models | None = None,
        env: str = "development",
        seed_in_code: bool = True,
        **config: t.Any,
    ) -> Flask:
        """An app on ``url``; unless ``seed_in_code`` is false, ``SEEDS`` is set in code."""
        models = models or build_models()
        app = Flask("lifecycle_app")
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        app.config["SECRET_KEY"] = secrets.token_urlsafe(48)
        if seed_in_code:
            app.config["SEEDS"] = seed_for(models)
        app.config.update(config)
        Complete(app, db=models.db, env=env, root=self.root)
        self.built.append((app, models.db))
        return app

    def close(self) -> None:
        for app, sqla in self.built:
            with app.app_context():
                sqla.session.remove()
                for engine in sqla.engines.values():
                    engine.dispose()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    built = Apps(tmp_path)
    try:
        yield built
    finally:
        built.close()


class Target(t.NamedTuple):
    """A database that does not exist yet, and how to tell whether it does."""

    kind: str
    url: str
    exists: t.Callable[[], bool]


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A not-yet-created database on SQLite (a file in a missing folder), PostgreSQL and
    MariaDB; dropped after the test if it exists."""
    kind = request.param
    if kind == "sqlite":
        path = tmp_path / "data" / "app.sqlite3"
        yield Target(kind, f"sqlite:///{path}", path.exists)
        return
    require_server(kind)
    name = unique_name()
    try:
        yield Target(kind, f"{SERVERS[kind]}/{name}", lambda: database_exists(kind, name))
    finally:
        drop_database(kind, name)


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    """``flask <args>`` in-process, with its output (stdout and stderr) in ``result.output``."""
    return app.test_cli_runner().invoke(args=list(args), input=input)


def rows(app: Flask, table: str) -> int:
    """Rows in ``table`` of the app's database, read on a fresh connection."""
    with app.app_context():
        sqla = app.extensions["complete"].db
        engine = sa.create_engine(sqla.engine.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
        finally:
            engine.dispose()

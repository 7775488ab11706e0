"""Shared pieces of the auth tests: a user and token model on their own SQLAlchemy instance, an
app builder, and fixtures over SQLite and PostgreSQL, loaded by the auth test modules with
``pytest_plugins``."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from flask_complete import Complete
from flask_complete.auth import ApiTokenMixin, UserMixin
from flask_complete.database import NAMING_CONVENTION

# A key as `flask complete init` writes one (a repeated pattern is refused as guessable).
STRONG = "SN0B7ZOHBFzyaMnGS6FZfstHh_dY6ic5cO2C6TX-_CkACYFRjqxRJgxhH21WMavF"
PASSWORD = "correct horse battery"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


authdb = SQLAlchemy(model_class=Base)


class User(UserMixin, authdb.Model):  # type: ignore[name-defined,misc]
    pass


class ApiToken(ApiTokenMixin, authdb.Model):  # type: ignore[name-defined,misc]
    pass


def make_app(
    url: str, root: Path, env: str = "testing", *, user_model: t.Any = User, **config: t.Any
) -> Flask:
    """An app on ``url`` with auth wired to :class:`User`, tables created."""
    app = Flask("authapp")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url)
    app.config.setdefault("AUTH_THROTTLE_STORAGE", "database")
    app.config.update(config)
    Complete(app, db=authdb, user_model=user_model, env=env, root=root)
    with app.app_context():
        authdb.create_all()
    return app


def add_user(
    app: Flask, email: str = "ann@example.test", password: str = PASSWORD, **kw: t.Any
) -> int:
    """Create a user through the model (as ``flask users create`` does) and return its id."""
    with app.app_context():
        user = User(email=email, **kw)
        user.set_password(password)
        authdb.session.add(user)
        authdb.session.commit()
        return user.id


def dispose(app: Flask) -> None:
    with app.app_context():
        for engine in authdb.engines.values():
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def auth_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on SQLite (a file) and on PostgreSQL, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def auth_app(auth_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The auth test app in testing (cheap hash), on SQLite and PostgreSQL."""
    application = make_app(auth_db_url, tmp_path)
    yield application
    dispose(application)

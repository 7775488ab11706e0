"""A committed response is kept when the session's teardown rollback fails on a dead connection:
the failure is logged, the connection dropped, the next request served (PostgreSQL, MariaDB)."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import admin_engine
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete

STRONG = "z2X1h9Yd0Q-pK7tVbN3sLmR8wE5cJ4aF6gH0uI9oT2yU1xW3vB7nM5kP8qS4rD6e"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Entry(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "teardown_entry"
    id: Mapped[int] = mapped_column(primary_key=True)


def kill_own_connection(kind: str) -> None:
    """End this session's server connection from another one, as a failover or a proxy would."""
    if kind == "postgres":
        pid = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        statement = f"SELECT pg_terminate_backend({int(pid)})"
    else:
        pid = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        statement = f"KILL {int(pid)}"
    engine = admin_engine(kind)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_committed_response_survives_a_failed_teardown_rollback(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = request.getfixturevalue("pg_url" if kind == "postgres" else "mysql_url")
    app = Flask("teardown")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url)
    Complete(app, db=db, env="testing", root=tmp_path)
    with app.app_context():
        db.create_all()

    @app.post("/entries")
    def create() -> t.Any:
        entry = Entry()
        db.session.add(entry)
        db.session.commit()
        body = {"id": entry.id}  # reading it back opens a new transaction
        kill_own_connection(kind)
        return body, 201

    @app.get("/entries")
    def count() -> t.Any:
        return {"count": db.session.scalar(sa.select(sa.func.count()).select_from(Entry))}

    client = app.test_client()
    try:
        with caplog.at_level(logging.WARNING, logger="flask_complete.database"):
            response = client.post("/entries")
        assert response.status_code == 201 and response.json == {"id": 1}
        assert "rollback at teardown failed" in caplog.text
        assert client.get("/entries").json == {"count": 1}
    finally:
        with app.app_context():
            db.engine.dispose()

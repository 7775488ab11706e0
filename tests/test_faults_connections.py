"""The start-up warning when workers x (pool_size + max_overflow) can exceed the server's
``max_connections``: read once per process on the first connection, on PostgreSQL and MariaDB."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import track
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from flask_complete import Complete
from flask_complete.database.capacity import workers


class Base(DeclarativeBase):
    pass


def make_app(root: Path, url: str, **config: t.Any) -> tuple[Flask, SQLAlchemy]:
    sqla = SQLAlchemy(model_class=Base)
    app = Flask("capacity", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(SQLALCHEMY_DATABASE_URI=url, **config)
    Complete(app, db=sqla, env="development", root=root)
    return track(app), sqla


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_complete" and "[database.connections]" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["gunicorn", "-w", "4", "app:app"], {}, (4, "gunicorn --workers")),
        (
            ["/venv/bin/gunicorn", "--workers=3"],
            {"WEB_CONCURRENCY": "9"},
            (3, "gunicorn --workers"),
        ),
        (["gunicorn", "-w8", "app:app"], {}, (8, "gunicorn --workers")),
        (
            ["gunicorn", "app:app"],
            {"GUNICORN_CMD_ARGS": "--bind :80 -w 6"},
            (6, "GUNICORN_CMD_ARGS --workers"),
        ),
        (["gunicorn", "app:app"], {"WEB_CONCURRENCY": "5"}, (5, "WEB_CONCURRENCY")),
        (
            ["flask", "run", "-w", "7"],
            {},
            (1, "one process (no WEB_CONCURRENCY or gunicorn --workers)"),
        ),
        (
            ["uwsgi"],
            {"WEB_CONCURRENCY": "x"},
            (1, "one process (no WEB_CONCURRENCY or gunicorn --workers)"),
        ),
    ],
)
def test_workers_are_counted_from_gunicorn_then_web_concurrency(
    argv: list[str], environ: dict[str, str], expected: tuple[int, str]
) -> None:
    assert workers(argv, environ) == expected


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_pools_beyond_max_connections_warn_once_on_the_first_connection(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = request.getfixturevalue("pg_url" if kind == "postgres" else "mysql_url")
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        query = "SHOW max_connections" if kind == "postgres" else "SELECT @@max_connections"
        limit = int(conn.execute(sa.text(query)).scalar_one())
    admin.dispose()
    monkeypatch.setenv("WEB_CONCURRENCY", str(limit // 10 + 1))
    caplog.set_level(logging.WARNING, logger="flask_complete")
    app, sqla = make_app(tmp_path, url, DATABASE_POOL_SIZE=4, DATABASE_MAX_OVERFLOW=6)
    assert _warnings(caplog) == []  # nothing is read before a connection is made
    with app.app_context():
        first = sqla.engine.connect()
        second = sqla.engine.connect()  # a second connection reads nothing
        assert first.execute(sa.text("SELECT 1")).scalar() == 1
        first.close()
        second.close()
    (message,) = _warnings(caplog)
    count = limit // 10 + 1
    assert f"{count} worker(s) (WEB_CONCURRENCY) x (pool_size 4 + max_overflow 6)" in message
    assert f"= up to {count * 10} connections" in message
    assert f"the server allows {limit}" in message
    assert "Lower DATABASE_MAX_OVERFLOW or DATABASE_POOL_SIZE" in message


@pytest.mark.usefixtures("clean_env")
def test_pools_that_fit_say_nothing(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    caplog.set_level(logging.DEBUG, logger="flask_complete")
    app, sqla = make_app(tmp_path, pg_url)
    with app.app_context():
        assert sqla.session.execute(sa.text("SELECT 1")).scalar() == 1
    assert _warnings(caplog) == []
    assert not [r for r in caplog.records if "could not read" in r.getMessage()]

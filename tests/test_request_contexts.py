"""What the plugin's client relies on, tested directly: each request gets an app context of its own
even though the test has the app's context pushed. Flask 3.1 reuses a pushed app context for a
request of the same app and the next Flask will not (pallets/flask#5812); the client makes the
answer the same on both, and the test's writes and the request's stay visible to each other."""

from __future__ import annotations

import typing as t
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, g, request
from flask.globals import app_ctx
from flask_sqlalchemy import SQLAlchemy

from flask_complete import Complete, testing

STRONG = "X2mWq0c8yBv5Lr7Tn4Kp9Zs1Jd6Hf3Ga0Ue8Oi2Py5Rt7Ew4Qx1Nc9Vb6Mz3Lk0"


def _app(tmp_path: Path) -> tuple[Flask, SQLAlchemy, list[tuple[t.Any, t.Any, int]]]:
    app = Flask(__name__, root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/t.db")
    sqla = SQLAlchemy()
    Complete(app, db=sqla, env="testing", root=tmp_path)
    seen: list[tuple[t.Any, t.Any, int]] = []

    @app.post("/rows")
    def add_row() -> str:
        rows = sqla.session.scalar(sa.text("select count(*) from item"))
        seen.append((app_ctx._get_current_object(), g.get("marker"), rows))  # type: ignore[attr-defined]
        g.marker = "request"
        sqla.session.execute(sa.text("insert into item (name) values ('from the request')"))
        sqla.session.commit()
        return "ok"

    with app.app_context(), sqla.engine.begin() as conn:
        conn.execute(sa.text("create table item (id integer primary key, name text)"))
    return app, sqla, seen


def test_each_request_has_its_own_context_and_sees_the_tests_writes(tmp_path: Path) -> None:
    app, sqla, seen = _app(tmp_path)
    testing.fresh_contexts(app)
    with app.app_context(), testing.isolated(app):  # what the app and db fixtures do
        g.marker = "test"
        pushed = app_ctx._get_current_object()  # type: ignore[attr-defined]
        sqla.session.execute(sa.text("insert into item (name) values ('from the test')"))
        for client in (testing.test_client(app), app.test_client()):
            assert client.post("/rows").status_code == 200
        # The test sees what the requests wrote; its own g is untouched.
        assert sqla.session.scalar(sa.text("select count(*) from item")) == 3
        assert g.marker == "test"
    contexts = [context for context, _, _ in seen]
    assert all(context is not pushed for context in contexts)
    assert contexts[0] is not contexts[1]
    # No request saw the test's g or another request's; each saw every row written before it.
    assert [(marker, rows) for _, marker, rows in seen] == [(None, 1), (None, 2)]
    # Rolled back with the test.
    with app.app_context():
        assert sqla.session.scalar(sa.text("select count(*) from item")) == 0


def test_with_client_keeps_the_request_context_after_the_request(tmp_path: Path) -> None:
    app, _, seen = _app(tmp_path)
    with app.app_context(), testing.test_client(app) as client:
        assert client.post("/rows?kept=1").status_code == 200
        assert request.args["kept"] == "1"
        assert g.marker == "request"
    assert len(seen) == 1

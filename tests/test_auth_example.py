"""The example app gains login: migrations create the tables; a user made with ``flask users
create`` logs in, reads /auth/me and logs out; a token from ``flask users token`` works until
revoked or expired (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from authapps import STRONG
from flask import Flask

from example_app import create_app
from example_app.models import ApiToken
from flask_complete import db
from flask_complete.auth.models import utcnow

pytest_plugins = ["authapps"]
PASSWORD = "a long enough password"


@pytest.fixture
def example(auth_db_url: str) -> Iterator[Flask]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": auth_db_url, "SECRET_KEY": STRONG})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_example_app_login_and_tokens(example: Flask) -> None:
    runner = example.test_cli_runner()
    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    check = runner.invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output  # the migration matches the models

    created = runner.invoke(args=["users", "create", "ann@example.test", "-p", PASSWORD])
    assert created.exit_code == 0, created.output
    client = example.test_client()
    login = client.post("/auth/login", json={"email": "ann@example.test", "password": PASSWORD})
    assert login.status_code == 200, login.json
    me = client.get("/auth/me")
    assert me.status_code == 200 and me.json["user"]["email"] == "ann@example.test"
    out = client.post("/auth/logout", headers={"X-CSRF-Token": login.json["csrf_token"]})
    assert out.status_code == 204
    assert client.get("/auth/me").status_code == 401

    issued = runner.invoke(args=["users", "token", "ann@example.test", "--name", "cli"])
    assert issued.exit_code == 0, issued.output
    bearer = {"Authorization": f"Bearer {issued.stdout.split()[0]}"}
    api = example.test_client()
    assert api.get("/auth/me", headers=bearer).json["authenticated_by"] == "token"
    token_id = api.get("/auth/tokens", headers=bearer).json["tokens"][0]["id"]
    assert api.delete(f"/auth/tokens/{token_id}", headers=bearer).status_code == 204
    assert api.get("/auth/me", headers=bearer).status_code == 401

    issued = runner.invoke(
        args=["users", "token", "ann@example.test", "-n", "short", "--expires-in", "1"]
    )
    bearer = {"Authorization": f"Bearer {issued.stdout.split()[0]}"}
    assert api.get("/auth/me", headers=bearer).status_code == 200
    with example.app_context():
        db.session.execute(
            sa.update(ApiToken)
            .where(ApiToken.name == "short")
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
    assert api.get("/auth/me", headers=bearer).status_code == 401

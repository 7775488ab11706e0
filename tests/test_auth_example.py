"""The example app gains login: migrations create the tables; a user made with ``flask users
create`` logs in, reads /auth/me and logs out; a token from ``flask users token`` works until
revoked or expired (SQLite and PostgreSQL). Its API answers 4xx JSON to hostile input and a JSON
503 when the database is lost (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from authapps import STRONG, Proxy
from flask import Flask

from example_app import create_app
from example_app.models import ApiToken, Note, Notebook
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


# --- the example's API holds under hostile input ---------------------------------------------


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def hostile(request: pytest.FixtureRequest, tmp_path: t.Any) -> Iterator[tuple[Flask, t.Any]]:
    """The example app behind a proxy that can cut its database off, migrated, with a user
    logged in; yields the app, a logged-in client (CSRF header set) and the proxy."""
    if request.param == "sqlite":
        url, proxy = f"sqlite:///{tmp_path / 'example.sqlite3'}", None
    else:
        real = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
        parsed = sa.make_url(real)
        proxy = Proxy((parsed.host or "127.0.0.1", int(parsed.port or 0)))
        url = proxy.url(real)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": STRONG})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert (
        runner.invoke(args=["users", "create", "ann@example.test", "-p", PASSWORD]).exit_code == 0
    )
    client = app.test_client()
    login = client.post("/auth/login", json={"email": "ann@example.test", "password": PASSWORD})
    client.environ_base["HTTP_X_CSRF_TOKEN"] = login.json["csrf_token"]
    yield app, (client, proxy)
    with app.app_context():
        db.engine.dispose()


def test_anonymous_users_can_neither_read_nor_write(hostile: tuple[Flask, t.Any]) -> None:
    app, _ = hostile
    anonymous = app.test_client()
    for method, path in (
        ("GET", "/api/notebooks"),
        ("POST", "/api/notebooks"),
        ("GET", "/api/notebooks/1/notes"),
        ("POST", "/api/notebooks/1/notes"),
        ("DELETE", "/api/notebooks/1"),
        ("GET", "/api/notes/1"),
        ("PATCH", "/api/notes/1"),
        ("DELETE", "/api/notes/1"),
    ):
        response = anonymous.open(path, method=method, json={"name": "x", "title": "y"})
        assert response.status_code == 401 and response.is_json, (path, response.data)


#: (path, body, what the error says): each answered 400, and nothing written.
BAD_TEXT = [
    ("/api/notebooks", {"name": "a\x00b"}, "control characters"),
    ("/api/notebooks", {"name": "\ud800"}, "not valid text"),
    ("/api/notebooks", {"name": "n" * 101}, "at most 100 characters"),
    ("/api/notebooks/{id}/notes", {"title": "t" * 201}, "at most 200 characters"),
    ("/api/notebooks/{id}/notes", {"title": "ok", "body": "a\x00b"}, "control characters"),
    ("/api/notebooks/{id}/notes", {"title": "\udfff"}, "not valid text"),
]


def test_bad_text_is_a_clear_400_and_writes_nothing(hostile: tuple[Flask, t.Any]) -> None:
    app, (client, _) = hostile
    notebook = client.post("/api/notebooks", json={"name": "Inbox"})
    assert notebook.status_code == 201, notebook.data
    for path, body, message in BAD_TEXT:
        response = client.post(path.format(id=notebook.json["id"]), json=body)
        assert response.status_code == 400, (path, body, response.data)
        error = response.json["error"]
        assert message in error and "codec" not in error, (body, error)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Note)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Notebook)) == 1


def test_deep_json_and_ids_beyond_the_column_are_refused_as_json(
    hostile: tuple[Flask, t.Any],
) -> None:
    _, (client, _) = hostile
    for depth in (100, 100_000):
        body = '{"name": ' + "[" * depth + "]" * depth + "}"
        response = client.post("/api/notebooks", data=body, content_type="application/json")
        assert response.status_code in (400, 413) and response.is_json, (depth, response.data)
    for big in (2**31, 2**63, 10**30):
        for method, path in (
            ("GET", f"/api/notebooks/{big}/notes"),
            ("DELETE", f"/api/notes/{big}"),
        ):
            response = client.open(path, method=method)
            assert response.status_code == 404 and response.is_json, (path, response.data)


def test_a_csrf_refusal_is_json(hostile: tuple[Flask, t.Any]) -> None:
    _, (client, _) = hostile
    client.environ_base.pop("HTTP_X_CSRF_TOKEN")
    response = client.post("/api/notebooks", json={"name": "x"})
    assert response.status_code == 403 and "CSRF" in response.json["error"]


def test_a_lost_database_is_a_json_503(hostile: tuple[Flask, t.Any]) -> None:
    _, (client, proxy) = hostile
    if proxy is None:
        pytest.skip("SQLite is a file: it cannot be cut off")
    proxy.cut()
    for method, path in (("GET", "/api/notebooks"), ("POST", "/api/notebooks")):
        response = client.open(path, method=method, json={"name": "x"})
        assert response.status_code == 503 and response.is_json, (path, response.data)
        assert response.headers["Retry-After"].isdigit()
    assert client.get("/").status_code == 503

"""API tokens over the endpoints and the request loader, and ``flask users`` through the CLI."""

from __future__ import annotations

import typing as t
from datetime import timedelta

import sqlalchemy as sa
from authapps import PASSWORD, ApiToken, User, add_user, authdb
from flask import Flask

from flask_complete.auth.models import utcnow

pytest_plugins = ["authapps"]


def session_client(
    app: Flask, email: str = "ann@example.test", password: str = PASSWORD
) -> tuple[t.Any, str]:
    client = app.test_client()
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.json
    return client, response.json["csrf_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_users_cli_create_login_me_logout_token(auth_app: Flask) -> None:
    runner = auth_app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "Ann@Example.test", "-p", PASSWORD])
    assert result.exit_code == 0, result.output
    assert "created user ann@example.test" in result.output

    client, csrf_token = session_client(auth_app)
    assert client.get("/auth/me").json["user"]["email"] == "ann@example.test"
    assert client.post("/auth/logout", headers={"X-CSRF-Token": csrf_token}).status_code == 204
    assert client.get("/auth/me").status_code == 401

    result = runner.invoke(args=["users", "token", "ann@example.test", "--name", "ci"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.splitlines()[0]
    assert secret.startswith("fct_") and "not shown again" in result.output
    me = auth_app.test_client().get("/auth/me", headers=bearer(secret))
    assert me.status_code == 200
    assert me.json["authenticated_by"] == "token" and "csrf_token" not in me.json


def test_users_cli_errors_are_clear(auth_app: Flask) -> None:
    runner = auth_app.test_cli_runner()
    assert (
        runner.invoke(args=["users", "create", "ann@example.test", "-p", PASSWORD]).exit_code == 0
    )

    duplicate = runner.invoke(args=["users", "create", "ANN@example.test", "-p", PASSWORD])
    assert duplicate.exit_code == 1
    assert "A user with email 'ann@example.test' exists" in duplicate.output
    assert "flask users set-password" in duplicate.output

    weak = runner.invoke(args=["users", "create", "bob@example.test", "-p", "short"])
    assert weak.exit_code == 2
    assert "at least 10" in weak.output and "AUTH_PASSWORD_MIN_LENGTH" in weak.output

    not_email = runner.invoke(args=["users", "create", "bob", "-p", PASSWORD])
    assert not_email.exit_code == 2 and "not an email address" in not_email.output

    for command in (["set-password", "-p", PASSWORD], ["deactivate"], ["token", "-n", "x"]):
        unknown = runner.invoke(args=["users", command[0], "nobody@example.test", *command[1:]])
        assert unknown.exit_code == 1, command
        assert "No user with email 'nobody@example.test'" in unknown.output
        assert "flask users list" in unknown.output

    too_long = runner.invoke(
        args=["users", "token", "ann@example.test", "-n", "x", "--expires-in", "9999"]
    )
    assert too_long.exit_code == 2 and "AUTH_TOKEN_MAX_DAYS" in too_long.output
    assert "token lifetime must be a whole number of days" in too_long.output


def test_users_cli_prompts_twice_lists_resets_and_deactivates(auth_app: Flask) -> None:
    runner = auth_app.test_cli_runner()
    prompted = runner.invoke(
        args=["users", "create", "ann@example.test", "--admin"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert "do not match" in prompted.output and "created admin user" in prompted.output

    listed = runner.invoke(args=["users", "list"])
    assert "ann@example.test  [active, admin]" in listed.output

    client, _ = session_client(auth_app)
    changed = runner.invoke(
        args=["users", "set-password", "ann@example.test", "-p", "another long secret"]
    )
    assert changed.exit_code == 0
    assert client.get("/auth/me").status_code == 401  # the old session ended

    client, _ = session_client(auth_app, password="another long secret")
    token = runner.invoke(args=["users", "token", "ann@example.test", "-n", "x"]).stdout.split()[0]
    assert runner.invoke(args=["users", "deactivate", "ann@example.test"]).exit_code == 0
    assert client.get("/auth/me").status_code == 401
    assert auth_app.test_client().get("/auth/me", headers=bearer(token)).status_code == 401
    assert "[inactive, admin]" in runner.invoke(args=["users", "list"]).output
    refused = runner.invoke(args=["users", "token", "ann@example.test", "-n", "y"])
    assert refused.exit_code == 1 and "deactivated" in refused.output


def test_token_endpoints_create_list_use_revoke(auth_app: Flask) -> None:
    add_user(auth_app)
    add_user(auth_app, "bob@example.test")
    client, csrf_token = session_client(auth_app)
    headers = {"X-CSRF-Token": csrf_token}

    created = client.post(
        "/auth/tokens", json={"name": "laptop", "expires_in_days": 7}, headers=headers
    )
    assert created.status_code == 201, created.json
    secret = created.json["token"]
    expires = created.json["expires_at"]
    assert created.json["name"] == "laptop" and expires is not None

    listed = client.get("/auth/tokens").json["tokens"]
    assert [t["name"] for t in listed] == ["laptop"]
    assert "token" not in listed[0] and secret not in str(listed)
    with auth_app.app_context():
        stored = authdb.session.scalars(sa.select(ApiToken)).one()
        assert secret not in (stored.digest, stored.hint) and len(stored.digest) == 64

    api = auth_app.test_client()
    assert api.get("/auth/me", headers=bearer(secret)).json["user"]["email"] == "ann@example.test"
    # A bearer request needs no CSRF token; but a token cannot mint more tokens.
    minted = api.post("/auth/tokens", json={"name": "more"}, headers=bearer(secret))
    assert minted.status_code == 403 and "logged-in session" in minted.json["error"]
    with auth_app.app_context():
        assert authdb.session.scalars(sa.select(ApiToken)).one().last_used_at is not None

    bob, bob_csrf = session_client(auth_app, "bob@example.test")
    token_id = created.json["id"]
    foreign = bob.delete(f"/auth/tokens/{token_id}", headers={"X-CSRF-Token": bob_csrf})
    assert foreign.status_code == 404

    assert client.delete(f"/auth/tokens/{token_id}", headers=headers).status_code == 204
    revoked = api.get("/auth/me", headers=bearer(secret))
    assert revoked.status_code == 401 and "error" in revoked.json
    assert client.get("/auth/tokens").json["tokens"][0]["revoked"] is True

    bad = client.post("/auth/tokens", json={"name": "", "expires_in_days": 7}, headers=headers)
    assert bad.status_code == 400 and "name is required" in bad.json["error"]
    bad = client.post("/auth/tokens", json={"name": "x", "expires_in_days": 0}, headers=headers)
    assert bad.status_code == 400 and "AUTH_TOKEN_MAX_DAYS" in bad.json["error"]


def test_expired_and_malformed_tokens_get_401_and_never_fall_back_to_the_session(
    auth_app: Flask,
) -> None:
    add_user(auth_app)
    runner = auth_app.test_cli_runner()
    secret = runner.invoke(args=["users", "token", "ann@example.test", "-n", "old"]).stdout.split()[
        0
    ]
    with auth_app.app_context():
        token = authdb.session.scalars(sa.select(ApiToken)).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
        authdb.session.commit()
    api = auth_app.test_client()
    assert api.get("/auth/me", headers=bearer(secret)).status_code == 401

    client, _ = session_client(auth_app)
    for header in ("Bearer nonsense", "Bearer ", "bearer " + "x" * 500, "Bearer " + secret):
        response = client.get("/auth/me", headers={"Authorization": header})
        assert response.status_code == 401, header
    assert client.get("/auth/me").status_code == 200


def test_a_token_request_costs_one_query(auth_app: Flask) -> None:
    add_user(auth_app)
    runner = auth_app.test_cli_runner()
    secret = runner.invoke(args=["users", "token", "ann@example.test", "-n", "q"]).stdout.split()[0]
    api = auth_app.test_client()
    api.get("/auth/me", headers=bearer(secret))  # the first use records last_used_at
    with auth_app.app_context():
        engine = authdb.engine
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    assert api.get("/auth/me", headers=bearer(secret)).status_code == 200
    assert len(seen) == 1 and "JOIN" in seen[0], seen
    with auth_app.app_context():
        user = authdb.session.scalars(sa.select(User)).one()
        assert user.password_hash is not None  # never touched by a token request

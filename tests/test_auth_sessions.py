"""Server-side sessions: logout ends that login's session and remember cookies at once, on every
worker, while other devices stay logged in; ``?everywhere=1``; login starts from an empty session;
``flask users sessions``. In the database (SQLite, PostgreSQL, MariaDB) and in Redis, and a
captured-cookie replay over real HTTP against two gunicorn workers."""

from __future__ import annotations

import http.client
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import (
    PASSWORD,
    REDIS,
    User,
    add_user,
    authdb,
    both_workers,
    call,
    dispose,
    gunicorn,
    make_app,
)
from flask import Flask
from flask_login.utils import decode_cookie

from flask_complete.auth import sessions

pytest_plugins = ["authapps"]
EMAIL = "ann@example.test"


class Device(t.NamedTuple):
    """A logged-in browser: its client, the cookies it holds, its CSRF token."""

    client: t.Any
    session: str
    remember: str
    csrf: str


def log_in(app: Flask, **kw: t.Any) -> Device:
    client = app.test_client()
    response = client.post(
        "/auth/login", json={"email": EMAIL, "password": PASSWORD, "remember": True, **kw}
    )
    assert response.status_code == 200, response.json
    return Device(
        client,
        client.get_cookie("session").value,
        client.get_cookie("remember_token").value,
        response.json["csrf_token"],
    )


def replay(app: Flask, session: str | None = None, remember: str | None = None) -> t.Any:
    """A fresh client holding only the captured cookies."""
    client = app.test_client()
    if session is not None:
        client.set_cookie("session", session)
    if remember is not None:
        client.set_cookie("remember_token", remember)
    return client


def assert_ended(app: Flask, device: Device) -> None:
    """Neither cookie of ``device`` works any more, alone or together, for reading or writing."""
    for cookies in (
        {"session": device.session},
        {"remember": device.remember},
        {"session": device.session, "remember": device.remember},
    ):
        client = replay(app, **cookies)
        assert client.get("/auth/me").status_code == 401, cookies
        posted = client.post(
            "/auth/tokens", json={"name": "stolen"}, headers={"X-CSRF-Token": device.csrf}
        )
        # With the session cookie the CSRF token matches: only the ended login refuses it.
        refused = (401,) if "session" in cookies else (401, 403)
        assert posted.status_code in refused, (cookies, posted.status_code)


@pytest.fixture(params=["sqlite", "postgres", "mysql", "redis"])
def session_app(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[Flask]:
    """The auth app with sessions in the database (SQLite, PostgreSQL, MariaDB) or in Redis."""
    config: dict[str, t.Any] = {}
    url = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        config = {"AUTH_SESSION_STORAGE": REDIS, "AUTH_SESSION_PREFIX": prefix}
    elif request.param != "sqlite":
        url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
    app = make_app(url, tmp_path, **config)
    add_user(app)
    yield app
    dispose(app)


def test_logout_ends_that_login_and_no_other(session_app: Flask) -> None:
    laptop, phone = log_in(session_app), log_in(session_app)
    assert replay(session_app, laptop.session).get("/auth/me").status_code == 200
    assert replay(session_app, remember=laptop.remember).get("/auth/me").status_code == 200

    out = laptop.client.post("/auth/logout", headers={"X-CSRF-Token": laptop.csrf})
    assert out.status_code == 204
    assert_ended(session_app, laptop)
    assert phone.client.get("/auth/me").status_code == 200
    assert replay(session_app, remember=phone.remember).get("/auth/me").status_code == 200


def test_logout_everywhere(session_app: Flask) -> None:
    laptop, phone = log_in(session_app), log_in(session_app)
    out = laptop.client.post("/auth/logout?everywhere=1", headers={"X-CSRF-Token": laptop.csrf})
    assert out.status_code == 204
    assert_ended(session_app, laptop)
    assert_ended(session_app, phone)
    assert log_in(session_app).client.get("/auth/me").status_code == 200


def test_logging_in_again_ends_the_browser_s_previous_login(session_app: Flask) -> None:
    first = log_in(session_app)
    again = first.client.post(
        "/auth/login", json={"email": EMAIL, "password": PASSWORD, "remember": True}
    )
    assert again.status_code == 200
    assert first.client.get("/auth/me").status_code == 200
    assert_ended(session_app, first)


def test_password_change_and_deactivation_still_end_every_session(session_app: Flask) -> None:
    laptop = log_in(session_app)
    runner = session_app.test_cli_runner()
    changed = runner.invoke(args=["users", "set-password", EMAIL, "-p", "a new long password"])
    assert changed.exit_code == 0, changed.output
    assert_ended(session_app, laptop)


def test_login_starts_from_an_empty_session_but_keeps_what_is_carried_over(
    tmp_path: Path,
) -> None:
    app = make_app("sqlite://", tmp_path, AUTH_SESSION_CARRY_OVER=["cart"])
    add_user(app)
    client = app.test_client()
    with client.session_transaction() as session:
        session["cart"] = [1, 2]
        session["planted"] = "by someone else"
        session["_user_id"] = "999:forged"
    assert (
        client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).status_code == 200
    )
    with client.session_transaction() as session:
        assert session["cart"] == [1, 2]
        assert "planted" not in session
        assert session["_user_id"] != "999:forged"


def test_records_hold_no_cookie_secret(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path)
    add_user(app)
    device = log_in(app)
    with app.test_request_context():
        payload = decode_cookie(device.remember)
    login_id = payload.rpartition("|")[2]
    with app.app_context():
        rows = authdb.session.execute(sa.select(authdb.metadata.tables["auth_session"])).all()
    assert len(rows) == 1
    assert rows[0].id == sessions.digest(login_id)
    assert login_id not in " ".join(str(value) for value in rows[0])
    dispose(app)


def test_users_sessions_lists_and_revokes(session_app: Flask) -> None:
    laptop, phone = log_in(session_app), log_in(session_app)
    runner = session_app.test_cli_runner()
    listed = runner.invoke(args=["users", "sessions", EMAIL])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2 and all("remembered" in line for line in lines), lines
    handle = lines[0].split()[0]

    revoked = runner.invoke(args=["users", "sessions", EMAIL, "--revoke", handle])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked session {handle}" in revoked.output
    alive = [d.client.get("/auth/me").status_code for d in (laptop, phone)]
    assert sorted(alive) == [200, 401]

    unknown = runner.invoke(args=["users", "sessions", EMAIL, "--revoke", "nonsense"])
    assert unknown.exit_code == 1 and "No session" in unknown.output

    everything = runner.invoke(args=["users", "sessions", EMAIL, "--revoke-all"])
    assert everything.exit_code == 0 and "revoked 1 session" in everything.output
    assert [d.client.get("/auth/me").status_code for d in (laptop, phone)] == [401, 401]
    none = runner.invoke(args=["users", "sessions", EMAIL])
    assert "no sessions" in none.output


def test_deleting_the_user_removes_its_sessions(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'd.sqlite3'}", tmp_path)
    add_user(app)
    device = log_in(app)
    deleted = app.test_cli_runner().invoke(args=["users", "delete", EMAIL, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    with app.app_context():
        table = authdb.metadata.tables["auth_session"]
        assert authdb.session.execute(sa.select(table)).all() == []
    assert_ended(app, device)
    dispose(app)


def test_a_session_without_its_record_is_anonymous(tmp_path: Path) -> None:
    """A cookie from before server-side sessions (or forged with the key) logs nobody in."""
    app = make_app("sqlite://", tmp_path)
    user_id = add_user(app)
    with app.app_context():
        ident = authdb.session.get(User, user_id).get_id()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = ident
    assert client.get("/auth/me").status_code == 401


def test_switched_off_a_cookie_is_the_whole_session(tmp_path: Path) -> None:
    app = make_app("sqlite://", tmp_path, AUTH_SESSIONS=False)
    add_user(app)
    device = log_in(app)
    out = device.client.post("/auth/logout", headers={"X-CSRF-Token": device.csrf})
    assert out.status_code == 204
    # What AUTH_SESSIONS = false gives up: a captured cookie outlives the logout.
    assert replay(app, device.session).get("/auth/me").status_code == 200


def test_unreachable_session_storage_is_a_503_not_a_login(tmp_path: Path) -> None:
    app = make_app(
        "sqlite://", tmp_path, AUTH_SESSION_STORAGE="redis://127.0.0.1:1/0", AUTH_THROTTLE=False
    )
    add_user(app)
    client = app.test_client()
    response = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 503, response.data
    assert response.headers["Retry-After"].isdigit()
    assert "try again" in response.json["error"]
    assert client.get("/auth/me").status_code in (401, 503)


# --- a captured cookie replayed over real HTTP, on both workers --------------------------------


@pytest.mark.parametrize("storage", ["postgres", "mysql", "redis"])
def test_captured_cookies_replayed_over_http_after_logout(
    tmp_path: Path, storage: str, request: pytest.FixtureRequest
) -> None:
    config: dict[str, t.Any] = {}
    if storage == "redis":
        url = request.getfixturevalue("pg_url")
        prefix = request.getfixturevalue("redis_prefix")
        config = {"AUTH_SESSION_STORAGE": REDIS, "AUTH_SESSION_PREFIX": prefix}
    else:
        url = request.getfixturevalue("pg_url" if storage == "postgres" else "mysql_url")
    setup = make_app(url, tmp_path, **config)
    add_user(setup)
    dispose(setup)
    connections: list[http.client.HTTPConnection] = []
    with gunicorn(tmp_path, url, **config) as port:
        try:
            connections = both_workers(port)
            credentials = {"email": EMAIL, "password": PASSWORD, "remember": True}
            logins = [call(connections[i], "POST", "/auth/login", credentials) for i in (0, 1)]
            assert [a.status for a in logins] == [200, 200]
            stolen, other = (a.cookies() for a in logins)
            csrf = logins[0].json()["csrf_token"]
            for conn in connections:  # both cookies work on both workers
                session = {"session": stolen["session"]}
                assert call(conn, "GET", "/auth/me", cookies=session).status == 200
                remember = {"remember_token": stolen["remember_token"]}
                assert call(conn, "GET", "/auth/me", cookies=remember).status == 200

            out = call(
                connections[0],
                "POST",
                "/auth/logout",
                cookies=stolen,
                headers={"X-CSRF-Token": csrf},
            )
            assert out.status == 204
            for conn in connections:
                for cookies in (
                    {"session": stolen["session"]},
                    {"remember_token": stolen["remember_token"]},
                    {"session": stolen["session"], "remember_token": stolen["remember_token"]},
                ):
                    assert call(conn, "GET", "/auth/me", cookies=cookies).status == 401
                    posted = call(
                        conn,
                        "POST",
                        "/auth/tokens",
                        {"name": "stolen"},
                        cookies=cookies,
                        headers={"X-CSRF-Token": csrf},
                    )
                    refused = (401,) if "session" in cookies else (401, 403)
                    assert posted.status in refused, (posted.status, posted.body)
                assert call(conn, "GET", "/auth/me", cookies=other).status == 200
        finally:
            for conn in connections:
                conn.close()

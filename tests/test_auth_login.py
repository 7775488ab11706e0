"""Login, logout and /auth/me; passwords and sessions; production cookies; wiring and settings."""

from __future__ import annotations

import time
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, User, add_user, authdb, dispose, make_app
from flask import Flask
from flask_login import current_user

from flask_complete import Complete, ConfigError

pytest_plugins = ["authapps"]


def login(
    client: t.Any, email: str = "ann@example.test", password: str = PASSWORD, **kw: t.Any
) -> t.Any:
    return client.post("/auth/login", json={"email": email, "password": password, **kw})


def test_login_me_logout(auth_app: Flask) -> None:
    add_user(auth_app)
    client = auth_app.test_client()
    response = login(client)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["user"]["email"] == "ann@example.test"
    token = body["csrf_token"]
    assert client.get_cookie("XSRF-TOKEN").value == token

    me = client.get("/auth/me")
    assert me.status_code == 200
    assert me.json["user"]["email"] == "ann@example.test"
    assert me.json["authenticated_by"] == "session"
    assert me.json["csrf_token"] == token

    assert client.post("/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    after = client.get("/auth/me")
    assert after.status_code == 401
    assert "Log in first" in after.json["error"]


def test_login_with_a_form_and_a_normalised_email(auth_app: Flask) -> None:
    add_user(auth_app, " ANN@example.test")  # stored normalised, whoever sets it
    client = auth_app.test_client()
    response = client.post(
        "/auth/login", data={"email": "  Ann@Example.TEST ", "password": PASSWORD}
    )
    assert response.status_code == 200
    with auth_app.app_context():
        user = authdb.session.scalars(sa.select(User)).one()
        assert user.last_login_at is not None


def test_wrong_email_and_wrong_password_answer_alike(auth_app: Flask) -> None:
    add_user(auth_app)
    add_user(auth_app, "off@example.test", active=False)
    client = auth_app.test_client()
    answers = [
        login(client, "nobody@example.test"),
        login(client, password="wrong password!"),
        login(client, "off@example.test"),  # right password, deactivated
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.get_data() for r in answers}) == 1
    assert answers[0].json == {"error": "Invalid email or password."}
    for r in answers:
        assert r.headers.get("Set-Cookie") is None
    assert client.get("/auth/me").status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": "{not json", "content_type": "application/json"}, "JSON object"),
        ({"json": ["ann@example.test", PASSWORD]}, "JSON object"),
        ({"json": {"email": "ann@example.test"}}, "email and password"),
        ({"json": {"email": 5, "password": PASSWORD}}, "email and password"),
    ],
)
def test_malformed_login_is_a_400(tmp_path: Path, kwargs: dict[str, t.Any], message: str) -> None:
    response = make_app("sqlite://", tmp_path).test_client().post("/auth/login", **kwargs)
    assert response.status_code == 400
    assert message in response.json["error"]


def test_password_change_ends_every_session_and_remember_cookie(auth_app: Flask) -> None:
    user_id = add_user(auth_app)
    client = auth_app.test_client()
    assert login(client, remember=True).status_code == 200
    remember = client.get_cookie("remember_token")
    assert remember is not None

    # The remember cookie alone restores the login (a new browser session).
    browser = auth_app.test_client()
    browser.set_cookie("remember_token", remember.value)
    assert browser.get("/auth/me").status_code == 200

    with auth_app.app_context():
        user = authdb.session.get(User, user_id)
        old = user.session_token
        user.set_password("a brand new password")
        authdb.session.commit()
        assert user.session_token != old

    assert client.get("/auth/me").status_code == 401
    stale = auth_app.test_client()
    stale.set_cookie("remember_token", remember.value)
    assert stale.get("/auth/me").status_code == 401
    assert login(auth_app.test_client(), password="a brand new password").status_code == 200


def test_outdated_hash_is_upgraded_at_login_without_ending_sessions(auth_app: Flask) -> None:
    user_id = add_user(auth_app)
    with auth_app.app_context():
        user = authdb.session.get(User, user_id)
        from werkzeug.security import generate_password_hash

        user.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
        authdb.session.commit()
        token = user.session_token
    assert login(auth_app.test_client()).status_code == 200
    with auth_app.app_context():
        user = authdb.session.get(User, user_id)
        assert user.password_hash.startswith("scrypt:1024:8:1$")
        assert user.session_token == token
        assert user.check_password(PASSWORD)


def test_real_kdf_and_no_timing_difference_for_unknown_emails(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'dev.sqlite3'}", tmp_path, env="development")
    try:
        assert app.config["AUTH_PASSWORD_METHOD"] == "scrypt"
        add_user(app)
        with app.app_context():
            assert (
                authdb.session.scalars(sa.select(User))
                .one()
                .password_hash.startswith("scrypt:32768:8:1$")
            )
        client = app.test_client()
        login(client, "nobody@example.test")  # the first unknown email builds the dummy hash

        def timed(email: str, password: str) -> float:
            start = time.perf_counter()
            assert login(client, email, password).status_code == 401
            return time.perf_counter() - start

        unknown = min(timed("nobody@example.test", "x" * 12) for _ in range(2))
        wrong = min(timed("ann@example.test", "x" * 12) for _ in range(2))
        assert wrong > 0.02  # a real KDF ran
        assert unknown > 0.5 * wrong, (unknown, wrong)
        assert login(client).status_code == 200
    finally:
        dispose(app)


def test_production_cookies_are_secure_httponly_lax(tmp_path: Path) -> None:
    app = make_app(
        f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        tmp_path,
        env="production",
        AUTH_PASSWORD_METHOD="scrypt:1024:8:1",
    )
    try:
        add_user(app)
        client = app.test_client()
        response = client.post(
            "/auth/login",
            json={"email": "ann@example.test", "password": PASSWORD, "remember": True},
            base_url="https://app.example.test",
        )
        assert response.status_code == 200
        cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
        for name in ("session", "remember_token"):
            parts = [p.strip() for p in cookies[name].split(";")]
            assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(parts), cookies[name]
        max_age = next(p for p in cookies["remember_token"].split("; ") if p.startswith("Max-Age"))
        assert max_age == f"Max-Age={14 * 24 * 3600}"
        xsrf = [p.strip() for p in cookies["XSRF-TOKEN"].split(";")]
        assert "Secure" in xsrf and "SameSite=Lax" in xsrf and "HttpOnly" not in xsrf
        assert app.config["SESSION_PROTECTION"] == "basic"
        assert any("cheap test setting" in n for n in app.extensions["complete"].notes)
    finally:
        dispose(app)


def _count_queries(app: Flask) -> list[str]:
    seen: list[str] = []
    with app.app_context():
        engine = authdb.engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        seen.append(statement)

    return seen


def test_user_loader_costs_one_query_and_none_when_anonymous(auth_app: Flask) -> None:
    @auth_app.get("/whoami")
    def whoami() -> t.Any:
        return {"anonymous": current_user.is_anonymous}

    add_user(auth_app)
    manager = auth_app.login_manager
    hashed = []
    real = manager._session_identifier_generator
    manager._session_identifier_generator = lambda: hashed.append(1) or real()

    client = auth_app.test_client()
    queries = _count_queries(auth_app)
    assert client.get("/whoami").json == {"anonymous": True}
    assert queries == [] and hashed == []

    login(client)
    queries.clear()
    assert client.get("/whoami").json == {"anonymous": False}
    assert len(queries) == 1 and "WHERE" in queries[0], queries
    queries.clear()
    client.get("/static/site.css")
    assert queries == []


def test_without_a_user_model_auth_stays_inert(tmp_path: Path) -> None:
    app = Flask("plain")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, db=authdb, env="testing", root=tmp_path)
    assert not hasattr(app, "login_manager")
    assert not any(r.rule.startswith("/auth") for r in app.url_map.iter_rules())
    assert "users" not in app.cli.commands
    assert "complete.auth" not in app.extensions


def test_endpoints_can_move_or_be_switched_off(tmp_path: Path) -> None:
    moved = make_app("sqlite://", tmp_path, AUTH_URL_PREFIX="/api/auth/")
    add_user(moved)
    assert login(moved.test_client()).status_code == 404
    response = moved.test_client().post(
        "/api/auth/login", json={"email": "ann@example.test", "password": PASSWORD}
    )
    assert response.status_code == 200
    off = make_app("sqlite://", tmp_path, AUTH_ENDPOINTS=False)
    assert not any("auth" in r.endpoint for r in off.url_map.iter_rules())
    assert hasattr(off, "login_manager")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("AUTH_PASSWORD_METHOD", "md5", "unknown password hash method 'md5'"),
        ("AUTH_PASSWORD_METHOD", "scrypt:1000:8:1", "power of 2"),
        ("AUTH_THROTTLE_STORAGE", "memcached", "is not a storage"),
        ("AUTH_THROTTLE_ACCOUNT_LIMIT", 0, "whole number >= 1"),
        ("AUTH_URL_PREFIX", "auth", "not a URL path"),
        ("CSRF_PROTECT", "maybe", 'true, false or "auto"'),
        ("AUTH_TRUSTED_ORIGINS", "https://a.test", "not a list of origins"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(
    tmp_path: Path, key: str, value: t.Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_app("sqlite://", tmp_path, **{key: value})
    assert key in str(info.value) and message in str(info.value)


def test_strong_protection_keeps_a_session_restored_from_the_remember_cookie(
    tmp_path: Path,
) -> None:
    app = make_app(
        f"sqlite:///{tmp_path / 'strong.sqlite3'}", tmp_path, SESSION_PROTECTION="strong"
    )
    try:
        add_user(app)
        client = app.test_client()
        assert login(client, remember=True).status_code == 200
        browser = app.test_client()
        browser.set_cookie("remember_token", client.get_cookie("remember_token").value)
        assert [browser.get("/auth/me").status_code for _ in range(3)] == [200] * 3
        # Strong protection still ends a session whose browser string changed.
        changed = client.get("/auth/me", headers={"User-Agent": "another browser"})
        assert changed.status_code == 401
    finally:
        dispose(app)


def _session_routes(app: Flask) -> Flask:
    from flask import session

    app.add_url_rule("/public", "public", lambda: "same for everyone")
    app.add_url_rule("/mine", "mine", lambda: str(session.get("_user_id") is not None))
    return app


def test_a_response_that_never_read_the_session_has_no_vary_cookie(tmp_path: Path) -> None:
    """Flask-Login reads the session after every request: every response got "Vary: Cookie",
    so no shared cache could keep a public page. Only the requests that read it get it now."""
    app = _session_routes(make_app(f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path))
    add_user(app)
    anonymous, member = app.test_client(), app.test_client()
    assert login(member).status_code == 200
    for client in (anonymous, member):
        public = client.get("/public")
        assert public.status_code == 200
        assert "Vary" not in public.headers
        assert "Set-Cookie" not in public.headers
        assert client.get("/mine").headers.getlist("Vary") == ["Cookie"]
        assert client.get("/auth/me").headers.getlist("Vary") == ["Cookie"]
    assert member.get("/mine").data == b"True"


def test_remember_cookie_is_set_cleared_and_refreshed(tmp_path: Path) -> None:
    """Flask-Login's remember cookie still changes where it did: set by a login with remember,
    deleted by the logout, renewed on every request with REMEMBER_COOKIE_REFRESH_EACH_REQUEST."""
    app = _session_routes(make_app(f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path))
    add_user(app)
    client = app.test_client()
    response = login(client, remember=True)
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))
    assert "Set-Cookie" not in client.get("/public").headers
    token = client.get("/auth/me").json["csrf_token"]
    out = client.post("/auth/logout", headers={"X-CSRF-Token": token})
    cleared = [c for c in out.headers.getlist("Set-Cookie") if c.startswith("remember_token=")]
    assert len(cleared) == 1 and "Expires=Thu, 01 Jan 1970" in cleared[0], cleared
    assert client.get_cookie("remember_token") is None
    dispose(app)

    refreshing = make_app(
        f"sqlite:///{tmp_path / 'b.sqlite3'}", tmp_path, REMEMBER_COOKIE_REFRESH_EACH_REQUEST=True
    )
    _session_routes(refreshing)
    add_user(refreshing)
    client = refreshing.test_client()
    response = login(client, remember=True)
    assert response.status_code == 200, response.json
    for path in ("/public", "/mine"):
        renewed = client.get(path).headers.getlist("Set-Cookie")
        assert any(c.startswith("remember_token=") for c in renewed), (path, renewed)
    dispose(refreshing)

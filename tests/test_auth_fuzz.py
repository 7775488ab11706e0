"""Every bundle endpoint under hostile input (SQLite, PostgreSQL, MariaDB): never a 5xx, never a
login or a read without the right credentials, and no partial write. The run's counts (examples,
4xx, 5xx) are printed at the end of the session.

Examples per test and database: a few in CI; ``HYPOTHESIS_PROFILE=nightly`` runs 2,000.
"""

from __future__ import annotations

import json
import os
import typing as t
import urllib.parse
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from authapps import FUZZ, PASSWORD, ApiToken, User, add_user, authdb, dispose, make_app
from flask import Flask
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flask_complete.auth.models import normalise_email
from flask_complete.auth.tokens import issue

pytest_plugins = ["authapps"]

EMAIL = "ann@example.test"
OTHER = "bob@example.test"
NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
EXAMPLES = settings(
    max_examples=2000 if NIGHTLY else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- what a hostile client sends -------------------------------------------------------------

#: Text with what breaks naive code: NUL, other controls, lone surrogates, long runs.
nasty = st.sampled_from(["\x00", "\x1b", "\ud800", "\udfff", "\u202e", "\ufeff", "%00", "'--"])
texts = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.builds("".join, st.lists(st.one_of(nasty, st.text(max_size=5)), max_size=6)),
    st.integers(0, 400).map(lambda n: "x" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**64),
    st.floats(),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def dumps(value: t.Any) -> bytes:
    # ASCII escapes: lone surrogates reach the app as "\\ud800", as a hostile client sends them.
    return json.dumps(value).encode()


#: Near misses of the real credentials: other case, accents, NUL, spaces, other passwords.
near_emails = st.sampled_from(
    [EMAIL, EMAIL.upper(), "ànn@example.test", EMAIL + "\x00", f" {EMAIL} ", "ann@example.tes"]
)
near_passwords = st.sampled_from([PASSWORD, PASSWORD + " ", PASSWORD.upper(), PASSWORD[:-1]])
#: Raw bodies: JSON, invalid UTF-8, deep nesting, credential-shaped objects.
raw_bodies = st.one_of(
    json_values.map(dumps),
    st.binary(max_size=200),
    st.integers(0, 3000).map(deep),
    st.builds(
        lambda email, password, remember: dumps(
            {"email": email, "password": password, "remember": remember}
        ),
        near_emails | json_values,
        near_passwords | json_values,
        json_values,
    ),
)
#: Bodies for POST /auth/tokens: mostly well-formed, with hostile names and lifetimes.
token_bodies = st.one_of(
    raw_bodies,
    st.builds(
        lambda name, days: dumps({"name": name, "expires_in_days": days}),
        texts,
        st.one_of(st.none(), st.integers(1, 365), st.integers(), texts, st.floats()),
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
    ]
)
#: Header values as a server receives them: bytes decoded as Latin-1, no control characters.
header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60
)
cookie_values = st.one_of(
    header_text,
    st.builds("{}:{}|{}".format, st.integers(), header_text, header_text),
    st.builds("{}|{}|{}".format, header_text, header_text, header_text),
)


def count(endpoint: str, status: int) -> None:
    """Tally one answer for the end-of-run summary."""
    tally = FUZZ.setdefault(endpoint, {"requests": 0, "2xx/3xx": 0, "4xx": 0, "5xx": 0})
    tally["requests"] += 1
    tally["4xx" if 400 <= status < 500 else "5xx" if status >= 500 else "2xx/3xx"] += 1


def answer(endpoint: str, response: t.Any, allowed: t.Collection[int]) -> None:
    """Count the answer; it is one of ``allowed``, and an error is a JSON ``{"error": ...}``."""
    count(endpoint, response.status_code)
    assert response.status_code < 500, (endpoint, response.status_code, response.data[:300])
    assert response.status_code in allowed, (endpoint, response.status_code, response.data[:300])
    if response.status_code >= 400:
        assert response.is_json and isinstance(response.json.get("error"), str), response.data


# --- the app under attack --------------------------------------------------------------------


class Target(t.NamedTuple):
    app: Flask
    #: A logged-in browser of EMAIL, and its CSRF token.
    client: t.Any
    csrf: str
    #: A token of OTHER: no fuzzed request may revoke it or read with it.
    foreign: str
    foreign_id: int


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    from conftest import drop_database, new_database, unique_name

    root = tmp_path_factory.mktemp("auth-fuzz")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'fuzz.sqlite3'}"
    else:
        name = unique_name("test_fcfuzz")
        url = new_database(request.param, name)
    try:
        # Limits out of reach: every example exercises the throttle's bookkeeping, none is locked.
        app = make_app(
            url,
            root,
            AUTH_THROTTLE_ACCOUNT_LIMIT=10**6,
            AUTH_THROTTLE_ADDRESS_LIMIT=10**6,
            HEALTH_ENDPOINT="/-/health",
        )
        try:
            add_user(app, EMAIL)
            add_user(app, OTHER)
            with app.app_context():
                other = authdb.session.scalars(sa.select(User).filter_by(email=OTHER)).one()
                token, secret = issue(other, "bob's")
                authdb.session.commit()
                token_id = token.id
            client = app.test_client()
            login = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
            assert login.status_code == 200
            yield Target(app, client, login.json["csrf_token"], secret, token_id)
        finally:
            dispose(app)
    finally:
        if name is not None:
            drop_database(request.param, name)


def snapshot(app: Flask) -> dict[str, t.Any]:
    """What a request may not change unless it succeeds: users, tokens and sessions."""
    with app.app_context():
        session = authdb.session
        users = session.execute(
            sa.select(User.email, User.password_hash, User.last_login_at, User.session_token)
        ).all()
        tokens = session.execute(sa.select(ApiToken.id, ApiToken.revoked_at)).all()
        table = authdb.metadata.tables.get("auth_session")
        sessions = None
        if table is not None:
            sessions = session.scalar(sa.select(sa.func.count()).select_from(table))
        authdb.session.remove()
    return {"users": sorted(users), "tokens": sorted(tokens), "sessions": sessions}


def assert_foreign_token_works(target: Target) -> None:
    me = target.app.test_client().get(
        "/auth/me", headers={"Authorization": f"Bearer {target.foreign}"}
    )
    assert me.status_code == 200 and me.json["user"]["email"] == OTHER


def no_new_session(client: t.Any, response: t.Any) -> None:
    assert not any(
        c.startswith(("session=", "remember_token="))
        for c in response.headers.getlist("Set-Cookie")
    ), response.headers
    assert client.get("/auth/me").status_code == 401


# --- one test per endpoint -------------------------------------------------------------------


@EXAMPLES
@given(body=raw_bodies, content_type=content_types, origin=st.none() | header_text)
def test_login(target: Target, body: bytes, content_type: str, origin: str | None) -> None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and data.get("password") == PASSWORD:
        email = data.get("email")
        assume(not isinstance(email, str) or normalise_email(email) != EMAIL)
    before = snapshot(target.app)
    client = target.app.test_client()
    headers = {"Content-Type": content_type} if content_type else {}
    if origin is not None:
        headers["Origin"] = origin
    response = client.post("/auth/login", data=body, headers=headers)
    answer("POST /auth/login", response, (400, 401, 403, 413))
    no_new_session(client, response)
    assert snapshot(target.app) == before


@EXAMPLES
@given(
    form=st.dictionaries(st.sampled_from(["email", "password", "remember"]) | texts, texts),
)
def test_login_form(target: Target, form: dict[str, str]) -> None:
    assume(
        not (form.get("password") == PASSWORD and normalise_email(form.get("email", "")) == EMAIL)
    )
    before = snapshot(target.app)
    client = target.app.test_client()
    try:
        response = client.post("/auth/login", data=form)
    except UnicodeEncodeError:
        assume(False)  # a form the test client cannot send (lone surrogates) never arrives
    answer("POST /auth/login (form)", response, (400, 401, 413))
    no_new_session(client, response)
    assert snapshot(target.app) == before


@EXAMPLES
@given(
    query=header_text,
    session=st.none() | cookie_values,
    remember=st.none() | cookie_values,
    csrf=header_text,
)
def test_logout(
    target: Target, query: str, session: str | None, remember: str | None, csrf: str
) -> None:
    before = snapshot(target.app)
    client = target.app.test_client()
    if session is not None:
        client.set_cookie("session", session)
    if remember is not None:
        client.set_cookie("remember_token", remember)
    path = "/auth/logout?" + urllib.parse.quote(query, safe="=&")
    response = client.post(path, headers={"X-CSRF-Token": csrf})
    answer("POST /auth/logout", response, (204, 400, 403))
    assert snapshot(target.app) == before
    assert target.client.get("/auth/me").status_code == 200  # nobody else was logged out


@EXAMPLES
@given(
    authorization=header_text | st.builds("Bearer {}".format, header_text),
    session=cookie_values,
    remember=cookie_values,
    method=st.sampled_from(["GET", "HEAD", "OPTIONS"]),
)
def test_me_and_token_list(
    target: Target, authorization: str, session: str, remember: str, method: str
) -> None:
    assume(target.foreign not in authorization)
    client = target.app.test_client()
    client.set_cookie("session", session)
    client.set_cookie("remember_token", remember)
    for path in ("/auth/me", "/auth/tokens"):
        response = client.open(path, method=method, headers={"Authorization": authorization})
        endpoint = f"{method} {path}"
        count(endpoint, response.status_code)
        assert response.status_code in ((200,) if method == "OPTIONS" else (401,)), endpoint
        if method == "GET":
            assert response.is_json and "error" in response.json


@EXAMPLES
@example(body=dumps({"name": "ci"}), content_type="application/json", csrf=True)
@example(body=dumps({"name": "a\ud800"}), content_type="application/json", csrf=True)
@given(
    body=token_bodies,
    content_type=st.just("application/json") | content_types,
    csrf=st.booleans() | st.just(True),
)
def test_create_token(target: Target, body: bytes, content_type: str, csrf: bool) -> None:
    before = snapshot(target.app)
    headers = {"X-CSRF-Token": target.csrf if csrf else "wrong"}
    if content_type:
        headers["Content-Type"] = content_type
    response = target.client.post("/auth/tokens", data=body, headers=headers)
    answer("POST /auth/tokens", response, (201, 400, 403, 413))
    after = snapshot(target.app)
    if response.status_code == 201:
        assert len(after["tokens"]) == len(before["tokens"]) + 1
        with target.app.app_context():
            token = authdb.session.get(ApiToken, response.json["id"])
            assert token is not None and token.name == response.json["name"]
            authdb.session.delete(token)
            authdb.session.commit()
    else:
        assert after == before


@EXAMPLES
@given(
    ident=st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.integers(min_value=2**31 - 3, max_value=2**31 + 3).map(str),
        texts.map(lambda s: urllib.parse.quote(s.encode("utf-8", "surrogatepass"), safe="")),
    ),
    method=st.sampled_from(["DELETE", "GET", "POST"]),
)
def test_revoke_token(target: Target, ident: str, method: str) -> None:
    before = snapshot(target.app)
    response = target.client.open(
        f"/auth/tokens/{ident}", method=method, headers={"X-CSRF-Token": target.csrf}
    )
    answer(f"{method} /auth/tokens/<id>", response, (404, 405))
    assert snapshot(target.app) == before
    assert_foreign_token_works(target)


def test_revoking_a_foreign_token_id_is_404(target: Target) -> None:
    response = target.client.delete(
        f"/auth/tokens/{target.foreign_id}", headers={"X-CSRF-Token": target.csrf}
    )
    answer("DELETE /auth/tokens/<id>", response, (404,))
    assert_foreign_token_works(target)


@EXAMPLES
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT"]), authorization=header_text)
def test_health(target: Target, method: str, authorization: str) -> None:
    response = target.app.test_client().open(
        "/-/health", method=method, headers={"Authorization": authorization}
    )
    count(f"{method} /-/health", response.status_code)
    assert response.status_code in ((200,) if method in ("GET", "HEAD") else (405,))

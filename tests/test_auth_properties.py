"""Property tests: arbitrary JSON, forms, headers and unicode emails at the login and token
endpoints never give a 500, and never a session for wrong credentials (SQLite and PostgreSQL)."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator

import pytest
from authapps import PASSWORD, User, add_user, authdb, dispose, make_app
from flask import Flask
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flask_complete.auth.models import normalise_email
from flask_complete.auth.tokens import issue

pytest_plugins = ["authapps"]

EMAIL = "ann@example.test"
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
login_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"email": json_values, "password": json_values},
        optional={"remember": json_values},
    ),
)
#: Header values as a server receives them: bytes decoded as Latin-1, no control characters.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"))
emails = st.one_of(
    st.emails(),
    st.text(min_size=1),
    st.builds(lambda a, b: f"{a}@{b}", st.text(min_size=1), st.text(min_size=1)),
    st.just(EMAIL.upper()),
    st.just(f"  {EMAIL}\x00"),
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def prop_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    root = tmp_path_factory.mktemp("auth-props")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'props.sqlite3'}"
    else:
        from conftest import drop_database, new_database, unique_name

        name = unique_name("test_fcprop")
        url = new_database("postgres", name)
    try:
        # Limits out of reach: every example exercises the throttle's bookkeeping, none is locked.
        app = make_app(
            url, root, AUTH_THROTTLE_ACCOUNT_LIMIT=10**6, AUTH_THROTTLE_ADDRESS_LIMIT=10**6
        )
        try:
            add_user(app, EMAIL)
            yield app
        finally:
            dispose(app)
    finally:
        if name is not None:
            drop_database("postgres", name)


class Token(t.NamedTuple):
    id: int
    secret: str


@pytest.fixture(scope="module")
def valid_token(prop_app: Flask) -> Token:
    """A valid API token of the user, stored. With no token rows every bearer gets 401 even
    from a check that compared no digest; with one, such a check lets random tokens in."""
    with prop_app.app_context():
        user = authdb.session.scalars(select(User).filter_by(email=EMAIL)).one()
        token, secret = issue(user, "props")
        authdb.session.commit()
        found = Token(token.id, secret)
    assert_token_works(prop_app, found)
    return found


def assert_token_works(app: Flask, token: Token) -> None:
    """``token`` authenticates as the user (so the 401s below come from the digest check)."""
    headers = {"Authorization": f"Bearer {token.secret}"}
    response = app.test_client().get("/auth/me", headers=headers)
    assert response.status_code == 200, response.data
    assert response.json["user"]["email"] == EMAIL
    assert response.json["authenticated_by"] == "token"


def assert_no_session(client: t.Any, response: t.Any) -> None:
    assert not any(
        c.startswith(("session=", "remember_token="))
        for c in response.headers.getlist("Set-Cookie")
    )
    assert client.get("/auth/me").status_code == 401


@FAST
@given(body=login_bodies)
def test_any_json_body(prop_app: Flask, body: t.Any) -> None:
    if isinstance(body, dict) and body.get("password") == PASSWORD:
        assume(not isinstance(body.get("email"), str) or normalise_email(body["email"]) != EMAIL)
    client = prop_app.test_client()
    response = client.post("/auth/login", json=body)
    assert response.status_code in (400, 401), (response.status_code, response.data)
    assert response.is_json and "error" in response.json
    assert_no_session(client, response)


@FAST
@given(
    form=st.dictionaries(
        st.sampled_from(["email", "password", "remember", "x"]) | st.text(), st.text(), max_size=5
    )
)
def test_any_form(prop_app: Flask, form: dict[str, str]) -> None:
    assume(
        not (form.get("password") == PASSWORD and normalise_email(form.get("email", "")) == EMAIL)
    )
    client = prop_app.test_client()
    response = client.post("/auth/login", data=form)
    assert response.status_code in (400, 401)
    assert_no_session(client, response)


@FAST
@given(email=emails, password=st.text())
def test_unicode_emails_and_passwords(prop_app: Flask, email: str, password: str) -> None:
    assume(password != PASSWORD)
    client = prop_app.test_client()
    response = client.post("/auth/login", json={"email": email, "password": password})
    if password:
        assert response.status_code == 401
        assert response.json == {"error": "Invalid email or password."}
    else:
        assert response.status_code == 400
    assert_no_session(client, response)


@FAST
@given(
    # Half of them bearer headers: random tokens that must match no stored digest.
    authorization=header_text | st.builds("Bearer {}".format, header_text),
    origin=header_text,
    csrf=header_text,
    content_type=header_text,
    body=st.binary(max_size=200),
)
def test_any_headers_at_token_endpoints(
    prop_app: Flask,
    valid_token: Token,
    authorization: str,
    origin: str,
    csrf: str,
    content_type: str,
    body: bytes,
) -> None:
    assume(valid_token.secret not in authorization)
    client = prop_app.test_client()
    headers = {
        "Authorization": authorization,
        "Origin": origin,
        "X-CSRF-Token": csrf,
        "Content-Type": content_type,
    }
    for method, path in (("GET", "/auth/me"), ("POST", "/auth/tokens"), ("GET", "/auth/tokens")):
        response = client.open(path, method=method, headers=headers, data=body)
        assert response.status_code == 401, (method, path, response.status_code)
    # The real token's id: a wrong bearer can neither read as nor revoke it. (/auth/me first, so
    # that a check letting it in fails before it revokes the token for the next examples.)
    wrong = {"Authorization": f"Bearer {authorization}"}
    assert client.get("/auth/me", headers=wrong).status_code == 401
    response = client.delete(f"/auth/tokens/{valid_token.id}", headers=wrong)
    assert response.status_code == 401
    response = client.post("/auth/login", headers=headers, data=body)
    assert response.status_code in (400, 401, 403)
    assert_no_session(client, response)


@FAST
@given(token=st.text(max_size=300))
def test_any_bearer_token(prop_app: Flask, valid_token: Token, token: str) -> None:
    client = prop_app.test_client()
    try:
        header = f"Bearer {token}".encode("latin-1").decode("latin-1")
    except UnicodeEncodeError:
        header = "Bearer " + token.encode("utf-8", "surrogatepass").decode("latin-1")
    assume(all(ord(c) >= 32 and c != "\x7f" for c in header))
    assume(token.strip() != valid_token.secret)
    assert client.get("/auth/me", headers={"Authorization": header}).status_code == 401
    assert_token_works(prop_app, valid_token)


@FAST
@given(
    origin=header_text,
    csrf=header_text,
    content_type=header_text,
    body=st.binary(max_size=200),
    correct=st.booleans(),
)
def test_any_headers_on_a_logged_in_session(
    prop_app: Flask, origin: str, csrf: str, content_type: str, body: bytes, correct: bool
) -> None:
    client = prop_app.test_client()
    login = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200
    headers = {"Origin": origin, "Content-Type": content_type}
    headers["X-CSRF-Token"] = login.json["csrf_token"] if correct else csrf
    response = client.post("/auth/tokens", headers=headers, data=body)
    assert response.status_code in (201, 400, 403), (response.status_code, response.data)
    if not correct and csrf != login.json["csrf_token"]:
        assert response.status_code == 403

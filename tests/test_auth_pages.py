"""The login, logout and password pages a browser gets from the bundle's auth endpoints: the
same views as the JSON clients' (throttle, CSRF, one answer for every failed login, session
records), templates an app overrides, and a ``next`` that never leaves the site."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, User, add_user, authdb, dispose, make_app
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from flask_complete import Complete

pytest_plugins = ["authapps"]

#: What a browser's navigation and form submissions send.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
EMAIL = "ann@example.test"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_ALERT = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


@pytest.fixture
def app(tmp_path: Path) -> t.Iterator[Flask]:
    application = make_app(f"sqlite:///{tmp_path / 'pages.sqlite3'}", tmp_path)
    add_user(application)
    yield application
    dispose(application)


def form_token(client: t.Any, path: str = "/auth/login") -> str:
    """Open the page as a browser does and return the CSRF token of its form."""
    page = client.get(path, headers=BROWSER)
    assert page.status_code == 200, page.get_data(as_text=True)
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found is not None, page.get_data(as_text=True)
    return found.group(1)


def submit(client: t.Any, path: str = "/auth/login", **fields: str) -> t.Any:
    """Post the page's form with its token (unless ``csrf_token`` is given)."""
    fields.setdefault("csrf_token", form_token(client, path))
    return client.post(path, data=fields, headers=BROWSER)


def alert(response: t.Any) -> str:
    found = _ALERT.search(response.get_data(as_text=True))
    return found.group(1).strip() if found else ""


def test_a_browser_gets_the_form_and_a_json_client_the_405(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/auth/login", headers=BROWSER)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<form method="post" action="/auth/login">' in html
    assert 'name="email"' in html and 'name="password"' in html
    assert page.headers["Cache-Control"] == "no-store"
    for headers in ({}, {"Accept": "application/json"}, {"Accept": "*/*"}):
        answer = client.get("/auth/login", headers=headers)
        assert answer.status_code == 405 and answer.is_json, headers
        assert answer.headers["Allow"] == "POST"


def test_the_form_logs_in_and_goes_to_next(app: Flask) -> None:
    client = app.test_client()
    token = form_token(client, "/auth/login?next=/notes%3Fpage%3D2")
    done = submit(client, email=EMAIL, password=PASSWORD, next="/notes?page=2", csrf_token=token)
    assert done.status_code == 303 and done.headers["Location"] == "/notes?page=2"
    me = client.get("/auth/me")
    assert me.status_code == 200 and me.json["user"]["email"] == EMAIL
    # The token of the page before the login is worthless after it (rotated, as for JSON).
    assert me.json["csrf_token"] != token
    assert client.get_cookie("XSRF-TOKEN").value == me.json["csrf_token"]
    # The login has its server-side record, as a JSON login does.
    with app.app_context():
        user = authdb.session.scalars(sa.select(User)).one()
        assert len(app.extensions["complete.auth"].sessions.logins(user.id)) == 1


def test_the_login_page_keeps_next_in_its_form(app: Flask) -> None:
    html = app.test_client().get("/auth/login?next=/notes/3", headers=BROWSER)
    assert '<input type="hidden" name="next" value="/notes/3">' in html.get_data(as_text=True)
    evil = app.test_client().get("/auth/login?next=//evil.example/x", headers=BROWSER)
    assert "evil.example" not in evil.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "notes",
        "",
    ],
)
def test_a_next_off_the_site_goes_to_the_index(app: Flask, target: str) -> None:
    client = app.test_client()
    done = submit(client, email=EMAIL, password=PASSWORD, next=target)
    assert done.status_code == 303 and done.headers["Location"] == "/"


def _as_browser_reads(location: str) -> str:
    return location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")


@given(target=st.text(max_size=40) | st.from_regex(r"\A[/\\\t a-z:.]{0,12}\Z"))
def test_next_always_stays_on_the_site(target: str) -> None:
    """Whatever ``next`` is, the page a browser then opens is on this site."""
    from flask_complete.auth import pages

    probe = Flask("probe")
    with probe.test_request_context("/auth/login"):
        location = pages.safe_next(target)
    assert location == "/" or location == target
    opened = urlsplit(urljoin("https://site.example/auth/login", _as_browser_reads(location)))
    assert (opened.scheme, opened.netloc) == ("https", "site.example"), (target, location)


@given(path=st.from_regex(r"\A(/[A-Za-z0-9_.~-]+)+/?(\?[A-Za-z0-9=&]*)?\Z"))
def test_a_path_on_the_site_is_kept(path: str) -> None:
    from flask_complete.auth import pages

    with Flask("probe").test_request_context("/"):
        assert pages.safe_next(path) == path


@pytest.mark.parametrize("token", ["", "not the token", None])
def test_a_form_without_the_page_s_token_logs_nobody_in(app: Flask, token: str | None) -> None:
    client = app.test_client()
    form_token(client)  # the session has a token; the form does not carry it
    fields = {"email": EMAIL, "password": PASSWORD}
    if token is not None:
        fields["csrf_token"] = token
    refused = client.post("/auth/login", data=fields, headers=BROWSER)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert "The form expired" in alert(refused)
    assert client.get("/auth/me").status_code == 401
    # The page it answers with carries a fresh token that works.
    assert submit(client, email=EMAIL, password=PASSWORD).status_code == 303


def test_a_form_from_another_site_is_refused(app: Flask) -> None:
    client = app.test_client()
    token = form_token(client)
    fields = {"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    foreign = client.post(
        "/auth/login", data=fields, headers={**BROWSER, "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "Cross-site request refused" in foreign.text
    assert client.get("/auth/me").status_code == 401


def test_a_wrong_password_reads_as_an_unknown_email(app: Flask) -> None:
    add_user(app, "off@example.test", active=False)
    client = app.test_client()
    answers = [
        submit(client, email="nobody@example.test", password=PASSWORD),
        submit(client, email=EMAIL, password="wrong password!"),
        submit(client, email="off@example.test", password=PASSWORD),
    ]
    assert [a.status_code for a in answers] == [401] * 3
    assert {alert(a) for a in answers} == {"Invalid email or password."}
    # The page is the same but for the email typed back into the form.
    pages = {a.get_data(as_text=True).split('value="', 2)[0] for a in answers}
    assert len(pages) == 1
    assert client.get("/auth/me").status_code == 401


def test_form_failures_count_with_json_ones(app: Flask) -> None:
    """One throttle: failures through the form lock the JSON login of the account too."""
    client = app.test_client()
    for _ in range(3):
        assert submit(client, email=EMAIL, password="wrong password!").status_code == 401
    for _ in range(2):
        wrong = {"email": EMAIL, "password": "wrong password!"}
        assert client.post("/auth/login", json=wrong).status_code == 401
    locked = submit(client, email=EMAIL, password=PASSWORD)
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
    assert "try again in 30 seconds" in alert(locked)
    right = {"email": EMAIL, "password": PASSWORD}
    assert client.post("/auth/login", json=right).status_code == 429


def test_missing_fields_redraw_the_form(app: Flask) -> None:
    client = app.test_client()
    answer = submit(client, email=EMAIL)
    assert answer.status_code == 400 and alert(answer) == "Enter your email and password."
    assert f'value="{EMAIL}"' in answer.get_data(as_text=True)


def test_log_out_through_the_page_ends_the_captured_cookie(app: Flask) -> None:
    client = app.test_client()
    assert submit(client, email=EMAIL, password=PASSWORD, remember="1").status_code == 303
    captured = client.get_cookie("session").value
    remembered = client.get_cookie("remember_token").value
    page = client.get("/auth/logout", headers=BROWSER)
    assert page.status_code == 200 and "Log out</button>" in page.get_data(as_text=True)
    done = submit(client, "/auth/logout", next="/bye")
    assert done.status_code == 303 and done.headers["Location"] == "/bye"
    assert client.get("/auth/me").status_code == 401
    for name, value in (("session", captured), ("remember_token", remembered)):
        thief = app.test_client()
        thief.set_cookie(name, value)
        assert thief.get("/auth/me").status_code == 401, name


def test_logout_without_the_token_is_refused_as_a_page(app: Flask) -> None:
    client = app.test_client()
    assert submit(client, email=EMAIL, password=PASSWORD).status_code == 303
    refused = client.post("/auth/logout", data={}, headers=BROWSER)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert "CSRF token missing" in refused.get_data(as_text=True)
    assert client.get("/auth/me").status_code == 200


def test_a_page_behind_the_login_sends_the_browser_to_the_form(app: Flask) -> None:
    client = app.test_client()
    sent = client.get("/auth/password", headers=BROWSER)
    assert sent.status_code == 302
    assert sent.headers["Location"] == "/auth/login?next=/auth/password"
    # A JSON client keeps its 401.
    assert client.get("/auth/password").status_code == 401
    assert client.get("/auth/me", headers=BROWSER).status_code == 302


def test_password_change_ends_the_other_logins_and_keeps_this_one(app: Flask) -> None:
    client, other = app.test_client(), app.test_client()
    assert submit(client, email=EMAIL, password=PASSWORD).status_code == 303
    assert submit(other, email=EMAIL, password=PASSWORD).status_code == 303
    new = "a brand new password"
    wrong = submit(
        client,
        "/auth/password",
        current_password="not it at all",
        new_password=new,
        new_password_again=new,
    )
    assert wrong.status_code == 400 and alert(wrong) == "The current password is wrong."
    differ = submit(
        client,
        "/auth/password",
        current_password=PASSWORD,
        new_password=new,
        new_password_again=new + "!",
    )
    assert differ.status_code == 400 and "differ" in alert(differ)
    done = submit(
        client,
        "/auth/password",
        current_password=PASSWORD,
        new_password=new,
        new_password_again=new,
    )
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert client.get("/auth/me").status_code == 200
    assert other.get("/auth/me").status_code == 401
    fresh = app.test_client()
    assert fresh.post("/auth/login", json={"email": EMAIL, "password": new}).status_code == 200


def test_a_json_client_changes_its_password(app: Flask) -> None:
    client = app.test_client()
    token = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).json
    body = {"current_password": PASSWORD, "new_password": "x" * 12}
    changed = client.post(
        "/auth/password", json=body, headers={"X-CSRF-Token": token["csrf_token"]}
    )
    assert changed.status_code == 200 and changed.json["csrf_token"]
    short = {"current_password": "x" * 12, "new_password": "short"}
    refused = client.post(
        "/auth/password", json=short, headers={"X-CSRF-Token": changed.json["csrf_token"]}
    )
    assert refused.status_code == 400 and "AUTH_PASSWORD_MIN_LENGTH" in refused.json["error"]


def build_overriding(root: Path, files: dict[str, str]) -> Flask:
    """An app whose own templates folder holds ``files``."""
    for name, text in files.items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    app = Flask("overriding", root_path=str(root))
    app.config.update(
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{root / 'o.sqlite3'}",
        AUTH_THROTTLE_STORAGE="database",
    )
    Complete(app, db=authdb, user_model=User, env="testing", root=root)
    with app.app_context():
        authdb.create_all()
    return app


def test_the_app_s_base_html_frames_the_pages(tmp_path: Path) -> None:
    base = (
        "<html><title>{% block title %}{% endblock %} - Mine</title>"
        "<nav>my nav</nav>{% block content %}{% endblock %}</html>"
    )
    app = build_overriding(tmp_path, {"base.html": base})
    html = app.test_client().get("/auth/login", headers=BROWSER).get_data(as_text=True)
    assert "<title>Log in - Mine</title>" in html and "<nav>my nav</nav>" in html
    assert 'name="password"' in html
    dispose(app)


def test_without_a_base_html_the_bundle_s_layout_frames_them(app: Flask) -> None:
    html = app.test_client().get("/auth/login", headers=BROWSER).get_data(as_text=True)
    assert html.startswith("<!doctype html>") and "<title>Log in</title>" in html


def test_the_app_s_own_login_template_wins(tmp_path: Path) -> None:
    own = "<p>our own login</p><input name=csrf_token value={{ csrf_token() }}>"
    app = build_overriding(tmp_path, {"complete/auth/login.html": own})
    client = app.test_client()
    page = client.get("/auth/login", headers=BROWSER)
    assert page.get_data(as_text=True).startswith("<p>our own login</p>")
    # Its form logs in through the same view.
    add_user(app)
    sent = re.search(r"value=(\S+)>", page.get_data(as_text=True))
    assert sent is not None
    fields = {"email": EMAIL, "password": PASSWORD, "csrf_token": sent.group(1)}
    assert client.post("/auth/login", data=fields, headers=BROWSER).status_code == 303
    dispose(app)

"""The app's routes win: a bundle endpoint whose URL the app serves itself (with any method) is
left to the app, whether the app registers its routes before ``Complete(app)`` or after it (an
app factory); init, the first request and ``flask complete check`` say so with the fix
(``AUTH_URL_PREFIX``)."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest
from authapps import PASSWORD, STRONG, User, add_user, authdb
from conftest import track
from flask import Blueprint, Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_complete import Complete

pytest_plugins = ["authapps"]
EMAIL = "ann@example.test"

#: The bundle's endpoints under the default prefix: URL -> (a URL to ask, its methods).
BUNDLE = {
    "/auth/login": ("/auth/login", {"POST"}),
    "/auth/logout": ("/auth/logout", {"POST"}),
    "/auth/me": ("/auth/me", {"GET"}),
    "/auth/tokens": ("/auth/tokens", {"GET", "POST"}),
    "/auth/tokens/<int:token_id>": ("/auth/tokens/3", {"DELETE"}),
}
#: The app's own rule for each of those URLs (the variable one spelled its own way).
OWN_RULE = {
    "/auth/login": "/login",
    "/auth/logout": "/logout",
    "/auth/me": "/me",
    "/auth/tokens": "/tokens",
    "/auth/tokens/<int:token_id>": "/tokens/<int:number>",
}
METHODS = ("GET", "POST", "DELETE")


def own_blueprint(owned: dict[str, set[str]]) -> Blueprint:
    """The app's ``auth`` blueprint at ``/auth``: an HTML page for each URL in ``owned``, with
    the methods given."""
    bp = Blueprint("auth", __name__, url_prefix="/auth")
    for url, methods in owned.items():

        def page(**_: t.Any) -> str:
            return "<form>the app's own page</form>"

        bp.add_url_rule(OWN_RULE[url], f"own_{len(bp.deferred_functions)}", page, methods=methods)
    return bp


def build(root: Path, owned: dict[str, set[str]], *, after: bool, **config: t.Any) -> Flask:
    """An app with its own ``/auth`` pages, registered before or after ``Complete(app)``."""
    app = Flask("routes")
    app.config.update(
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{root / 'routes.sqlite3'}",
        AUTH_THROTTLE_STORAGE="database",
        **config,
    )
    if not after:
        app.register_blueprint(own_blueprint(owned))
    Complete(app, db=authdb, user_model=User, env="testing", root=root)
    if after:
        app.register_blueprint(own_blueprint(owned))
    with app.app_context():
        authdb.create_all()
    return track(app)


def answered_by_app(response: t.Any) -> bool:
    return response.get_data(as_text=True) == "<form>the app's own page</form>"


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_the_app_s_login_form_is_answered_by_the_app(tmp_path: Path, after: bool) -> None:
    app = build(tmp_path, {"/auth/login": {"GET", "POST"}}, after=after)
    add_user(app)
    client = app.test_client()
    form = {"email": EMAIL, "password": PASSWORD}
    assert answered_by_app(client.post("/auth/login", data=form))
    assert answered_by_app(client.post("/auth/login", json=form))
    assert answered_by_app(client.get("/auth/login"))
    # The bundle's other endpoints stay.
    me = client.get("/auth/me")
    assert me.status_code == 401 and "error" in me.json


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_a_route_of_the_app_with_other_methods_still_wins(tmp_path: Path, after: bool) -> None:
    """The app serves ``GET /auth/logout`` only: ``POST`` is the app's 405, not the bundle's
    logout."""
    app = build(tmp_path, {"/auth/logout": {"GET"}}, after=after)
    client = app.test_client()
    assert answered_by_app(client.get("/auth/logout"))
    assert client.post("/auth/logout").status_code == 405


def test_init_says_so_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "flask_complete.auth"):
        app = build(tmp_path, {"/auth/login": {"GET", "POST"}}, after=False)
    notes = app.extensions["complete"].notes
    said = [n for n in notes if "/auth/login" in n]
    assert said and "AUTH_URL_PREFIX" in said[0] and "auth." in said[0], notes
    assert any("/auth/login" in r.getMessage() for r in caplog.records)
    assert "complete_auth.login" not in app.view_functions
    shown = app.test_cli_runner().invoke(args=["complete", "config"])
    assert "AUTH_URL_PREFIX" in shown.output, shown.output


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_check_names_the_route_and_the_fix(tmp_path: Path, after: bool) -> None:
    app = build(tmp_path, {"/auth/login": {"GET", "POST"}}, after=after)
    result = app.test_cli_runner().invoke(args=["complete", "check", "--format", "json"])
    import json

    findings = json.loads(result.output)["findings"]
    found = [f for f in findings if f["id"] == "auth.routes_shadowed"]
    assert len(found) == 1, findings
    assert "/auth/login" in found[0]["message"] and "AUTH_URL_PREFIX" in found[0]["fix"]


def test_the_first_request_says_so_for_routes_registered_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = build(tmp_path, {"/auth/login": {"GET", "POST"}}, after=True)
    with caplog.at_level(logging.WARNING, "flask_complete.auth"):
        app.test_client().post("/auth/login", data={})
        app.test_client().post("/auth/login", data={})
    said = [r.getMessage() for r in caplog.records if "/auth/login" in r.getMessage()]
    assert len(said) == 1 and "AUTH_URL_PREFIX" in said[0], said


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_another_prefix_serves_both(tmp_path: Path, after: bool) -> None:
    app = build(
        tmp_path, {"/auth/login": {"GET", "POST"}}, after=after, AUTH_URL_PREFIX="/api/auth"
    )
    add_user(app)
    client = app.test_client()
    assert answered_by_app(client.post("/auth/login", data={}))
    logged_in = client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.json
    assert app.extensions["complete"].notes == [] or not any(
        "AUTH_URL_PREFIX" in n for n in app.extensions["complete"].notes
    )


owned_routes = st.dictionaries(
    st.sampled_from(sorted(BUNDLE)),
    st.sets(st.sampled_from(METHODS), min_size=1),
    max_size=len(BUNDLE),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(owned=owned_routes, after=st.booleans())
def test_each_url_the_app_serves_is_the_app_s_and_the_rest_the_bundle_s(
    tmp_path_factory: pytest.TempPathFactory, owned: dict[str, set[str]], after: bool
) -> None:
    """Whatever of the bundle's URLs the app serves, with whatever methods, in either order:
    every method on those URLs is answered by the app (its page, or its 405), every other
    bundle URL by the bundle."""
    app = build(tmp_path_factory.mktemp("routes"), owned, after=after)
    client = app.test_client()
    for url, (path, bundle_methods) in BUNDLE.items():
        for method in sorted(set(METHODS) | bundle_methods):
            response = client.open(path, method=method)
            if url in owned:
                if method in owned[url]:
                    assert answered_by_app(response), (url, method, response.status_code)
                else:
                    assert response.status_code == 405, (url, method, response.status_code)
            elif method in bundle_methods:
                # The bundle's endpoint (JSON, or the logout's empty 204).
                assert not answered_by_app(response), (url, method)
                assert response.status_code != 405, (url, method)
                assert response.is_json or response.status_code == 204, (url, method)
            else:
                assert response.status_code == 405, (url, method)
    with app.app_context():
        for engine in authdb.engines.values():
            engine.dispose()

"""CSRF for cookie-authenticated requests, the decorators, and an existing app's own login."""

from __future__ import annotations

import typing as t
from pathlib import Path

import flask_login
import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, add_user, dispose, make_app
from conftest import track
from flask import Flask, redirect, render_template_string, request, session, url_for
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_complete import Complete, ConfigError
from flask_complete.auth import admin_required, csrf_exempt, login_required

pytest_plugins = ["authapps"]


@pytest.fixture
def app(tmp_path: Path) -> t.Iterator[Flask]:
    application = make_app(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", tmp_path)

    @application.route("/api/things", methods=["POST", "OPTIONS"])
    @login_required
    def things() -> t.Any:
        return {"method": request.method}

    @application.post("/api/admin")
    @admin_required
    def admin() -> t.Any:
        return {"ok": True}

    @application.post("/hooks/incoming")
    @csrf_exempt
    @login_required
    def hook() -> t.Any:
        return {"ok": True}

    add_user(application)
    add_user(application, "root@example.test", is_admin=True)
    yield application
    dispose(application)


def logged_in(app: Flask, email: str = "ann@example.test") -> tuple[t.Any, str]:
    client = app.test_client()
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return client, response.json["csrf_token"]


def test_cookie_post_needs_the_token_and_a_same_site_origin(app: Flask) -> None:
    client, token = logged_in(app)
    missing = client.post("/api/things")
    assert missing.status_code == 403 and b"CSRF token missing" in missing.data
    wrong = client.post("/api/things", headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403 and b"CSRF token invalid" in wrong.data
    foreign = client.post(
        "/api/things", headers={"X-CSRF-Token": token, "Origin": "https://evil.test"}
    )
    assert foreign.status_code == 403 and b"Cross-site request refused" in foreign.data
    referer = client.post(
        "/api/things", headers={"X-CSRF-Token": token, "Referer": "https://evil.test/x"}
    )
    assert referer.status_code == 403

    assert client.post("/api/things", headers={"X-CSRF-Token": token}).status_code == 200
    same = client.post("/api/things", headers={"X-CSRF-Token": token, "Origin": "http://localhost"})
    assert same.status_code == 200
    assert client.post("/api/things", data={"csrf_token": token}).status_code == 200
    # The bundle's own endpoints are covered too.
    assert client.post("/auth/logout").status_code == 403
    assert client.post("/auth/tokens", json={"name": "x"}).status_code == 403
    # An explicit exemption.
    assert client.post("/hooks/incoming").status_code == 200


def test_bearer_and_anonymous_posts_need_no_token(app: Flask) -> None:
    runner = app.test_cli_runner()
    secret = runner.invoke(args=["users", "token", "ann@example.test", "-n", "x"]).stdout.split()[0]
    api = app.test_client()
    response = api.post("/api/things", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    # A cookie session riding along with a bearer header is not used for that request.
    client, _ = logged_in(app)
    assert client.post("/api/things", headers={"Authorization": "Bearer bad"}).status_code == 401
    assert app.test_client().post("/api/things").status_code == 401


def test_login_refuses_a_foreign_origin_unless_trusted(tmp_path: Path) -> None:
    app = make_app("sqlite://", tmp_path, AUTH_TRUSTED_ORIGINS=["https://spa.example.test"])
    add_user(app)
    body = {"email": "ann@example.test", "password": PASSWORD}
    client = app.test_client()
    evil = client.post("/auth/login", json=body, headers={"Origin": "https://evil.test"})
    assert evil.status_code == 403 and "AUTH_TRUSTED_ORIGINS" in evil.json["error"]
    assert client.get("/auth/me").status_code == 401
    spa = client.post("/auth/login", json=body, headers={"Origin": "https://spa.example.test"})
    assert spa.status_code == 200
    token = spa.json["csrf_token"]
    headers = {"Origin": "https://spa.example.test", "X-CSRF-Token": token}
    assert client.post("/auth/logout", headers=headers).status_code == 204


def test_login_required_exempts_only_real_preflights(app: Flask) -> None:
    anonymous = app.test_client()
    assert anonymous.open("/api/things", method="OPTIONS").status_code == 401
    preflight = anonymous.open(
        "/api/things",
        method="OPTIONS",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    # The preflight is answered without running the view, which handles OPTIONS itself.
    assert preflight.get_json(silent=True) is None
    assert "POST" in preflight.headers["Allow"]
    # Flask-Login's own globals are untouched.
    assert {"OPTIONS"} == flask_login.config.EXEMPT_METHODS


def test_admin_required(app: Flask) -> None:
    client, token = logged_in(app)
    assert client.post("/api/admin", headers={"X-CSRF-Token": token}).status_code == 403
    root, root_token = logged_in(app, "root@example.test")
    assert root.post("/api/admin", headers={"X-CSRF-Token": root_token}).status_code == 200
    assert app.test_client().post("/api/admin").status_code == 401


# An app written the way the Flask-Login tutorials write one: its own model, manager, forms.
FORM = """<form method=post>{% if csrf_token is defined %}<input name=csrf_token
value="{{ csrf_token() }}">{% endif %}<input name=email><input name=password></form>"""


def tutorial_app(tmp_path: Path, **config: t.Any) -> tuple[Flask, SQLAlchemy, type[t.Any]]:
    db = SQLAlchemy()

    class Member(flask_login.UserMixin, db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(sa.String(100), unique=True)
        password_hash: Mapped[str] = mapped_column(sa.String(200))

        def set_password(self, password: str) -> None:
            self.password_hash = generate_password_hash(password, "pbkdf2:sha256:1000")

        def check_password(self, password: str) -> bool:
            return check_password_hash(self.password_hash, password)

    app = Flask("tutorial")
    # Already a test database's name: the testing environment would derive test_<name> from
    # another, and the tables made here, before Complete, would not be in it.
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test_tut.sqlite3'}"
    )
    app.config.update(config)
    db.init_app(app)
    manager = flask_login.LoginManager(app)
    manager.login_view = "login"

    @manager.user_loader
    def load(user_id: str) -> t.Any:
        return db.session.get(Member, int(user_id))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> t.Any:
        if request.method == "POST":
            user = db.session.scalar(sa.select(Member).filter_by(email=request.form["email"]))
            if user and user.check_password(request.form["password"]):
                flask_login.login_user(user)
                return redirect(url_for("secret"))
            return "bad login", 401
        return render_template_string(FORM)

    @app.post("/logout")
    def logout() -> t.Any:
        flask_login.logout_user()
        return redirect(url_for("login"))

    @app.get("/secret")
    @flask_login.login_required
    def secret() -> t.Any:
        return f"hello {flask_login.current_user.email}"

    with app.app_context():
        db.create_all()
        member = Member(email="tut@example.test")
        member.set_password(PASSWORD)
        db.session.add(member)
        db.session.commit()
    return app, db, Member


def run_tutorial_flow(app: Flask) -> t.Any:
    client = app.test_client()
    assert client.get("/secret").status_code == 302  # to its own login_view
    response = client.post("/login", data={"email": "tut@example.test", "password": PASSWORD})
    assert response.status_code == 302, response.data
    assert client.get("/secret").data == b"hello tut@example.test"
    assert client.post("/logout").status_code == 302
    assert client.get("/secret").status_code == 302
    return client


@pytest.mark.parametrize("with_model", [False, True])
def test_existing_app_with_its_own_login_keeps_working(tmp_path: Path, with_model: bool) -> None:
    app, db, member = tutorial_app(tmp_path)
    manager, loader = app.login_manager, app.login_manager._user_callback
    Complete(app, user_model=member if with_model else None, env="testing", root=tmp_path)
    if with_model:
        with app.app_context():
            # The login records' table, as `flask db migrate` and `flask db upgrade` add it.
            db.create_all()
    try:
        assert app.login_manager is manager and manager._user_callback is loader
        assert type(manager) is flask_login.LoginManager
        run_tutorial_flow(app)
        if with_model:
            # The bundle's endpoints work on the adopted model and check its password.
            client = app.test_client()
            body = {"email": "tut@example.test", "password": PASSWORD}
            response = client.post("/auth/login", json=body)
            assert response.status_code == 200, response.json
            assert response.json["user"] == {"id": 1, "email": "tut@example.test"}
            assert client.get("/secret").status_code == 200
            no_tokens = client.get("/auth/tokens")
            assert no_tokens.status_code == 404
            assert "ApiTokenMixin" in no_tokens.json["error"]
            # CSRF stays opt-in for the app's forms but covers the bundle's endpoints.
            assert client.post("/logout").status_code == 302
            assert client.post("/auth/login", json=body).status_code == 200
            assert client.post("/auth/logout").status_code == 403
            # `flask users` works through the model's own set_password.
            runner = app.test_cli_runner()
            created = runner.invoke(args=["users", "create", "new@example.test", "-p", PASSWORD])
            assert created.exit_code == 0, created.output
            body = {"email": "new@example.test", "password": PASSWORD}
            assert app.test_client().post("/auth/login", json=body).status_code == 200
            assert "new@example.test  [active]" in runner.invoke(args=["users", "list"]).output
    finally:
        with app.app_context():
            db.engine.dispose()


def test_csrf_is_opt_in_for_an_existing_app(tmp_path: Path) -> None:
    app, db, _ = tutorial_app(tmp_path, CSRF_PROTECT=True)
    Complete(app, env="testing", root=tmp_path)
    try:
        client = app.test_client()
        data = {"email": "tut@example.test", "password": PASSWORD}
        assert client.post("/login", data=data).status_code == 302  # anonymous: no check
        assert client.post("/logout").status_code == 403
        page = client.get("/login").get_data(as_text=True)
        token = page.split('value="')[1].split('"')[0]
        assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    finally:
        with app.app_context():
            db.engine.dispose()


# An app shaped like the Flask tutorial's (flaskr): its own login view keeps the user in
# session["user_id"]; no Flask-Login, no user model given to Complete.
FLASKR_FORM = '<form method=post><input name=csrf_token value="{{ csrf_token() }}"></form>'


def flaskr_app(tmp_path: Path, **config: t.Any) -> Flask:
    app = Flask("flaskr", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'flaskr.sqlite3'}"
    )
    app.config.update(config)
    hashed = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")

    @app.route("/auth/login", methods=["GET", "POST"])
    def login() -> t.Any:
        if request.method == "POST":
            if not check_password_hash(hashed, request.form.get("password", "")):
                return "Incorrect password.", 401
            session.clear()
            session["user_id"] = 1
            return redirect(url_for("create"))
        return render_template_string(FLASKR_FORM)

    @app.route("/create", methods=["GET", "POST"])
    def create() -> t.Any:
        if request.method == "POST":
            return f"created by {session.get('user_id', 'anonymous')}"
        return render_template_string(FLASKR_FORM)

    Complete(app, env="testing", root=tmp_path)
    track(app)
    return app


def test_csrf_true_protects_an_app_with_its_own_session_login(tmp_path: Path) -> None:
    app = flaskr_app(tmp_path, CSRF_PROTECT=True)
    # Anonymous, no cookie: nothing to forge.
    assert app.test_client().post("/create").data == b"created by anonymous"

    client = app.test_client()
    form = client.get("/auth/login").get_data(as_text=True)
    token = form.split('value="')[1].split('"')[0]
    # The visitor has a session cookie now: its login form carries the token, and works.
    response = client.post("/auth/login", data={"password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.data
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is not None

    page = client.get("/create").get_data(as_text=True)
    token = page.split('value="')[1].split('"')[0]
    forged = client.post(
        "/create", data={"csrf_token": token}, headers={"Origin": "https://evil.test"}
    )
    assert forged.status_code == 403 and b"Cross-site request refused" in forged.data
    missing = client.post("/create")
    assert missing.status_code == 403 and b"CSRF token missing" in missing.data
    same = client.post(
        "/create", data={"csrf_token": token}, headers={"Origin": "http://localhost"}
    )
    assert (same.status_code, same.data) == (200, b"created by 1")


def test_csrf_auto_leaves_an_app_with_its_own_login_alone(tmp_path: Path) -> None:
    app = flaskr_app(tmp_path)
    client = app.test_client()
    assert client.post("/auth/login", data={"password": PASSWORD}).status_code == 302
    response = client.post("/create", headers={"Origin": "https://evil.test"})
    assert response.data == b"created by 1"  # opt-in, as documented


@pytest.mark.parametrize("value", ["yes", 1, "on", "enabled", None, ["true"]])
@pytest.mark.parametrize("with_model", [False, True], ids=["own login", "bundle login"])
def test_an_invalid_csrf_protect_is_an_error_never_off(
    tmp_path: Path, value: t.Any, with_model: bool
) -> None:
    with pytest.raises(ConfigError) as caught:
        if with_model:
            make_app("sqlite://", tmp_path, CSRF_PROTECT=value)
        else:
            flaskr_app(tmp_path, CSRF_PROTECT=value)
    (problem,) = [p for p in caught.value.problems if p.key == "CSRF_PROTECT"]
    assert problem.level == "error"
    assert f"CSRF_PROTECT = {value!r}" in problem.message
    assert 'true, false or "auto"' in problem.fix


@pytest.mark.parametrize(
    ("files", "env"),
    [
        ({"settings.toml": 'CSRF_PROTECT = "yes"\n'}, {}),
        ({}, {"FLASK_CSRF_PROTECT": "1"}),
        ({}, {"FLASK_CSRF_PROTECT": "on"}),
    ],
    ids=["settings.toml", "FLASK_ env 1", "FLASK_ env on"],
)
def test_an_invalid_csrf_protect_from_the_settings_is_an_error(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, files: dict[str, str], env: dict[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name, raw in env.items():
        clean_env.setenv(name, raw)
    with pytest.raises(ConfigError) as caught:
        flaskr_app(tmp_path)
    assert any(p.key == "CSRF_PROTECT" for p in caught.value.problems)

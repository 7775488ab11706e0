"""An app's own ``LoginManager`` (adopted, with its own user loader and a model of its own):
logging out ends the login, also for a captured session or remember cookie; ``flask users
sessions`` sees the logins. Records in the database (SQLite, PostgreSQL, MariaDB) and in Redis;
the app's loader registered before or after ``Complete(app)``."""

from __future__ import annotations

import typing as t
from pathlib import Path

import flask_login
import pytest
import sqlalchemy as sa
from authapps import REDIS, STRONG
from conftest import track
from flask import Flask, request
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_complete import Complete
from flask_complete.auth import sessions
from flask_complete.auth.testing import login_client

pytest_plugins = ["authapps"]
EMAIL = "member@example.test"
PASSWORD = "a long enough password"


class Base(DeclarativeBase):
    pass


owndb = SQLAlchemy(model_class=Base)


class Member(flask_login.UserMixin, owndb.Model):  # type: ignore[name-defined,misc]
    """A user model of the app's own: Flask-Login's mixin, its own password methods."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200), default="")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, "pbkdf2:sha256:1000")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


def build(url: str, root: Path, *, loader_after: bool = False, **config: t.Any) -> Flask:
    """The app as its authors wrote it (its LoginManager, loader, login and logout views), with
    ``Complete(app, user_model=Member)`` added."""
    app = Flask("adopted")
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url, AUTH_THROTTLE_STORAGE="database"
    )
    app.config.update(config)
    manager = LoginManager(app)

    def load(user_id: str) -> Member | None:
        return owndb.session.get(Member, int(user_id))

    if not loader_after:
        manager.user_loader(load)
    Complete(app, db=owndb, user_model=Member, env="testing", root=root)
    if loader_after:
        manager.user_loader(load)

    @app.post("/signin")
    def signin() -> str:
        user = owndb.session.scalar(sa.select(Member).filter_by(email=request.form["email"]))
        if user is None or not user.check_password(request.form["password"]):
            return "no"
        login_user(user, remember=bool(request.form.get("remember")))
        return "yes"

    @app.post("/signout")
    def signout() -> str:
        logout_user()
        return "bye"

    @app.get("/whoami")
    def whoami() -> str:
        return str(current_user.email) if current_user.is_authenticated else "anonymous"

    with app.app_context():
        owndb.create_all()
        member = Member(email=EMAIL)
        member.set_password(PASSWORD)
        owndb.session.add(member)
        owndb.session.commit()
    return track(app)


@pytest.fixture(params=["sqlite", "postgres", "mysql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, t.Any]]:
    """Where the records live: the database (SQLite, PostgreSQL, MariaDB) or Redis."""
    url = f"sqlite:///{tmp_path / 'own.sqlite3'}"
    config: dict[str, t.Any] = {}
    if request.param == "redis":
        config = {
            "AUTH_SESSION_STORAGE": REDIS,
            "AUTH_SESSION_PREFIX": request.getfixturevalue("redis_prefix"),
        }
    elif request.param != "sqlite":
        url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
    return url, config


@pytest.fixture(params=[False, True], ids=["loader-before", "loader-after"])
def adopted(
    request: pytest.FixtureRequest, store: tuple[str, dict[str, t.Any]], tmp_path: Path
) -> Flask:
    url, config = store
    return build(url, tmp_path, loader_after=request.param, **config)


def whoami(app: Flask, **cookies: str) -> str:
    """``/whoami`` from a fresh client holding only ``cookies``."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client.get("/whoami").get_data(as_text=True)


def captured(client: t.Any) -> dict[str, str]:
    found = {}
    for name in ("session", "remember_token"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            found[name] = cookie.value
    return found


def test_the_bundle_s_logout_ends_the_login(adopted: Flask) -> None:
    client = adopted.test_client()
    answer = client.post(
        "/auth/login", json={"email": EMAIL, "password": PASSWORD, "remember": True}
    )
    assert answer.status_code == 200, answer.json
    cookies = captured(client)
    assert set(cookies) == {"session", "remember_token"}
    assert whoami(adopted, session=cookies["session"]) == EMAIL
    assert whoami(adopted, remember_token=cookies["remember_token"]) == EMAIL

    out = client.post("/auth/logout", headers={"X-CSRF-Token": answer.json["csrf_token"]})
    assert out.status_code == 204
    assert client.get("/whoami").get_data(as_text=True) == "anonymous"
    for name, value in cookies.items():
        assert whoami(adopted, **{name: value}) == "anonymous", name
    assert whoami(adopted, **cookies) == "anonymous"


def test_the_app_s_own_logout_view_ends_the_login(adopted: Flask) -> None:
    client = adopted.test_client()
    signed = client.post("/signin", data={"email": EMAIL, "password": PASSWORD, "remember": "1"})
    assert signed.get_data(as_text=True) == "yes"
    cookies = captured(client)
    assert whoami(adopted, **cookies) == EMAIL
    assert whoami(adopted, remember_token=cookies["remember_token"]) == EMAIL

    assert client.post("/signout").get_data(as_text=True) == "bye"
    for name, value in cookies.items():
        assert whoami(adopted, **{name: value}) == "anonymous", name


def test_users_sessions_lists_and_ends_the_logins(adopted: Flask) -> None:
    laptop, phone = adopted.test_client(), adopted.test_client()
    for client in (laptop, phone):
        client.post("/signin", data={"email": EMAIL, "password": PASSWORD, "remember": "1"})
    runner = adopted.test_cli_runner()
    listed = runner.invoke(args=["users", "sessions", EMAIL])
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.strip().splitlines()) == 2, listed.output

    ended = runner.invoke(args=["users", "sessions", EMAIL, "--revoke-all"])
    assert ended.exit_code == 0 and "revoked 2 sessions" in ended.output, ended.output
    for client in (laptop, phone):
        for name, value in captured(client).items():
            assert whoami(adopted, **{name: value}) == "anonymous", name


def test_a_session_the_app_wrote_itself_without_a_record_is_not_a_login(
    adopted: Flask,
) -> None:
    """A session cookie signed with the key but without a record (made before the upgrade, or
    forged by a test) is anonymous: the record is what makes a login."""
    client = adopted.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
        session["_fresh"] = True
    assert client.get("/whoami").get_data(as_text=True) == "anonymous"


def test_login_client_logs_in_with_a_record(adopted: Flask) -> None:
    client = adopted.test_client()
    with adopted.app_context():
        member = owndb.session.scalar(sa.select(Member))
        login_client(client, member)
        owndb.session.commit()  # the record is written in the caller's transaction
    assert client.get("/whoami").get_data(as_text=True) == EMAIL
    with client.session_transaction() as session:
        login_id = session[sessions.SESSION_KEY]
    with adopted.test_request_context():
        auth = adopted.extensions["complete.auth"]
        auth.sessions.revoke(login_id)
        owndb.session.commit()
    assert client.get("/whoami").get_data(as_text=True) == "anonymous"


def test_app_code_reads_its_own_user_id(adopted: Flask) -> None:
    """The app's loader and its own reads of Flask-Login's session key see the id it gave."""
    client = adopted.test_client()
    client.post("/signin", data={"email": EMAIL, "password": PASSWORD})
    with client.session_transaction() as session:
        assert session["_user_id"] == "1"

"""Bounded requests and the JSON-API helpers: a body limit per environment, the bundle's JSON
endpoints reading at most 64 KiB and refusing deep nesting before parsing, clean text fields, ids
bounded to their column, JSON errors under a URL prefix, and 503 when the database is lost
before the request sent a COMMIT (500 after)."""

from __future__ import annotations

import io
import json
import logging
import tracemalloc
import typing as t
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, Proxy, add_user, dispose, make_app
from flask import Flask, abort, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.exceptions import NotFound
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flask_complete import Complete, api

pytest_plugins = ["authapps"]
MIB = 1024 * 1024


class Base(DeclarativeBase):
    pass


#: Its own instance: the shared one's metadata is the example app's.
db = SQLAlchemy(model_class=Base)


class Thing(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "api_thing"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(20))
    big: Mapped[int] = mapped_column(sa.BigInteger, default=0)


def json_app(tmp_path: Path, url: str = "sqlite://", **config: t.Any) -> Flask:
    """A small JSON API on ``flask_complete.db`` with the helpers installed under ``/api/``."""
    app = Flask("jsonapi")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url, **config)
    Complete(app, db=db, env="testing", root=tmp_path)
    api.init_app(app)
    with app.app_context():
        Thing.__table__.create(db.engine, checkfirst=True)

    @app.post("/api/things")
    def create() -> t.Any:
        data = api.json_body()
        thing = Thing(name=api.text(data, "name", column=Thing.name))
        db.session.add(thing)
        db.session.commit()
        return {"id": thing.id}, 201

    @app.get("/api/things/<id:thing_id>")
    def read(thing_id: int) -> t.Any:
        thing = db.get_or_404(Thing, thing_id, description="No such thing.")
        return {"id": thing.id, "name": thing.name}

    @app.get("/api/big/<bigid:value>")
    def big(value: int) -> t.Any:
        return {"count": db.session.scalar(sa.select(sa.func.count()).where(Thing.big == value))}

    @app.get("/api/boom")
    def boom() -> t.Any:
        raise RuntimeError("a bug")

    @app.post("/api/forbidden")
    def forbidden() -> t.Any:
        abort(403, description="Not yours.")

    @app.get("/page")
    def page() -> t.Any:
        return {"things": db.session.scalar(sa.select(sa.func.count()).select_from(Thing))}

    return app


# --- the body limit per environment ----------------------------------------------------------


@pytest.mark.parametrize("env", ["development", "testing", "production"])
def test_every_environment_bounds_the_body(tmp_path: Path, env: str) -> None:
    app = Flask("limits")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, env=env, root=tmp_path)
    assert app.config["MAX_CONTENT_LENGTH"] == 4 * MIB


def test_the_limit_is_overridable_in_the_settings_and_in_code(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[production]\nMAX_CONTENT_LENGTH = 10485760\n")
    app = Flask("limits")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, env="production", root=tmp_path)
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * MIB
    coded = Flask("limits")
    coded.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    coded.config["MAX_CONTENT_LENGTH"] = 100
    Complete(coded, env="production", root=tmp_path)
    assert coded.config["MAX_CONTENT_LENGTH"] == 100


def test_a_bad_limit_is_refused_with_the_fix(tmp_path: Path) -> None:
    from flask_complete import ConfigError

    (tmp_path / "settings.toml").write_text('[default]\nMAX_CONTENT_LENGTH = "4MB"\n')
    app = Flask("limits")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH"):
        Complete(app, env="development", root=tmp_path)


# --- the bundle's JSON endpoints read at most 64 KiB ------------------------------------------


def peak_bytes(
    app: Flask, body: bytes, path: str = "/auth/login", **kw: t.Any
) -> tuple[int, t.Any]:
    """The app's own peak allocation for one request (the request is built before tracing)."""
    environ = EnvironBuilder(
        path=path, method="POST", data=body, content_type="application/json", **kw
    ).get_environ()
    tracemalloc.start()
    try:
        app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, (status, b"".join(app_iter))


@pytest.mark.parametrize("limit", [None, 64 * MIB])
def test_a_20_mb_login_is_refused_unread(tmp_path: Path, limit: int | None) -> None:
    """Even with no (or a large) MAX_CONTENT_LENGTH, /auth/login reads at most 64 KiB."""
    app = make_app("sqlite://", tmp_path, MAX_CONTENT_LENGTH=limit)
    body = json.dumps({"email": "x" * (20 * MIB), "password": PASSWORD}).encode()
    peak, (status, data) = peak_bytes(app, body)
    assert status.startswith("413"), (status, data[:200])
    assert "at most 64 KiB" in json.loads(data)["error"]
    assert peak < 2 * MIB, peak
    dispose(app)


def test_production_refuses_a_20_mb_body_anywhere(tmp_path: Path) -> None:
    app = make_app(
        f"sqlite:///{tmp_path / 'p.sqlite3'}",
        tmp_path,
        env="production",
        AUTH_PASSWORD_METHOD="scrypt:1024:8:1",
    )
    response = app.test_client().post(
        "/auth/login", data=b"x" * (20 * MIB), content_type="application/json"
    )
    assert response.status_code == 413 and response.is_json
    dispose(app)


def test_a_chunked_body_without_a_length_is_bounded_too(tmp_path: Path) -> None:
    app = make_app("sqlite://", tmp_path)
    body = json.dumps({"email": "x" * MIB, "password": PASSWORD}).encode()
    environ = EnvironBuilder(
        path="/auth/login",
        method="POST",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413"), (status, b"".join(app_iter))


@pytest.mark.parametrize("depth", [40, 100_000 // 4])
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, depth: int) -> None:
    app = make_app("sqlite://", tmp_path)
    add_user(app)
    nested = "[" * depth + "]" * depth
    body = f'{{"email": {nested}, "password": "{PASSWORD}"}}'
    response = app.test_client().post("/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400, response.data
    assert "nested more than 32 deep" in response.json["error"]
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"email": "[" * 1000, "password": "x" * 12})
    response = app.test_client().post("/auth/login", data=text, content_type="application/json")
    assert response.status_code == 401


# --- the helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "control characters"),
        ("a\x1bb", "control characters"),
        ("\ud800", "not valid text"),
        ("x" * 21, "at most 20 characters"),
        ("   ", "required"),
        (5, "must be a string"),
    ],
)
def test_text_refuses_what_the_database_would_choke_on(
    tmp_path: Path, value: t.Any, message: str
) -> None:
    app = json_app(tmp_path)
    response = app.test_client().post("/api/things", json={"name": value})
    assert response.status_code == 400, response.data
    error = response.json["error"]
    assert message in error and "'name'" in error and "codec" not in error
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Thing)) == 0
        db.engine.dispose()


def test_text_keeps_good_text_and_lines_when_asked(tmp_path: Path) -> None:
    app = json_app(tmp_path)
    with app.test_request_context():
        assert api.text({"n": "  ok  "}, "n") == "ok"
        assert api.text({"n": "a\nb\tc"}, "n", multiline=True) == "a\nb\tc"
        assert api.text({}, "n", required=False) is None
        assert api.text({"n": "日本語"}, "n", max_length=3) == "日本語"


NO_ROUTE = NotFound.description


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/things/0", 404, NO_ROUTE),
        ("/api/things/2147483648", 404, NO_ROUTE),
        ("/api/things/99999999999999999999999", 404, NO_ROUTE),
        ("/api/things/-1", 404, NO_ROUTE),
        ("/api/things/2147483647", 404, "No such thing."),
        ("/api/big/9223372036854775807", 200, None),
        ("/api/big/9223372036854775808", 404, NO_ROUTE),
    ],
)
def test_ids_are_bounded_to_the_column_type(
    tmp_path: Path, pg_url: str, path: str, status: int, error: str | None
) -> None:
    app = json_app(tmp_path, pg_url)
    response = app.test_client().get(path)
    assert response.status_code == status, response.data
    assert response.json.get("error") == error
    with app.app_context():
        db.engine.dispose()


def test_fits() -> None:
    assert api.fits(Thing.id, 2**31 - 1) and not api.fits(Thing.id, 2**31)
    assert not api.fits(Thing.id, 0) and api.fits(Thing.big, 2**63 - 1)
    assert not api.fits(Thing.big, 2**63) and not api.fits(Thing.id, "1")


def test_errors_under_the_prefix_are_json_and_elsewhere_untouched(tmp_path: Path) -> None:
    app = json_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    for method, path, status in (
        ("GET", "/api/nothing", 404),
        ("DELETE", "/api/things", 405),
        ("POST", "/api/forbidden", 403),
        ("GET", "/api/boom", 500),
    ):
        response = client.open(path, method=method)
        assert response.status_code == status and response.is_json, (path, response.data)
        assert response.json["error"]
    assert client.post("/api/forbidden").json == {"error": "Not yours."}
    assert "bug" not in client.get("/api/boom").json["error"]  # no internals
    page = client.get("/nothing")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_the_app_s_own_handlers_win(tmp_path: Path) -> None:
    app = json_app(tmp_path)

    @app.errorhandler(404)
    def mine(error: t.Any) -> t.Any:
        return "my own 404", 404

    assert app.test_client().get("/api/nothing").get_data(as_text=True) == "my own 404"


def test_a_csrf_refusal_under_the_prefix_is_json(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'c.sqlite3'}", tmp_path)
    api.init_app(app)

    @app.post("/api/notes")
    def notes() -> t.Any:
        return {}

    add_user(app)
    client = app.test_client()
    assert client.post("/auth/login", json={"email": "ann@example.test", "password": PASSWORD})
    refused = client.post("/api/notes")
    assert refused.status_code == 403 and refused.is_json
    assert "CSRF token missing" in refused.json["error"]
    dispose(app)


def test_init_app_twice_is_an_error(tmp_path: Path) -> None:
    app = json_app(tmp_path)
    with pytest.raises(RuntimeError, match="once"):
        api.init_app(app)


# --- a lost database is a 503 -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_lost_database_is_a_503_with_retry_after(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url" if kind == "postgres" else "mysql_url")
    parsed = sa.make_url(url)
    proxy = Proxy((parsed.host or "127.0.0.1", int(parsed.port or 0)))
    app = json_app(tmp_path, proxy.url(url), DATABASE_POOL_TIMEOUT=2)
    client = app.test_client()
    assert client.post("/api/things", json={"name": "kept"}).status_code == 201
    proxy.cut()
    for path in ("/api/things/1", "/page"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.data)
        assert response.headers["Retry-After"].isdigit()
    assert client.get("/api/things/1").json == {
        "error": "The database is unavailable; try again shortly."
    }
    assert client.get("/page").mimetype == "text/html"
    with app.app_context():
        db.engine.dispose()


def test_a_lost_database_at_login_is_a_503(tmp_path: Path, pg_url: str) -> None:
    parsed = sa.make_url(pg_url)
    proxy = Proxy((parsed.host or "127.0.0.1", int(parsed.port or 0)))
    app = make_app(proxy.url(pg_url), tmp_path)
    add_user(app)
    client = app.test_client()
    assert client.post("/auth/login", json={"email": "ann@example.test", "password": PASSWORD})
    proxy.cut()
    for method, path in (("POST", "/auth/login"), ("GET", "/auth/me"), ("GET", "/auth/tokens")):
        body = {"email": "ann@example.test", "password": PASSWORD} if method == "POST" else None
        response = client.open(path, method=method, json=body)
        assert response.status_code == 503, (path, response.data)
        assert response.headers["Retry-After"].isdigit() and "error" in response.json
    dispose(app)


def test_request_is_untouched_outside_the_helpers(tmp_path: Path) -> None:
    """init_app adds no request hook: a request that raises nothing pays nothing."""
    app = Flask("bare")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, db=SQLAlchemy(), env="testing", root=tmp_path)
    before = (dict(app.before_request_funcs), dict(app.after_request_funcs))
    api.init_app(app)
    assert (dict(app.before_request_funcs), dict(app.after_request_funcs)) == before


# --- a 503 means nothing was written -----------------------------------------------------------

#: What a view does before its database fails: add and flush a row, commit, read.
STEPS = st.lists(st.sampled_from(["write", "commit", "read"]), max_size=6)


def failing_app(tmp_path: Path) -> Flask:
    """``json_app`` on a SQLite file, with a view (under /api/ and not) that runs the steps it
    is sent, then fails as a lost database does (a real ``OperationalError``: no such table)."""
    app = json_app(tmp_path, f"sqlite:///{tmp_path / 'steps.sqlite3'}")
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def steps() -> t.Any:
        data = api.json_body()
        for step in data["steps"]:
            if step == "write":
                db.session.add(Thing(name=data["tag"]))
                db.session.flush()
            elif step == "commit":
                db.session.commit()
            else:
                db.session.scalar(sa.select(sa.func.count()).select_from(Thing))
        db.session.execute(sa.text("SELECT * FROM lost"))
        return {}

    @app.post("/engine")
    def engine_write() -> t.Any:
        # A commit outside the session counts as much as one through it.
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Thing).values(name=api.json_body()["tag"]))
        db.session.execute(sa.text("SELECT * FROM lost"))
        return {}

    app.add_url_rule("/api/steps", "api_steps", steps, methods=["POST"])
    app.add_url_rule("/steps", "steps", steps, methods=["POST"])
    return app


def test_a_lost_database_is_a_503_only_while_nothing_can_be_written(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    app = failing_app(tmp_path_factory.mktemp("steps"))
    client = app.test_client()

    @settings(max_examples=60, deadline=None, database=None)
    @given(steps=STEPS, prefix=st.sampled_from(["/api", ""]))
    def answer(steps: list[str], prefix: str) -> None:
        tag = uuid.uuid4().hex[:20]
        response = client.post(f"{prefix}/steps", json={"steps": steps, "tag": tag})
        # A commit sends a COMMIT when a step began a transaction; what it commits is kept.
        sent, begun, pending, kept = False, False, 0, 0
        for step in steps:
            if step == "commit":
                sent, kept = sent or begun, kept + pending
                begun, pending = False, 0
            else:
                begun, pending = True, pending + (step == "write")
        assert response.status_code == (500 if sent else 503), (steps, response.data)
        assert response.is_json == (prefix == "/api")
        assert ("Retry-After" in response.headers) == (not sent)
        with app.app_context():
            query = sa.select(sa.func.count()).select_from(Thing).where(Thing.name == tag)
            assert db.session.scalar(query) == kept  # 0 for every 503

    answer()
    with app.app_context():
        db.engine.dispose()


def test_a_commit_outside_the_session_counts_and_the_500_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = failing_app(tmp_path)
    with caplog.at_level(logging.ERROR, logger="flask_complete.api"):
        response = app.test_client().post("/engine", json={"tag": "kept"})
    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert "after this request sent a COMMIT" in caplog.text and "no such table" in caplog.text
    with app.app_context():
        assert db.session.scalar(sa.select(Thing.name)) == "kept"
        db.engine.dispose()


def test_committed_is_per_request(tmp_path: Path) -> None:
    app = failing_app(tmp_path)
    assert not api.committed()  # outside a request
    client = app.test_client()
    assert (
        client.post("/api/steps", json={"steps": ["write", "commit"], "tag": "a"}).status_code
        == 500
    )
    # The next request starts afresh.
    assert client.post("/api/steps", json={"steps": ["write"], "tag": "b"}).status_code == 503
    with app.test_request_context():
        assert not api.committed()
        with db.engine.begin() as conn:
            conn.execute(sa.select(1))
        assert api.committed()
        db.engine.dispose()


def test_an_app_s_own_handler_keeps_the_rule_with_database_error(tmp_path: Path) -> None:
    app = Flask("own")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'o.db'}")
    Complete(app, db=db, env="testing", root=tmp_path)
    with app.app_context():
        Thing.__table__.create(db.engine)

    @app.errorhandler(sa.exc.OperationalError)
    def mine(error: Exception) -> t.Any:
        failure = api.database_error(error)
        return {"mine": failure.code}, failure.code

    api.init_app(app)  # after the app's own handler: it is kept

    @app.post("/things")
    def create() -> t.Any:
        db.session.add(Thing(name=request.args["n"]))
        if "commit" in request.args:
            db.session.commit()
        db.session.execute(sa.text("SELECT * FROM lost"))
        return {}

    client = app.test_client()
    assert client.post("/things?n=a").json == {"mine": 503}
    assert client.post("/things?n=b&commit=1").json == {"mine": 500}
    with app.app_context():
        db.engine.dispose()

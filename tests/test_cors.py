"""CORS from the settings: whole-origin globs, defaults per environment, refusals, preflights."""

from __future__ import annotations

import http.client
import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, abort
from werkzeug.serving import make_server

from flask_complete import Complete, ConfigError
from flask_complete.extension import get_state
from flask_complete.web.cors import OriginError, origin_pattern, path_pattern

STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


def make_app(tmp_path: Path, env: str = "production", **config: t.Any) -> Flask:
    """A production (by default) app with a strong secret, a SQLite file and an /api route."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}"
    )
    app.config.update(config)
    Complete(app, env=env, root=tmp_path)

    @app.route("/api/items", methods=["GET", "POST"])
    def items() -> t.Any:
        return {"items": []}

    @app.get("/api/missing")
    def missing() -> t.Any:
        abort(404)

    @app.get("/api/broken")
    def broken() -> t.Any:
        raise RuntimeError("boom")

    @app.get("/page")
    def page() -> str:
        return "html"

    return app


def cors_headers(headers: t.Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize(
    ("entry", "origin", "allowed"),
    [
        ("https://app.example.com", "https://app.example.com", True),
        ("https://app.example.com", "HTTPS://APP.EXAMPLE.COM", True),
        ("https://app.example.com", "https://app.example.com.evil.test", False),
        ("https://app.example.com", "https://app.example.com:8443", False),
        ("https://app.example.com", "http://app.example.com", False),
        ("https://app.example.com:443", "https://app.example.com", True),
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://a.example.com.evil.test", False),
        ("https://*.example.com", "https://evil.test/a.example.com", False),
        ("https://*.example.com", "https://evilexample.com", False),
        ("http://localhost:*", "http://localhost:5173", True),
        ("http://localhost:*", "http://localhost", True),
        ("http://localhost:*", "http://localhost.evil.test", False),
        ("http://localhost:*", "http://localhost:5173.evil.test", False),
        ("http://localhost:*", "http://localhost:5173\n", False),
        ("http://[::1]:*", "http://[::1]:8000", True),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8000", "http://127.0.0.1:80001", False),
    ],
)
def test_origin_globs_match_whole_origins(entry: str, origin: str, allowed: bool) -> None:
    assert bool(origin_pattern(entry).match(origin)) is allowed


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (r"https://.*\.example\.com", "looks like a regular expression"),
        (r"^https://app\.example\.com$", "looks like a regular expression"),
        ("https://app.example.com/", "an origin has no path"),
        ("app.example.com", "is not an origin"),
        ("https://app*.example.com", "is not an origin"),
        ("null", "is not an origin"),
        ("https://*.com", "would allow every site under .com"),
    ],
)
def test_bad_origin_entries_are_refused(entry: str, message: str) -> None:
    with pytest.raises(OriginError, match=message):
        origin_pattern(entry)


def test_path_globs_are_anchored() -> None:
    assert path_pattern("/api/*").match("/api/notes/1")
    assert not path_pattern("/api/*").match("/apiary")
    assert not path_pattern("/auth/*").match("/other/auth/x")


def test_preflight_from_allowed_origin(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        CORS_ORIGINS=["https://app.example.com"],
        CORS_SUPPORTS_CREDENTIALS=True,
        CORS_MAX_AGE=900,
    )
    response = app.test_client().options(
        "/api/items", headers={"Origin": "https://app.example.com", **PREFLIGHT}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Max-Age"] == "900"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"


@pytest.mark.parametrize(
    "origin", ["https://evil.test", "https://app.example.com.evil.test", "null"]
)
def test_disallowed_origin_gets_no_cors_header(tmp_path: Path, origin: str) -> None:
    app = make_app(tmp_path, CORS_ORIGINS=["https://app.example.com"])
    client = app.test_client()
    preflight = client.options("/api/items", headers={"Origin": origin, **PREFLIGHT})
    assert cors_headers(preflight.headers) == {}
    actual = client.get("/api/items", headers={"Origin": origin})
    assert actual.status_code == 200
    assert cors_headers(actual.headers) == {}


def test_only_the_configured_resources_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path, CORS_ORIGINS=["https://app.example.com"])
    response = app.test_client().get("/page", headers={"Origin": "https://app.example.com"})
    assert cors_headers(response.headers) == {}


def test_request_without_origin_gets_no_cors_headers(tmp_path: Path) -> None:
    app = make_app(tmp_path, CORS_ORIGINS=["https://app.example.com"])
    response = app.test_client().get("/api/items")
    assert cors_headers(response.headers) == {}
    assert "Vary" not in response.headers


def test_actual_request_exposes_headers(tmp_path: Path) -> None:
    app = make_app(
        tmp_path, CORS_ORIGINS=["https://*.example.com"], CORS_EXPOSE_HEADERS=["X-Total"]
    )
    response = app.test_client().get("/api/items", headers={"Origin": "https://a.example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example.com"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Total"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(("path", "status"), [("/api/missing", 404), ("/api/broken", 500)])
def test_error_responses_carry_cors_headers(tmp_path: Path, path: str, status: int) -> None:
    """So the page can read the error instead of seeing an opaque network failure."""
    app = make_app(tmp_path, CORS_ORIGINS=["https://app.example.com"])
    response = app.test_client().get(path, headers={"Origin": "https://app.example.com"})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_development_allows_localhost_on_any_port(tmp_path: Path) -> None:
    client = make_app(tmp_path, env="development").test_client()
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "http://localhost"):
        response = client.options("/api/items", headers={"Origin": origin, **PREFLIGHT})
        assert response.headers["Access-Control-Allow-Origin"] == origin
    for origin in ("http://localhost.evil.test", "https://localhost:5173", "http://evil.test"):
        response = client.options("/api/items", headers={"Origin": origin, **PREFLIGHT})
        assert cors_headers(response.headers) == {}


@pytest.mark.parametrize("env", ["testing", "production"])
def test_testing_and_production_allow_no_origin_by_default(tmp_path: Path, env: str) -> None:
    plain = Flask(__name__)
    app = make_app(tmp_path, env=env)
    # Nothing is registered: no per-request cost at all.
    assert len(app.after_request_funcs.get(None, [])) == len(
        plain.after_request_funcs.get(None, [])
    )
    response = app.test_client().options(
        "/api/items", headers={"Origin": "http://localhost:5173", **PREFLIGHT}
    )
    assert cors_headers(response.headers) == {}


def test_origins_from_the_environment(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLASK_CORS_ORIGINS", '["https://app.example.com"]')
    client = make_app(tmp_path).test_client()
    response = client.get("/api/items", headers={"Origin": "https://app.example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_origins_from_settings_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    (tmp_path / "settings.toml").write_text(
        '[production]\nCORS_ORIGINS = ["https://*.example.com"]\nCORS_MAX_AGE = 60\n'
    )
    client = make_app(tmp_path).test_client()
    response = client.options(
        "/api/items", headers={"Origin": "https://a.example.com", **PREFLIGHT}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example.com"
    assert response.headers["Access-Control-Max-Age"] == "60"


@pytest.mark.parametrize("env", ["production", "development"])
def test_wildcard_with_credentials_stops_init(tmp_path: Path, env: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_app(tmp_path, env=env, CORS_ORIGINS=["*"], CORS_SUPPORTS_CREDENTIALS=True)
    message = info.value.format_message()
    assert "[cors.wildcard_credentials]" in message
    assert 'Browsers reject "Access-Control-Allow-Origin: *"' in message
    assert "CORS_SUPPORTS_CREDENTIALS = false" in message
    assert 'CORS_ORIGINS = ["https://app.example.com"]' in message


def test_wildcard_without_credentials_reflects_without_credentials(tmp_path: Path) -> None:
    app = make_app(tmp_path, CORS_ORIGINS=["*"])
    response = app.test_client().get("/api/items", headers={"Origin": "https://any.test"})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://any.test")
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_raw_regex_stops_init_with_the_glob_to_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_app(tmp_path, CORS_ORIGINS=[r"https://.*\.example\.com"])
    message = info.value.format_message()
    assert "looks like a regular expression" in message
    assert '"https://*.example.com"' in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CORS_MAX_AGE", "ten", "a whole number of seconds"),
        ("CORS_SUPPORTS_CREDENTIALS", "yes", "true or false"),
        ("CORS_RESOURCES", ["api/*"], 'starting with "/"'),
        ("CORS_ORIGINS", 42, "is not a list of origins"),
    ],
)
def test_bad_settings_are_reported(tmp_path: Path, key: str, value: t.Any, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        make_app(tmp_path, **{key: value})


def test_collect_mode_records_the_refusal(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI="sqlite://",
        CORS_ORIGINS=["*"],
        CORS_SUPPORTS_CREDENTIALS=True,
    )
    Complete(env="production", root=tmp_path).init_app(app, collect=True)
    assert [p.id for p in get_state(app).problems] == ["cors.wildcard_credentials"]


def test_cors_can_be_switched_off(tmp_path: Path) -> None:
    app = make_app(tmp_path, COMPLETE_CORS=False, CORS_ORIGINS=["https://app.example.com"])
    response = app.test_client().get("/api/items", headers={"Origin": "https://app.example.com"})
    assert cors_headers(response.headers) == {}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """The app behind a real WSGI server on loopback; yields the port."""
    app = make_app(
        tmp_path,
        CORS_ORIGINS=["https://app.example.com"],
        CORS_SUPPORTS_CREDENTIALS=True,
        CORS_MAX_AGE=600,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _options(port: int, origin: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("OPTIONS", "/api/items", headers={"Origin": origin, **PREFLIGHT})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def test_real_http_preflight(served: int) -> None:
    status, headers = _options(served, "https://app.example.com")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Max-Age"] == "600"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    status, headers = _options(served, "https://evil.test")
    assert status == 200
    assert cors_headers(headers) == {}


def test_auth_never_blocks_a_real_preflight(tmp_path: Path) -> None:
    """The example app's login-protected endpoints answer preflights, and their 401s carry
    CORS headers so the page can read them."""
    from example_app import create_app

    app = create_app(
        {
            "SECRET_KEY": STRONG,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'notes.sqlite3'}",
            "CORS_ORIGINS": ["https://app.example.com"],
            "CORS_SUPPORTS_CREDENTIALS": True,
        }
    )
    client = app.test_client()
    origin = {"Origin": "https://app.example.com"}
    for path in ("/auth/me", "/auth/login", "/auth/logout", "/api/notebooks"):
        preflight = client.options(path, headers={**origin, **PREFLIGHT})
        assert preflight.status_code == 200, path
        assert preflight.headers["Access-Control-Allow-Origin"] == origin["Origin"], path
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true", path
    anonymous = client.get("/auth/me", headers=origin)
    assert anonymous.status_code == 401
    assert anonymous.headers["Access-Control-Allow-Origin"] == origin["Origin"]


def _reference(app: Flask) -> Flask:
    """The same routes with flask-cors registered directly, on the options the bundle gave it."""
    from flask_cors import CORS

    from flask_complete.web.cors import options

    reference = Flask(__name__)
    reference.config.update(app.config)
    kwargs, problems = options(app.config)
    assert kwargs and not problems
    CORS(reference, **kwargs)
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            reference.add_url_rule(
                rule.rule,
                rule.endpoint,
                app.view_functions[rule.endpoint],
                methods=rule.methods,
                provide_automatic_options=getattr(rule, "provide_automatic_options", None),
            )
    return reference


def _with_cors_views(app: Flask) -> Flask:
    from flask_cors import cross_origin

    @app.get("/api/preset")
    def preset() -> t.Any:
        return "preset", 200, {"Access-Control-Allow-Origin": "https://other.example.com"}

    @app.get("/api/decorated")
    @cross_origin(origins=["https://decorated.example.com"])
    def decorated() -> str:
        return "decorated"

    return app


CORS_VARIANTS = [
    {"CORS_ORIGINS": ["https://app.example.com"], "CORS_SUPPORTS_CREDENTIALS": True},
    {
        "CORS_ORIGINS": ["https://app.example.com", "https://*.example.org", "http://localhost:*"],
        "CORS_EXPOSE_HEADERS": ["X-Total"],
        "CORS_MAX_AGE": 60,
        "CORS_ALLOW_PRIVATE_NETWORK": True,
    },
    {"CORS_ORIGINS": ["*"], "CORS_RESOURCES": ["/api/*"]},
]
ORIGINS = [
    None,
    "https://app.example.com",
    "HTTPS://App.Example.Com",
    "https://a.example.org",
    "http://localhost:5173",
    "http://localhost",
    "https://evil.test",
    "https://app.example.com.evil.test",
    "null",
]
PATHS = [
    "/api/items",
    "/api/%69tems",
    "/API/items",
    "/api/missing",
    "/api/broken",
    "/api/preset",
    "/api/decorated",
    "/auth/unknown",
    "/page",
]
REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("GET", {}),
    ("POST", {}),
    ("HEAD", {}),
    ("OPTIONS", PREFLIGHT),
    ("GET", {"Access-Control-Request-Private-Network": "true"}),
    ("OPTIONS", {**PREFLIGHT, "Access-Control-Request-Private-Network": "true"}),
]


@pytest.mark.parametrize("config", CORS_VARIANTS, ids=["credentials", "globs", "wildcard"])
def test_cors_headers_are_flask_corss_own(tmp_path: Path, config: dict[str, t.Any]) -> None:
    """The bundle answers a simple request from an origin seen before with the headers
    flask-cors added for it then: every answer, first or repeated, is the one flask-cors alone
    gives on the same options."""
    app = _with_cors_views(make_app(tmp_path, **config))
    reference = _reference(app)
    ours, theirs = app.test_client(), reference.test_client()
    compared = 0
    for _round in range(2):
        for origin in ORIGINS:
            for path in PATHS:
                for method, extra in REQUESTS:
                    headers = {**extra, **({"Origin": origin} if origin else {})}
                    got = ours.open(path, method=method, headers=headers)
                    want = theirs.open(path, method=method, headers=headers)
                    where = (method, path, origin, extra)
                    assert got.status_code == want.status_code, where
                    assert got.headers.to_wsgi_list() == want.headers.to_wsgi_list(), where
                    compared += 1
    assert compared == 2 * len(ORIGINS) * len(PATHS) * len(REQUESTS)


def test_many_origins_each_get_their_own_answer(tmp_path: Path) -> None:
    """More origins than the bundle keeps answers for: each still gets its own origin back."""
    app = make_app(tmp_path, CORS_ORIGINS=["http://localhost:*"])
    client = app.test_client()
    for _round in range(2):
        for port in range(3000, 3600):
            origin = f"http://localhost:{port}"
            response = client.get("/api/items", headers={"Origin": origin})
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert response.headers.getlist("Vary") == ["Origin"]

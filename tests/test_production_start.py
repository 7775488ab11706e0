"""Production start-up refuses what ``check --deploy`` calls an error and logs the rest; the one
table of checks and the docs list the same ids."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import flask_login
import pytest
from conftest import track
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from flask_complete import Complete, ConfigError
from flask_complete.auth import login_required
from flask_complete.checks import rules as c
from flask_complete.checks.database import check_auth_tables, check_database, check_migrations
from flask_complete.checks.secret_files import Committed
from flask_complete.checks.table import CHECKS
from flask_complete.checks.versions import Package
from flask_complete.extension import get_state

# Random: production refuses a key made of a repeated pattern as guessable.
STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "checks.rst"


def make_app(root: Path, env: str = "production", **config: t.Any) -> Flask:
    app = Flask("started", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update({"SECRET_KEY": STRONG, "SQLALCHEMY_DATABASE_URI": "sqlite://", **config})
    Complete(app, env=env, root=root)
    return track(app)


def test_an_error_of_check_deploy_is_refused_at_start(tmp_path: Path) -> None:
    unsafe = {"CORS_ORIGINS": ["http://app.example.com"], "CORS_SUPPORTS_CREDENTIALS": True}
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, **unsafe)
    (problem,) = caught.value.problems
    assert (problem.id, problem.level) == ("cors.http_origin", "error")
    assert "https://" in problem.fix
    # Outside production it starts, and check --deploy reports the same error.
    app = make_app(tmp_path, env="development", **unsafe)
    deploy = [f for f in c.run_checks(app, deploy=True) if f.level == "error"]
    assert [f.id for f in deploy] == ["cors.http_origin"]


def test_every_start_error_is_refused_and_every_warning_logged_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".secrets.toml").write_text(f'SECRET_KEY = "{STRONG}"\n')
    (tmp_path / ".secrets.toml").chmod(0o644)
    config = {
        "SESSION_COOKIE_HTTPONLY": False,  # False for Secure would be Flask's own default
        "CORS_ORIGINS": ["*", "http://app.example.com"],
        "SECRET_KEY": "changeme",
    }
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, **config)
    assert [p.id for p in caught.value.problems] == ["secret.weak"]
    del config["SECRET_KEY"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, "flask_complete"):
        app = make_app(tmp_path, **config)
    logged = [r.getMessage() for r in caplog.records if r.name == "flask_complete"]
    assert [line.split("]")[0] + "]" for line in logged] == [
        "[database.sqlite]",
        "[cookie.session_cookie_httponly]",
        "[cors.wildcard]",
        "[cors.http_origin]",
        "[secrets.readable]",
    ]
    assert all("\n" not in line for line in logged)
    assert "chmod 600 .secrets.toml" in logged[-1]
    # check reports what start-up logged.
    found = {f.id for f in c.run_checks(app)}
    assert {line[1 : line.index("]")] for line in logged} <= found


def test_start_up_and_check_share_one_gate(tmp_path: Path) -> None:
    """Collected (as `check` builds the app) or raised, the refusals are the same."""
    config = {"SECRET_KEY": "short", "DEBUG": True, "CORS_ORIGINS": ["*"]}
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, **config)
    refused = [p.id for p in caught.value.problems]
    assert refused == ["secret.weak", "debug.on"]
    from flask_complete import extension

    extension.collecting(True)
    try:
        app = make_app(tmp_path, **config)
    finally:
        extension.collecting(False)
    assert [p.id for p in get_state(app).problems] == refused
    errors = [f.id for f in c.run_checks(app) if f.level == "error"]
    assert errors == refused


class Admin(flask_login.UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def login_app(root: Path, env: str = "production", **config: t.Any) -> Flask:
    """An app with its own Flask-Login login and an admin-only view, each login_required."""
    app = Flask("forged", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update({"SECRET_KEY": STRONG, "SQLALCHEMY_DATABASE_URI": "sqlite://", **config})
    flask_login.LoginManager(app).user_loader(Admin)

    @app.post("/admin/notes")
    @flask_login.login_required
    def create_note() -> tuple[str, int]:
        return "created", 201

    @app.post("/admin/bundle-notes")
    @login_required
    def create_with_the_bundles_decorator() -> tuple[str, int]:
        return "created", 201

    Complete(app, env=env, root=root)
    return track(app)


def forge(key: str, data: dict[str, t.Any]) -> str:
    """A session cookie signed with ``key`` by Flask's own session serializer."""
    forger = Flask("forger")
    forger.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return serializer.dumps(data)


def test_a_weak_fallback_key_stops_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        login_app(tmp_path, SECRET_KEY_FALLBACKS=["dev"])
    (problem,) = caught.value.problems
    assert (problem.id, problem.key) == ("secret.weak", "SECRET_KEY_FALLBACKS")
    assert problem.message == (
        "SECRET_KEY_FALLBACKS[0] (from code) is 3 bytes; production needs at least 32."
    )
    assert "remove it from SECRET_KEY_FALLBACKS" in problem.fix
    # Every entry is judged, by its estimate, not only by its length.
    with pytest.raises(ConfigError) as caught:
        login_app(
            tmp_path, SECRET_KEY_FALLBACKS=[STRONG[::-1], "dev-secret-key-do-not-use-in-production"]
        )
    (problem,) = caught.value.problems
    assert problem.message.startswith("SECRET_KEY_FALLBACKS[1] (from code) is guessable: about ")
    # A string is no list: Flask would verify with each of its characters.
    with pytest.raises(ConfigError) as caught:
        login_app(tmp_path, SECRET_KEY_FALLBACKS=STRONG)
    assert "is a str, not a list" in caught.value.problems[0].message
    assert login_app(tmp_path, SECRET_KEY_FALLBACKS=[STRONG[::-1]]).name == "forged"


def test_what_a_weak_fallback_lets_in_a_cookie_forged_with_it(tmp_path: Path) -> None:
    """Outside production (where keys are not judged) the hazard the refusal closes: Flask 3.1
    verifies a session cookie with every fallback, so a cookie signed with "dev" logs in."""
    app = login_app(tmp_path, "development", SECRET_KEY_FALLBACKS=["dev"])
    client = app.test_client()
    assert client.post("/admin/notes").status_code == 401
    client.set_cookie("session", forge("dev", {"_user_id": "1", "_fresh": True}))
    assert client.post("/admin/notes").status_code == 201
    client.set_cookie("session", forge("not-a-fallback", {"_user_id": "1", "_fresh": True}))
    assert client.post("/admin/notes").status_code == 401


def test_login_disabled_stops_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        login_app(tmp_path, LOGIN_DISABLED=True)
    (problem,) = caught.value.problems
    assert (problem.id, problem.level) == ("auth.login_disabled", "error")
    assert "Remove LOGIN_DISABLED" in problem.fix
    # What it would let through: an anonymous POST to a login_required view.
    app = login_app(tmp_path, "development", LOGIN_DISABLED=True)
    assert app.test_client().post("/admin/notes").status_code == 201


def test_login_disabled_after_start_is_ignored_by_the_bundles_decorator(tmp_path: Path) -> None:
    app = login_app(tmp_path)
    app.config["LOGIN_DISABLED"] = True  # after Complete(app): start-up cannot see it
    anonymous = app.test_client().post("/admin/bundle-notes", base_url="https://localhost")
    assert anonymous.status_code == 401


def test_switches_that_disable_a_protection(tmp_path: Path) -> None:
    lax = {"SESSION_COOKIE_SAMESITE": "Lax"}
    assert c.check_switches(lax, login=True) == []
    (csrf,) = c.check_switches({**lax, "CSRF_PROTECT": False}, login=True)
    assert (csrf.id, csrf.level, csrf.key) == ("csrf.off", "warning", "CSRF_PROTECT")
    # Without a login the bundle's CSRF check has nothing to protect.
    assert c.check_switches({**lax, "CSRF_PROTECT": False}, login=False) == []
    (wtf,) = c.check_switches({"SESSION_COOKIE_SAMESITE": None, "WTF_CSRF_ENABLED": False}, False)
    assert (wtf.level, wtf.key) == ("error", "WTF_CSRF_ENABLED")
    assert "SESSION_COOKIE_SAMESITE does not stop" in wtf.message
    (throttle,) = c.check_switches({**lax, "AUTH_THROTTLE": False}, login=True)
    assert (throttle.id, throttle.level) == ("auth.throttle_off", "warning")
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, WTF_CSRF_ENABLED=False, SESSION_COOKIE_SAMESITE="None")
    assert [p.id for p in caught.value.problems] == ["csrf.off"]


def test_other_signing_keys_are_held_to_the_same_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, WTF_CSRF_SECRET_KEY="csrf-secret-key-for-production-2024")
    (problem,) = caught.value.problems
    assert (problem.key, problem.id) == ("WTF_CSRF_SECRET_KEY", "secret.weak")
    assert make_app(tmp_path, WTF_CSRF_SECRET_KEY=STRONG[::-1], JWT_SECRET_KEY=None)


AUDITED = """
import sys
from flask import Flask
from flask_complete import Complete

events = []
sys.addaudithook(
    lambda event, args: events.append(event)
    if event in ("socket.connect", "subprocess.Popen", "os.exec", "os.system")
    else None
)
app = Flask("started", root_path=sys.argv[1], instance_path=sys.argv[1] + "/instance")
app.config.update(
    SECRET_KEY="0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5",
    SQLALCHEMY_DATABASE_URI="postgresql+psycopg://app@127.0.0.1:9/app",  # nothing listens
)
Complete(app, env="production", root=sys.argv[1])
print(sorted(set(events)), app.extensions["complete"].problems)
"""


def test_start_up_opens_no_connection_and_runs_no_subprocess(tmp_path: Path) -> None:
    """A database that is down at start does not stop the app; git is not asked."""
    result = subprocess.run(
        [sys.executable, "-c", AUDITED, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


def test_secret_files_open_to_others(tmp_path: Path) -> None:
    assert c.readable_secret_files(tmp_path) == []
    (tmp_path / ".secrets.toml").write_text("X = 1\n")
    (tmp_path / ".env").write_text("X=1\n")
    for name, mode in ((".secrets.toml", 0o600), (".env", 0o400)):
        (tmp_path / name).chmod(mode)
    assert c.readable_secret_files(tmp_path) == []
    (tmp_path / ".secrets.toml").chmod(0o640)
    (tmp_path / ".env").chmod(0o602)
    assert c.readable_secret_files(tmp_path) == [(".secrets.toml", 0o640), (".env", 0o602)]
    group, world = c.check_readable(c.readable_secret_files(tmp_path))
    assert (group.id, group.level) == ("secrets.readable", "warning")
    assert "mode 0640: its group of this machine can read" in group.message
    assert "every user of this machine can change" in world.message
    assert world.fix.startswith("chmod 600 .env")


def test_the_table() -> None:
    ids = [check.id for check in CHECKS]
    assert len(ids) == len(set(ids))
    assert {check.level for check in CHECKS} == {"error", "warning"}
    # Only what needs nothing beyond the settings and files runs at start-up.
    assert {check.id for check in CHECKS if not check.at_start} == {
        "database.unreachable",
        "migrations.not_head",
        "migrations.unreadable",
        "auth.tables_missing",
        "auth.routes_shadowed",
        "database.unstamped",
        "database.env_mismatch",
        "secrets.tracked",
        "secrets.committed",
        "versions.outside",
        "credentials.plaintext",
        "credentials.key_tracked",
    }


def test_every_check_reports_an_id_of_the_table_at_its_level() -> None:
    everything = [
        *c.check_secret(None, "code"),
        *c.check_secret("changeme", "code"),
        *c.check_secret("short", "code"),
        *c.check_debug(c.DebugSource("here", "fix")),
        *c.check_sqlite("sqlite://"),
        *c.check_embedded({"SQLALCHEMY_DATABASE_URI": "postgresql+embedded:///app"}, {}),
        *check_database("sqlite://", "down"),
        *check_migrations({"b"}, {"a"}),
        *check_auth_tables(["auth_session"], "DATABASE_URL"),
        *c.check_cookies({"SESSION_COOKIE_HTTPONLY": False}, remember_cookie=True),
        *c.check_cookies({"REMEMBER_COOKIE_HTTPONLY": False}, remember_cookie=True),
        *c.check_cors(["*", "http://a.test"], credentials=False),
        *c.check_readable([(".env", 0o644)]),
        *c.check_throttle_fail_open({"AUTH_THROTTLE_FAIL_OPEN": True}, login=True),
        *c.check_tracked([".env"]),
        *c.check_committed([Committed("settings.toml", "[production] X_TOKEN", "a secret")]),
        *c.check_switches(
            {"LOGIN_DISABLED": True, "CSRF_PROTECT": False, "SESSION_COOKIE_SAMESITE": "Lax"},
            login=True,
        ),
        *c.check_switches({"AUTH_THROTTLE": False}, login=True),
        *c.check_versions([Package("flask", None, ">=3.1,<3.2", "3.0.3", False)]),
    ]
    table = {check.id: check.level for check in CHECKS}
    # Found where the migrations or the database's stamp are read (tested with them).
    elsewhere = {"migrations.unreadable", "database.unstamped", "database.env_mismatch"}
    # The credentials' checks read files and keys (tests/test_credentials.py).
    elsewhere |= {check.id for check in CHECKS if check.id.startswith("credentials.")}
    # The app's routes against the auth endpoints (tests/test_auth_routes.py).
    elsewhere.add("auth.routes_shadowed")
    assert {f.id for f in everything} == set(table) - elsewhere
    assert all(f.level == table[f.id] for f in everything)
    # The one exception the table names: an http:// origin with credentials is an error.
    (escalated,) = c.check_cors(["http://a.test"], credentials=True)
    assert escalated.level == "error" and "with credentials" in c._BY_ID[escalated.id].judges


def _documented() -> dict[str, tuple[str, str]]:
    """id -> (level, when) from the list-table of docs/checks.rst."""
    rows = re.findall(
        r"^   \* - ``([a-z_]+\.[a-z_]+)``\n     - (\w+)\n     - (\w+)\n", DOCS.read_text(), re.M
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _ids_in_code() -> set[str]:
    """Every id given to ``Problem(...)`` in the package (the init refusals)."""
    found = set()
    for path in (REPO / "flask_complete").rglob("*.py"):
        found.update(re.findall(r'Problem\(\s*"([a-z_]+\.[a-z_]+)"', path.read_text()))
    return found


def test_docs_list_every_id_with_its_level() -> None:
    documented = _documented()
    missing = ({check.id for check in CHECKS} | _ids_in_code()) - set(documented)
    assert not missing, f"add these ids to {DOCS.name}: {sorted(missing)}"
    for check in CHECKS:
        when = "start" if check.at_start else "check"
        assert documented[check.id] == (check.level, when), check.id
    # The init refusals: their module decides the level (some are warnings set in code).
    for problem_id in _ids_in_code() - {check.id for check in CHECKS}:
        level, when = documented[problem_id]
        assert when == "init" and level in ("error", "warning"), problem_id

"""``flask complete check``: each check, the collected run, and the real ``flask`` command."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import track
from flask import Flask
from flask.cli import ScriptInfo

from flask_complete import Complete
from flask_complete.checks import rules as c
from flask_complete.checks.database import check_database, check_migrations, database_error
from flask_complete.checks.versions import Package
from flask_complete.cli import complete_group
from flask_complete.extension import get_state
from flask_complete.settings import config as _config
from flask_complete.settings.config import Problem

# Random: production refuses a key made of a repeated pattern as guessable.
STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
REPO = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).with_name("flask"))
SAFE_COOKIES = {
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def ids(findings: list[Problem]) -> list[str]:
    return [f.id for f in findings]


class TestPureChecks:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, ["secret.missing"]),
            ("changeme", ["secret.weak"]),
            ("short-but-random-9f8a", ["secret.weak"]),
            ("flask-complete-example-secret-key-2024", ["secret.weak"]),
            (STRONG, []),
        ],
    )
    def test_secret(self, value: str | None, expected: list[str]) -> None:
        found = c.check_secret(value, "code")
        assert ids(found) == expected
        assert all("token_urlsafe" in f.fix for f in found)

    def test_debug(self) -> None:
        assert c.check_debug(None) == []
        source = c.DebugSource("FLASK_DEBUG=1 in the environment", "Unset FLASK_DEBUG.")
        (finding,) = c.check_debug(source)
        assert (finding.id, finding.level) == ("debug.on", "error")
        assert "(FLASK_DEBUG=1 in the environment)" in finding.message
        assert finding.fix == "Unset FLASK_DEBUG."

    def test_sqlite_is_a_warning(self) -> None:
        (finding,) = c.check_sqlite("sqlite:////srv/app.sqlite3")
        assert (finding.id, finding.level) == ("database.sqlite", "warning")
        assert c.check_sqlite("postgresql+psycopg://db/app") == []

    def test_database_error_hides_the_password(self) -> None:
        (finding,) = check_database("postgresql://app:hunter2@db/app", "connection refused")
        assert finding.id == "database.unreachable"
        assert "hunter2" not in finding.message and "connection refused" in finding.message
        assert check_database("postgresql://db/app", None) == []

    def test_migrations(self) -> None:
        assert check_migrations({"b2"}, {"b2"}) == []
        assert check_migrations(set(), set()) == []
        (finding,) = check_migrations({"b2"}, {"a1"})
        assert finding.id == "migrations.not_head"
        assert "at a1" in finding.message and "head is b2" in finding.message
        assert "flask db upgrade" in finding.fix
        (finding,) = check_migrations({"b2"}, set())
        assert "no migration applied" in finding.message

    def test_cookies(self) -> None:
        flask_defaults = Flask(__name__).config
        found = c.check_cookies(flask_defaults, remember_cookie=False)
        assert ids(found) == ["cookie.session_cookie_secure", "cookie.session_cookie_samesite"]
        assert {f.level for f in found} == {"warning"}
        assert c.check_cookies(SAFE_COOKIES, remember_cookie=False) == []
        # Flask-Login's own defaults: not Secure, HttpOnly.
        assert ids(c.check_cookies(SAFE_COOKIES, remember_cookie=True)) == [
            "cookie.remember_cookie_secure"
        ]
        unsafe = {**SAFE_COOKIES, "REMEMBER_COOKIE_SECURE": True, "REMEMBER_COOKIE_HTTPONLY": False}
        assert ids(c.check_cookies(unsafe, remember_cookie=True)) == [
            "cookie.remember_cookie_httponly"
        ]

    def test_cors(self) -> None:
        assert c.check_cors(["https://app.example.com"], credentials=True) == []
        (wildcard,) = c.check_cors(["*"], credentials=False)
        assert (wildcard.id, wildcard.level) == ("cors.wildcard", "warning")
        (plain,) = c.check_cors(["http://app.example.com"], credentials=True)
        assert (plain.id, plain.level) == ("cors.http_origin", "error")
        assert c.check_cors(["http://app.example.com"], credentials=False)[0].level == "warning"

    def test_tracked(self) -> None:
        assert c.check_tracked([]) == []
        (finding,) = c.check_tracked([".secrets.toml"])
        assert finding.level == "error" and "git rm --cached .secrets.toml" in finding.fix

    def test_versions(self) -> None:
        packages = [
            Package("flask", None, ">=3.1,<3.2", "3.0.3", False),
            Package("redis", "redis", ">=5,<9", None, None),
            Package("flask-cors", None, ">=6.0.1,<7", "6.0.5", True),
        ]
        (finding,) = c.check_versions(packages)
        assert (finding.id, finding.level) == ("versions.outside", "warning")
        assert "flask 3.0.3 is outside the tested range >=3.1,<3.2" in finding.message


def test_git_is_asked_which_secret_files_are_tracked(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    for name in (".secrets.toml", ".env", "settings.toml"):
        (tmp_path / name).write_text("X = 1\n")
    assert c.tracked_secret_files(tmp_path) == []
    subprocess.run([git, "-C", str(tmp_path), "add", ".env", "settings.toml"], check=True)
    assert c.tracked_secret_files(tmp_path) == [".env"]
    assert c.tracked_secret_files(tmp_path / "not-a-repo-subdir-missing") == []


def make_app(root: Path, env: str = "production", **config: t.Any) -> Flask:
    app = Flask("checked", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(config)
    Complete(app, env=env, root=root)
    track(app)
    return app


def test_database_reachable(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite:"):
        sqlite3.connect(database_url.removeprefix("sqlite:///")).close()
    app = make_app(tmp_path, SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=database_url)
    assert database_error(app, get_state(app)) is None


def test_database_unreachable_and_missing(pg_url: str, tmp_path: Path) -> None:
    closed = make_app(
        tmp_path,
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://app:hunter2@127.0.0.1:9/app",
    )
    findings = c.run_checks(closed)
    (finding,) = [f for f in findings if f.id == "database.unreachable"]
    assert "hunter2" not in finding.message and "127.0.0.1" in finding.message
    missing = make_app(
        tmp_path / "m", SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=pg_url + "_missing"
    )
    (finding,) = [f for f in c.run_checks(missing) if f.id == "database.unreachable"]
    assert "does not exist" in finding.message


def test_run_checks_on_a_sound_production_app(pg_url: str, tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI=pg_url,
        CORS_ORIGINS=["https://app.example.com"],
        **SAFE_COOKIES,
    )
    (unstamped,) = c.run_checks(app)
    assert unstamped.id == "database.unstamped"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "environment", "production"]).exit_code == 0
    assert c.run_checks(app) == []
    result = runner.invoke(args=["complete", "check", "--deploy"])
    assert result.exit_code == 0, result.output
    assert "environment production: no problems found." in result.output


def test_check_reports_a_database_of_another_environment(pg_url: str, tmp_path: Path) -> None:
    development = make_app(tmp_path, env="development", SQLALCHEMY_DATABASE_URI=pg_url)
    assert development.test_cli_runner().invoke(args=["db", "environment"]).exit_code == 0
    stamped = development.test_cli_runner().invoke(args=["db", "environment", "development"])
    assert stamped.exit_code == 0, stamped.output
    production = make_app(
        tmp_path / "p", SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=pg_url, **SAFE_COOKIES
    )
    result = production.test_cli_runner().invoke(args=["complete", "check", "--format", "json"])
    assert result.exit_code == 1
    (found,) = [f for f in json.loads(result.output)["findings"] if f["level"] == "error"]
    assert found["id"] == "database.env_mismatch"
    assert "development" in found["message"] and "production" in found["message"]


def test_deploy_flag_runs_production_checks_in_development(tmp_path: Path) -> None:
    app = make_app(tmp_path, env="development", DEBUG=True, SECRET_KEY="dev")
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["complete", "check"])
    assert missing.exit_code == 1 and "flask db prepare" in missing.output, missing.output
    assert runner.invoke(args=["db", "create"]).exit_code == 0
    plain = runner.invoke(args=["complete", "check"])
    assert plain.exit_code == 0, plain.output
    deploy = runner.invoke(args=["complete", "check", "--deploy", "--format", "json"])
    assert deploy.exit_code == 1
    report = json.loads(deploy.output)
    found = {f["id"]: f for f in report["findings"]}
    assert report["environment"] == "development"
    assert {"secret.weak", "debug.on", "database.sqlite", "cors.http_origin"} <= set(found)
    assert report["errors"] == sum(f["level"] == "error" for f in report["findings"])
    assert all(f["fix"] for f in report["findings"])


def test_deploy_flag_treats_the_generated_development_key_as_missing(tmp_path: Path) -> None:
    app = make_app(tmp_path, env="development")
    assert app.config["SECRET_KEY"]  # generated, so that logins work in development
    deploy = app.test_cli_runner().invoke(
        args=["complete", "check", "--deploy", "--format", "json"]
    )
    found = {f["id"] for f in json.loads(deploy.output)["findings"]}
    assert "secret.missing" in found


def _factory(root: Path, **config: t.Any) -> t.Callable[[], Flask]:
    def create() -> Flask:
        return make_app(root, **config)

    return create


def test_collects_every_refusal_instead_of_stopping(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """Without collecting, the app would stop at the first refusal; check lists them all."""
    create = _factory(tmp_path, CORS_ORIGINS=["*"], CORS_SUPPORTS_CREDENTIALS=True)
    result = CliRunner().invoke(
        complete_group, ["check", "--format", "json"], obj=ScriptInfo(create_app=create)
    )
    assert result.exit_code == 1, result.output
    found = {f["id"] for f in json.loads(result.output)["findings"]}
    assert {"secret.missing", "database.missing"} <= found


def test_table_output(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(
        complete_group, ["check"], obj=ScriptInfo(create_app=_factory(tmp_path)), terminal_width=100
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "LEVEL", "PROBLEM", "AND", "FIX"]
    assert lines[1].split()[:2] == ["secret.missing", "error"]
    assert any(line.strip().startswith("fix: Set DATABASE_URL") for line in lines)
    assert lines[-1].startswith("environment production: 2 error(s), ")
    assert lines[-1].endswith("Fix the errors before deploying.")


def test_unknown_environment_is_a_finding(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLASK_ENV", "prod")
    # The pytest plugin pins every app without an explicit env to testing; lift that here.
    clean_env.setattr(_config, "_forced_env", None)

    def create() -> Flask:
        app = Flask("checked", root_path=str(tmp_path))
        Complete(app, root=tmp_path)
        return app

    result = CliRunner().invoke(complete_group, ["check"], obj=ScriptInfo(create_app=create))
    assert result.exit_code == 1
    assert "env.unknown" in result.output and "Use one of: development" in result.output


def test_app_without_flask_complete(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        complete_group, ["check"], obj=ScriptInfo(create_app=lambda: Flask("plain"))
    )
    assert result.exit_code == 2
    assert "add Complete(app)" in result.output


def test_a_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    """Connecting would create the file: the check would leave an empty database behind, which
    the app would then open as if it were the real one."""
    path = tmp_path / "data" / "app.sqlite3"
    (tmp_path / "data").mkdir()
    app = make_app(tmp_path, SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    (finding,) = [f for f in c.run_checks(app) if f.id == "database.unreachable"]
    assert f"{path} does not exist" in finding.message
    assert "flask db prepare" in finding.fix
    assert not path.exists()
    assert c.run_checks(app, deploy=True) and not path.exists()


def test_missing_auth_tables_are_reported(tmp_path: Path) -> None:
    """A release that adds a table (auth_session) to migrations at their head: `flask db
    check` passed, the app started, and every login answered 503."""
    from authapps import dispose
    from authapps import make_app as auth_app

    app = auth_app(f"sqlite:///{tmp_path / 'auth.sqlite3'}", tmp_path, env="production")
    try:
        assert "auth.tables_missing" not in ids(c.run_checks(app))
        with app.app_context():
            engine = app.extensions["sqlalchemy"].engine
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE auth_session")
        (finding,) = [f for f in c.run_checks(app) if f.id == "auth.tables_missing"]
        assert finding.level == "error" and finding.key == "DATABASE_URL"
        assert "no table auth_session: logins answer 503" in finding.message
        assert "flask db migrate" in finding.fix
    finally:
        dispose(app)


def _example_copy(tmp_path: Path) -> Path:
    """The example app copied without local secrets, so the developer's files do not count."""
    shutil.copytree(
        REPO / "example_app",
        tmp_path / "example_app",
        ignore=shutil.ignore_patterns(".secrets.toml", ".env", "instance", "__pycache__"),
    )
    return tmp_path


def _flask(
    cwd: Path, *args: str, app: str = "example_app", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    return subprocess.run(
        [FLASK, "--app", app, *args],
        cwd=cwd,
        env={**base, "FLASK_ENV": "production", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_flask_complete_check_on_the_example_app_without_secrets(tmp_path: Path) -> None:
    result = _flask(_example_copy(tmp_path), "complete", "check", "--deploy")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "secret.missing" in out and "fix: Set it in the environment (SECRET_KEY=...)" in out
    assert "database.missing" in out and "fix: Set DATABASE_URL" in out
    assert "environment production: 2 error(s)" in out


def test_flask_complete_check_on_the_example_app_set_properly(tmp_path: Path, pg_url: str) -> None:
    root = _example_copy(tmp_path)
    env = {"SECRET_KEY": STRONG, "DATABASE_URL": pg_url}
    behind = _flask(root, "complete", "check", "--deploy", **env)
    assert behind.returncode == 1, behind.stdout + behind.stderr
    assert "migrations.not_head" in behind.stdout and "flask db upgrade" in behind.stdout
    upgrade = _flask(root, "db", "upgrade", **env)
    assert upgrade.returncode == 0, upgrade.stderr
    result = _flask(root, "complete", "check", "--deploy", "--format", "json", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["environment"], report["errors"]) == ("production", 0)


def test_entry_point_group_on_an_app_without_flask_complete(tmp_path: Path) -> None:
    """`flask complete` is an entry-point command: an app without Complete gets an error."""
    (tmp_path / "plain.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    for command in ("check", "config"):
        result = _flask(tmp_path, "complete", command, app="plain")
        assert result.returncode == 2, result.stderr
        assert "add Complete(app)" in result.stderr and "Traceback" not in result.stderr


def test_broken_migrations_folder_is_a_finding(tmp_path: Path) -> None:
    shutil.copytree(REPO / "example_app" / "migrations", tmp_path / "migrations")
    first = [
        p
        for p in (tmp_path / "migrations" / "versions").glob("*.py")
        if "down_revision = None" in p.read_text()
    ]
    first[0].unlink()
    sqlite3.connect(tmp_path / "a.db").close()
    app = make_app(
        tmp_path, SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'a.db'}"
    )
    (finding,) = [f for f in c.run_checks(app) if f.id.startswith("migrations.")]
    assert finding.id == "migrations.unreadable"
    assert "Cannot compare the database with the migrations" in finding.message


def test_remember_cookie_is_checked_when_the_app_has_login(tmp_path: Path) -> None:
    from example_app import create_app

    def cookie_findings(**config: t.Any) -> list[str]:
        app = create_app(
            {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'n.db'}", **SAFE_COOKIES, **config}
        )
        track(app)
        return [f.id for f in c.run_checks(app, deploy=True) if f.id.startswith("cookie.")]

    assert cookie_findings(REMEMBER_COOKIE_SECURE=False) == ["cookie.remember_cookie_secure"]
    assert cookie_findings(REMEMBER_COOKIE_SECURE=True, REMEMBER_COOKIE_HTTPONLY=True) == []


def _git(root: Path, *args: str) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    subprocess.run([git, "-C", str(root), *args], check=True, capture_output=True)


# Made up here, in each format's shape (random, so that no scanner takes them for real ones).
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
COMMITTED = f"""
[default]
MAIL_SERVER = "smtp.example.com"

[development]
SECRET_KEY = "dev"
DATABASE_URL = "postgresql://app@127.0.0.1/app_dev"

[production]
SECRET_KEY = "{STRONG}"
DATABASE_URL = "postgresql://app:Pr0d-db-pa55@db.internal/app"
STRIPE_API_KEY = "{STRIPE}"
MAIL_PASSWORD = "${{MAIL_PASSWORD}}"
"""


def test_check_deploy_reads_the_values_of_tracked_settings_files(tmp_path: Path) -> None:
    """Before, the names of tracked files were all that was judged: this passed (exit 0)."""
    (tmp_path / "settings.toml").write_text(COMMITTED)
    _git(tmp_path, "init", "-q")
    app = make_app(tmp_path, env="development", SQLALCHEMY_DATABASE_URI="sqlite://")
    deploy = ["complete", "check", "--deploy", "--format", "json"]
    assert not any(
        f["id"] == "secrets.committed"
        for f in json.loads(app.test_cli_runner().invoke(args=deploy).output)["findings"]
    ), "untracked: not judged"
    _git(tmp_path, "add", "settings.toml")
    result = app.test_cli_runner().invoke(args=deploy)
    assert result.exit_code == 1
    found = [f for f in json.loads(result.output)["findings"] if f["id"] == "secrets.committed"]
    assert [f["message"].split(" holds ")[0] for f in found] == [
        "settings.toml [production] SECRET_KEY",
        "settings.toml [production] DATABASE_URL",
        "settings.toml [production] STRIPE_API_KEY",
    ]
    assert [f["message"].split(" holds ")[1].split(",")[0] for f in found] == [
        "a secret-named setting's value",
        "a password in a URL",
        "a Stripe live key",
    ]
    assert all(f["level"] == "error" and ".secrets.toml" in f["fix"] for f in found)
    assert not any(STRONG in f["message"] or "Pr0d" in f["message"] for f in found)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("sk_live_" + "51HdTkqLw8Z3xY2vB9nM", "a Stripe live key"),
        ("rk_live_" + "51HdTkqLw8Z3xY2vB9nM", "a Stripe live key"),
        ("AKIA" + "Q3EXAMPLEZ7W2KD4", "an AWS access key id"),
        ("ghp_" + "x8Kq2LmN4pR7sT9vW1yZ3bC5dF6gH0jK2lM4", "a GitHub token"),
        ("xoxb-" + "2048-1234567890-AbCdEfGhIj", "a Slack token"),
        ("xoxp-" + "2048-1234567890-AbCdEfGhIj", "a Slack token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "a private key"),
        ("-----BEGIN PRIVATE KEY-----\nMIIE...", "a private key"),
        ("redis://:s3cret-pw@cache:6379/0", "a password in a URL"),
        ("mysql+pymysql://root:root@127.0.0.1/app", "a password in a URL"),
    ],
)
def test_token_formats_and_url_passwords_wherever_they_are(value: str, what: str) -> None:
    from flask_complete.checks.secret_files import secret_in

    # Whatever the setting is called and in every section.
    assert secret_in(value, named=False, production=False) == what


@pytest.mark.parametrize(
    ("value", "production", "secret"),
    [
        ("", True, False),
        ("${SECRET_KEY}", True, False),
        ("<your key here>", True, False),
        ("@format {env[SECRET_KEY]}", True, False),
        ("changeme", False, False),  # a placeholder where production does not read it
        ("changeme", True, True),  # production would use it
        (STRONG, False, True),  # random: a real key, wherever it is
        ("postgresql://app:${DB_PASSWORD}@db/app", True, False),
    ],
)
def test_secret_named_values(value: str, production: bool, secret: bool) -> None:
    from flask_complete.checks.secret_files import secret_in

    assert bool(secret_in(value, named=True, production=production)) is secret
    assert secret_in(value, named=False, production=production) is None


def test_flaskenv_and_env_example_are_read_too(tmp_path: Path) -> None:
    from flask_complete.checks.secret_files import committed_secrets

    (tmp_path / ".flaskenv").write_text(f"FLASK_APP=app\nFLASK_SECRET_KEY={STRONG}\n")
    (tmp_path / ".env.example").write_text("SECRET_KEY=\nSTRIPE_KEY=" + STRIPE + "\n")
    _git(tmp_path, "init", "-q")
    assert committed_secrets(tmp_path) == []
    _git(tmp_path, "add", ".flaskenv", ".env.example")
    assert [(c.file, c.key) for c in committed_secrets(tmp_path)] == [
        (".env.example", "STRIPE_KEY"),
        (".flaskenv", "FLASK_SECRET_KEY"),
    ]

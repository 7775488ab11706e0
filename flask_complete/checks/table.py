"""The table of checks: every check's id, level and what it judges (:data:`CHECKS`), and
:func:`_found`, which turns a judgement into a finding at its check's level."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings.config import Problem


@dataclass(frozen=True)
class Check:
    """One row of :data:`CHECKS`."""

    id: str
    #: ``"error"`` (refused in production) or ``"warning"`` (logged).
    level: str
    #: What it judges, in one line.
    judges: str
    #: What it needs beyond the settings and files. Such a check runs in ``flask complete
    #: check`` only: start-up opens no connection and runs no subprocess.
    needs: str = ""

    @property
    def at_start(self) -> bool:
        """Whether production start-up runs it (refusing an error, logging a warning)."""
        return not self.needs


def _cookie(key: str, why: str) -> Check:
    return Check(f"cookie.{key.lower()}", "warning", f"{key} is not true: {why}")


#: Every check. Production start-up, ``check`` in production and ``check --deploy`` run those
#: that need nothing beyond the settings and files (:func:`production_findings`).
CHECKS: tuple[Check, ...] = (
    Check("secret.missing", "error", "SECRET_KEY is not set (a generated development key counts)"),
    Check(
        "secret.weak",
        "error",
        "SECRET_KEY, a SECRET_KEY_FALLBACKS entry or another *SECRET_KEY is under 32 bytes or "
        "estimated under 128 bits",
    ),
    Check("debug.on", "error", "debug mode: --debug, FLASK_DEBUG, flask run --debugger, DEBUG"),
    Check("auth.login_disabled", "error", "LOGIN_DISABLED lets everyone past login_required"),
    Check(
        "csrf.off",
        "warning",
        "CSRF_PROTECT or WTF_CSRF_ENABLED is false (an error without SameSite session cookies)",
    ),
    Check("auth.throttle_off", "warning", "AUTH_THROTTLE is false: password guessing is unlimited"),
    Check("database.sqlite", "warning", "SQLite as the production database"),
    Check(
        "database.embedded",
        "error",
        "the embedded PostgreSQL (postgresql+embedded://) as a production database",
    ),
    _cookie("SESSION_COOKIE_SECURE", "the session cookie is also sent over plain HTTP"),
    _cookie("SESSION_COOKIE_HTTPONLY", "page scripts can read the session cookie"),
    Check("cookie.session_cookie_samesite", "warning", "SESSION_COOKIE_SAMESITE not Lax/Strict"),
    _cookie("REMEMBER_COOKIE_SECURE", "the remember-me cookie is also sent over plain HTTP"),
    _cookie("REMEMBER_COOKIE_HTTPONLY", "page scripts can read the remember-me cookie"),
    Check("cors.wildcard", "warning", '"*" in CORS_ORIGINS'),
    Check("cors.http_origin", "warning", "an http:// CORS origin (an error with credentials)"),
    Check("secrets.readable", "warning", ".secrets.toml or .env open to other users"),
    Check("auth.throttle_fail_open", "warning", "logins unthrottled while the throttle is down"),
    Check(
        "database.unreachable",
        "error",
        "connecting and SELECT 1 fail, or the SQLite file is missing",
        "the database",
    ),
    Check("migrations.not_head", "error", "the database is behind the migrations", "the database"),
    Check("auth.tables_missing", "error", "a table the login needs does not exist", "the database"),
    Check("migrations.unreadable", "error", "the migrations cannot be compared", "the database"),
    Check("database.unstamped", "warning", "the database records no environment", "the database"),
    Check(
        "database.env_mismatch", "error", "the database is another environment's", "the database"
    ),
    Check("secrets.tracked", "error", ".secrets.toml or .env tracked by git", "git"),
    Check(
        "secrets.committed",
        "error",
        "a secret value in a settings file git tracks (settings.toml, .flaskenv, .env.example)",
        "git",
    ),
    Check("versions.outside", "warning", "a package outside its tested range", "package metadata"),
    Check(
        "auth.routes_shadowed",
        "warning",
        "the app serves an auth endpoint's URL itself",
        "the app's routes",
    ),
    Check(
        "credentials.key_missing",
        "error",
        "credentials/production.toml.enc exists but no key for it (a warning outside production)",
    ),
    Check(
        "credentials.undecryptable",
        "error",
        "credentials/production.toml.enc does not decrypt: wrong key, changed, truncated",
    ),
    Check(
        "credentials.plaintext",
        "warning",
        "secrets for production in .secrets.toml (with --deploy or in production)",
        "a check run: advice, not logged at every start",
    ),
    Check("credentials.key_tracked", "error", "a credentials key in a file git tracks", "git"),
)


_BY_ID = {c.id: c for c in CHECKS}


def _found(check: str, key: str, message: str, fix: str, level: str | None = None) -> Problem:
    """A finding of ``check``, at its level in :data:`CHECKS` unless ``level`` is given."""
    return Problem(check, key, message, fix, level or _BY_ID[check].level)

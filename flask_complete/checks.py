"""``flask complete check``: what is unsafe or broken before you deploy, and how to fix it.

Each check is a small pure function from values to findings (:class:`~flask_complete.config.Problem`
with an id, a level, what is wrong and how to fix it). :func:`run_checks` gathers the values from
an app; the command loads the app with refusals collected, so one run lists everything.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import textwrap
import typing as t

import click
from flask import Flask, current_app

from . import config as _config
from .config import ConfigError, Problem

if t.TYPE_CHECKING:
    from pathlib import Path

    from .extension import CompleteState
    from .versions import Package

#: Seconds a database server may take to accept the check's connection.
CONNECT_TIMEOUT = 10
#: Init refusals after which there is no database to connect to.
_NO_DATABASE = {"database.missing", "database.url", "database.bind"}
_SET_IN = "in settings.toml [production] (or the environment, FLASK_{key}=...)"


def check_secret(value: t.Any, source: str) -> list[Problem]:
    """``SECRET_KEY`` missing, a placeholder, or shorter than 32 bytes (judged as production)."""
    return _config.check_secret(value, "production", source)


def check_debug(debug: bool) -> list[Problem]:
    """Debug mode on: the debugger runs any code a visitor sends."""
    if not debug:
        return []
    return [
        Problem(
            "debug.on",
            "DEBUG",
            "Debug mode is on: the interactive debugger lets anyone who sees an error page run "
            "code on the server, and error pages show source and settings.",
            "Unset FLASK_DEBUG and do not pass --debug; remove DEBUG = true from the settings.",
        )
    ]


def check_sqlite(url: str | None) -> list[Problem]:
    """SQLite in production: one writer at a time, one machine."""
    if not url or not str(url).startswith("sqlite"):
        return []
    return [
        Problem(
            "database.sqlite",
            "DATABASE_URL",
            "The database is SQLite: one writer at a time, and only processes on this machine "
            "can share it.",
            "Fine for a small single-server app; otherwise set DATABASE_URL to PostgreSQL or "
            "MySQL/MariaDB.",
            level="warning",
        )
    ]


def check_database(url: str | None, error: str | None) -> list[Problem]:
    """The database could not be reached (``error`` is what connecting raised)."""
    if error is None:
        return []
    shown = _config.redact_url(url) if url else "the database"
    return [
        Problem(
            "database.unreachable",
            "DATABASE_URL",
            f"Cannot connect to {shown}: {error}",
            "Start the database server or correct DATABASE_URL; `flask db create` creates a "
            "database that does not exist yet.",
        )
    ]


def check_migrations(heads: set[str], current: set[str]) -> list[Problem]:
    """The database is not at the head revision of the migrations folder."""
    if not heads or heads == current:
        return []
    at = ", ".join(sorted(current)) or "no revision (no migration applied)"
    unknown = current - heads
    return [
        Problem(
            "migrations.not_head",
            "MIGRATIONS_DIR",
            f"The database is at {at}; the migrations' head is {', '.join(sorted(heads))}."
            + (" The database has revisions that are not the head." if unknown else ""),
            "Run `flask db upgrade` before starting this code (`flask db prepare` also creates "
            "the database).",
        )
    ]


def check_cookies(config: t.Mapping[str, t.Any], remember_cookie: bool) -> list[Problem]:
    """Cookie flags: ``Secure``, ``HttpOnly`` and ``SameSite`` on the session (and remember)
    cookie."""
    # (setting, its value when unset, why it matters)
    wanted = [
        ("SESSION_COOKIE_SECURE", False, "the session cookie is also sent over plain HTTP"),
        ("SESSION_COOKIE_HTTPONLY", True, "page scripts can read the session cookie"),
    ]
    if remember_cookie:  # Flask-Login's defaults
        wanted += [
            ("REMEMBER_COOKIE_SECURE", False, "the remember-me cookie is also sent over HTTP"),
            ("REMEMBER_COOKIE_HTTPONLY", True, "page scripts can read the remember-me cookie"),
        ]
    found = [
        Problem(
            f"cookie.{key.lower()}",
            key,
            f"{key} is not true: {why}.",
            f"Set {key} = true {_SET_IN.format(key=key)}.",
            level="warning",
        )
        for key, unset, why in wanted
        if config.get(key, unset) is not True
    ]
    if config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        found.append(
            Problem(
                "cookie.session_cookie_samesite",
                "SESSION_COOKIE_SAMESITE",
                "SESSION_COOKIE_SAMESITE is not Lax or Strict: other sites' forms send the "
                "session cookie along (cross-site request forgery).",
                'Set SESSION_COOKIE_SAMESITE = "Lax" '
                + _SET_IN.format(key="SESSION_COOKIE_SAMESITE")
                + ".",
                level="warning",
            )
        )
    return found


def check_cors(origins: list[str], credentials: bool) -> list[Problem]:
    """Production CORS: ``*`` (any site reads the API) and ``http://`` origins."""
    found = []
    if "*" in origins:
        found.append(
            Problem(
                "cors.wildcard",
                "CORS_ORIGINS",
                'CORS_ORIGINS contains "*": every website can call the API from its pages and '
                "read the answers.",
                "Fine for a public API without cookies; otherwise list the exact origins of "
                'your front ends, e.g. CORS_ORIGINS = ["https://app.example.com"].',
                level="warning",
            )
        )
    plain = [o for o in origins if o.lower().startswith("http://")]
    if plain:
        found.append(
            Problem(
                "cors.http_origin",
                "CORS_ORIGINS",
                f"CORS_ORIGINS allows unencrypted origins: {', '.join(plain)}. Anyone on the "
                "network path can inject script into such a page and use the API"
                + (" with the user's cookies." if credentials else "."),
                "Serve the front end over HTTPS and list its https:// origin.",
                level="error" if credentials else "warning",
            )
        )
    return found


def check_tracked(paths: list[str]) -> list[Problem]:
    """Secret files committed to git."""
    if not paths:
        return []
    names = ", ".join(paths)
    return [
        Problem(
            "secrets.tracked",
            ".secrets.toml",
            f"{names} {'is' if len(paths) == 1 else 'are'} tracked by git: every clone of the "
            "repository has the secrets.",
            f"git rm --cached {' '.join(paths)}; add them to .gitignore (`flask complete init` "
            "does); then replace the secrets, they stay in the history.",
        )
    ]


def check_versions(packages: list[Package]) -> list[Problem]:
    """Installed bundled packages outside the ranges flask_complete is tested with."""
    return [
        Problem(
            "versions.outside",
            p.name,
            f"{p.name} {p.installed} is outside the tested range {p.tested}.",
            f'Install a tested version: pip install "{p.name}{p.tested}" (see `flask complete '
            "versions`).",
            level="warning",
        )
        for p in packages
        if p.inside is False
    ]


def database_error(app: Flask, state: CompleteState) -> str | None:
    """Connect and run ``SELECT 1``; what went wrong, or ``None``.

    Servers are tried on a separate, unpooled connection with a connect timeout, so a firewalled
    host fails the check instead of hanging it.
    """
    import sqlalchemy as sa

    assert state.db is not None
    with app.app_context():
        engine = state.db.engine
    temporary = engine.dialect.name in ("postgresql", "mysql", "mariadb")
    if temporary:
        user = (app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}).get("connect_args") or {}
        engine = sa.create_engine(
            engine.url,
            poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT, **user},
        )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:
        return _first_line(e)
    finally:
        if temporary:
            engine.dispose()
    return None


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def revisions(app: Flask) -> tuple[set[str], set[str]] | None:
    """The head revisions of the migrations folder and those the database is at; ``None``
    without a migrations folder."""
    from . import migrations

    with app.app_context():
        if not migrations.has_migrations(app):
            return None
    return migrations.head_revisions(app), migrations.current_revisions(app)


def _migration_findings(app: Flask) -> list[Problem]:
    try:
        found = revisions(app)
    except Exception as e:  # a broken folder fails deep in Alembic (even a KeyError): report it
        return [
            Problem(
                "migrations.unreadable",
                "MIGRATIONS_DIR",
                "Cannot compare the database with the migrations: "
                f"{type(e).__name__}: {_first_line(e)}",
                "Run `flask db current` and `flask db heads` to see which side fails.",
            )
        ]
    return [] if found is None else check_migrations(*found)


def configured_debug(state: CompleteState) -> bool:
    """Debug as the app would run it: ``FLASK_DEBUG``, or ``DEBUG`` from code or the settings.

    Not ``app.debug``: the ``flask`` command resets it from ``FLASK_DEBUG`` when it loads the
    app, which a WSGI server does not.
    """
    from flask.helpers import get_debug_flag

    settings = state.settings
    value = settings.code["DEBUG"] if "DEBUG" in settings.code else settings.values.get("DEBUG")
    return get_debug_flag() or bool(value)


def tracked_secret_files(root: Path) -> list[str]:
    """Which of ``.secrets.toml`` and ``.env`` under ``root`` git tracks (none without git)."""
    git = shutil.which("git")
    if git is None:
        return []
    result = subprocess.run(
        [git, "-C", str(root), "ls-files", "--", _config.SECRETS_FILE, _config.DOTENV_FILE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.split() if result.returncode == 0 else []


def run_checks(app: Flask, *, deploy: bool = False) -> list[Problem]:
    """Every finding for ``app``: the refusals init collected, then each check.

    :param deploy: Also run the production checks outside production.
    """
    from .extension import get_state
    from .versions import bundled

    state = get_state(app)
    config = app.config
    findings = list(state.problems)
    if deploy or state.env == "production":
        # A key generated for development is no key for production.
        secret = None if state.settings.secret_generated else config.get("SECRET_KEY")
        findings += check_secret(secret, state.settings.sources.get("SECRET_KEY", "code"))
        findings += check_debug(configured_debug(state))
        findings += check_sqlite(config.get("SQLALCHEMY_DATABASE_URI"))
        findings += check_cookies(config, hasattr(app, "login_manager"))
        if config.get("COMPLETE_CORS", True):
            from .cors import parse_origins

            origins, _ = parse_origins(config.get("CORS_ORIGINS"))
            findings += check_cors(origins, config.get("CORS_SUPPORTS_CREDENTIALS") is True)
    database_known = not any(p.id in _NO_DATABASE for p in findings)
    if state.db is not None and "sqlalchemy" in app.extensions and database_known:
        error = database_error(app, state)
        findings += check_database(config.get("SQLALCHEMY_DATABASE_URI"), error)
        if error is None:
            findings += _migration_findings(app)
    findings += check_tracked(tracked_secret_files(state.root))
    # Not installed as a distribution: no ranges to compare against.
    with contextlib.suppress(LookupError):
        findings += check_versions(bundled())
    unique: dict[tuple[str, str, str], Problem] = {}
    for finding in findings:
        unique.setdefault((finding.id, finding.key, finding.message), finding)
    return list(unique.values())


def format_table(findings: list[Problem], width: int = 100) -> str:
    """The findings as a table: id, level, what is wrong and, below it, how to fix it."""
    if not findings:
        return ""
    id_width = max(len("ID"), *(len(f.id) for f in findings))
    text_width = max(30, width - id_width - 11)
    indent = " " * (id_width + 11)
    lines = [f"{'ID':<{id_width}}  {'LEVEL':<7}  PROBLEM AND FIX"]
    for finding in sorted(findings, key=lambda f: f.level != "error"):
        wrapped = _wrap(finding.message, text_width) or [""]
        lines.append(f"{finding.id:<{id_width}}  {finding.level:<7}  {wrapped[0]}")
        lines += [indent + line for line in wrapped[1:]]
        if finding.fix:
            lines += [indent + line for line in _wrap("fix: " + finding.fix, text_width)]
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    # Commands and URLs stay whole, so they can be copied.
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def _load_app(ctx: click.Context) -> Flask | list[Problem]:
    """The app, built with refusals collected; the problems when it cannot be built at all."""
    if current_app:
        return t.cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    from flask.cli import ScriptInfo

    from . import extension

    info = ctx.ensure_object(ScriptInfo)
    extension.collecting(True)
    try:
        return info.load_app()
    except ConfigError as e:
        return e.problems
    finally:
        extension.collecting(False)


@click.command("check")
@click.option(
    "--deploy", is_flag=True, help="Also run the production checks (always in production)."
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one object for machines.",
)
@click.pass_context
def check_command(ctx: click.Context, deploy: bool, output: str) -> None:
    """Check settings, secrets, database, migrations and versions; exit 1 on an error."""
    from .extension import EXTENSION_KEY

    loaded = _load_app(ctx)
    if isinstance(loaded, list):
        env, findings = "unknown", loaded
    else:
        if EXTENSION_KEY not in loaded.extensions:
            raise click.UsageError(
                "flask_complete is not initialised on this app: add Complete(app) (or "
                "complete.init_app(app) in the app factory)."
            )
        env = loaded.extensions[EXTENSION_KEY].env
        findings = run_checks(loaded, deploy=deploy)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "environment": env,
                    "errors": errors,
                    "warnings": warnings,
                    "findings": [
                        {
                            "id": f.id,
                            "level": f.level,
                            "key": f.key,
                            "message": f.message,
                            "fix": f.fix,
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        table = format_table(findings, shutil.get_terminal_size((100, 24)).columns)
        if table:
            click.echo(table)
            click.echo()
        summary = f"environment {env}: {errors} error(s), {warnings} warning(s)."
        if errors:
            click.secho(f"{summary} Fix the errors before deploying.", fg="red")
        elif warnings:
            click.secho(f"{summary} Review the warnings.", fg="yellow")
        else:
            click.secho(f"environment {env}: no problems found.", fg="green")
    if errors:
        ctx.exit(1)

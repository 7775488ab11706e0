"""``flask complete check`` and production start-up: what is unsafe or broken, and how to fix it.

:data:`CHECKS` is the one table of what is judged: an id, a level, what it judges, and what it needs
beyond the settings. Each check is a small pure function from values to findings
(:class:`~flask_complete.settings.config.Problem`). :func:`production_findings` is the one gate: it
runs every check that needs only the settings and files, and production start-up refuses its errors
(:func:`start_up`); :func:`run_checks` adds the checks that need the database, git or package
metadata. The command is :mod:`flask_complete.cli.check`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import typing as t

import click
from click.core import ParameterSource
from flask import Flask, request

from ..settings import config as _config
from ..settings.config import Problem
from .secret_files import Committed, committed_secrets, readable_secret_files, tracked_secret_files
from .table import _BY_ID, _found

if t.TYPE_CHECKING:
    from flask import Response

    from ..state import CompleteState
    from .versions import Package

log = logging.getLogger("flask_complete")

#: Init refusals after which there is no database to connect to.
_NO_DATABASE = {"database.missing", "database.url", "database.bind"}
_SET_IN = "in settings.toml [production] (or the environment, FLASK_{key}=...)"


def check_secret(value: t.Any, source: str, names: t.Iterable[str] = ()) -> list[Problem]:
    """``SECRET_KEY`` missing or guessable, judged as production (``names``: the app's)."""
    return _config.check_secret(value, "production", source, names=names)


def check_keys(
    config: t.Mapping[str, t.Any], sources: t.Mapping[str, str], names: t.Iterable[str] = ()
) -> list[Problem]:
    """Every key Flask or an extension signs or verifies with, held to the ``SECRET_KEY``
    rules: each ``SECRET_KEY_FALLBACKS`` entry (Flask 3.1 accepts cookies signed with any of
    them) and any other ``*SECRET_KEY`` that is set (``WTF_CSRF_SECRET_KEY``,
    ``JWT_SECRET_KEY``). ``SECRET_KEY`` itself: :func:`check_secret`."""
    names = list(names)
    found: list[Problem] = []
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
    source = sources.get("SECRET_KEY_FALLBACKS", "code")
    if not isinstance(fallbacks, list | tuple):
        # Flask would iterate a string: every character a key that verifies cookies.
        return [
            Problem(
                "secret.weak",
                "SECRET_KEY_FALLBACKS",
                f"SECRET_KEY_FALLBACKS (from {source}) is a {type(fallbacks).__name__}, not a "
                "list: Flask would verify cookies with each of its items (a string's characters).",
                'Write a list of old keys, SECRET_KEY_FALLBACKS = ["<old key>"], or remove it.',
            )
        ]
    for index, old in enumerate(fallbacks):
        found += _config.check_secret(
            old, "production", source, key=f"SECRET_KEY_FALLBACKS[{index}]", names=names
        )
    for key in sorted(config):
        if key.endswith("SECRET_KEY") and key != "SECRET_KEY" and config[key] is not None:
            found += _config.check_secret(
                config[key], "production", sources.get(key, "code"), key=key, names=names
            )
    return found


def check_switches(config: t.Mapping[str, t.Any], login: bool) -> list[Problem]:
    """Settings that switch a protection off: ``LOGIN_DISABLED`` (refused), the CSRF checks
    and, with a login, the password throttle."""
    found = []
    if config.get("LOGIN_DISABLED"):
        found.append(
            _found(
                "auth.login_disabled",
                "LOGIN_DISABLED",
                "LOGIN_DISABLED is on in production: every view behind login_required answers "
                "anonymous visitors as if they had logged in.",
                "Remove LOGIN_DISABLED from the production settings and code; it is for tests "
                "(the pytest plugin logs users in for you).",
            )
        )
    off = [
        key
        for key, on in (("CSRF_PROTECT", login), ("WTF_CSRF_ENABLED", True))
        if on and config.get(key, True) is False
    ]
    if off:
        same_site = config.get("SESSION_COOKIE_SAMESITE") in ("Lax", "Strict")
        found.append(
            _found(
                "csrf.off",
                off[0],
                f"{' and '.join(off)} {'is' if len(off) == 1 else 'are'} false: forms and API "
                "calls authenticated by the session cookie are not checked for cross-site "
                "requests"
                + (
                    "; SESSION_COOKIE_SAMESITE keeps browsers from sending it on most of them."
                    if same_site
                    else ", and SESSION_COOKIE_SAMESITE does not stop browsers from sending it."
                ),
                f"Remove {' and '.join(f'{k} = false' for k in off)} from the production "
                "settings" + ("." if same_site else '; keep SESSION_COOKIE_SAMESITE = "Lax".'),
                level=None if same_site else "error",
            )
        )
    if login and config.get("AUTH_THROTTLE", True) is False:
        found.append(
            _found(
                "auth.throttle_off",
                "AUTH_THROTTLE",
                "AUTH_THROTTLE is false: /auth/login answers as many password guesses as are sent.",
                "Remove AUTH_THROTTLE = false, unless a proxy in front limits login attempts.",
            )
        )
    return found


class DebugSource(t.NamedTuple):
    """Where debug mode was switched on, and how to switch it off there."""

    where: str
    fix: str


def check_debug(source: DebugSource | None) -> list[Problem]:
    """Debug mode on: the debugger runs any code a visitor sends."""
    if source is None:
        return []
    return [
        _found(
            "debug.on",
            "DEBUG",
            f"Debug mode is on ({source.where}): the interactive debugger lets anyone who "
            "reaches the server run code on it, and error pages show source and settings.",
            source.fix,
        )
    ]


def check_sqlite(url: str | None) -> list[Problem]:
    """SQLite in production: one writer at a time, one machine."""
    if not url or not str(url).startswith("sqlite"):
        return []
    return [
        _found(
            "database.sqlite",
            "DATABASE_URL",
            "The database is SQLite: one writer at a time, and only processes on this machine "
            "can share it.",
            "Fine for a small single-server app; otherwise set DATABASE_URL to PostgreSQL or "
            "MySQL/MariaDB.",
        )
    ]


def check_embedded(config: t.Mapping[str, t.Any], sources: t.Mapping[str, str]) -> list[Problem]:
    """The embedded PostgreSQL in production: a development server in the instance folder,
    trusting every local user, on one machine, never backed up."""
    from ..database.urls import is_embedded

    urls = [("DATABASE_URL", config.get("SQLALCHEMY_DATABASE_URI"))]
    binds = config.get("SQLALCHEMY_BINDS")
    for key, value in (binds if isinstance(binds, t.Mapping) else {}).items():
        url = value.get("url") if isinstance(value, t.Mapping) else value
        urls.append((f"SQLALCHEMY_BINDS.{key}", url))
    found = []
    for setting, url in urls:
        if not is_embedded(url):
            continue
        top = setting.partition(".")[0]
        where = sources.get(top) or sources.get(
            "SQLALCHEMY_DATABASE_URI" if top == "DATABASE_URL" else top, "code"
        )
        found.append(
            _found(
                "database.embedded",
                setting,
                f"{setting} (from {where}) is the embedded PostgreSQL: a development server "
                "in the instance folder that trusts every local user, serves one machine and "
                "is never backed up.",
                f"Set {setting} for production to your PostgreSQL server (e.g. "
                "DATABASE_URL=postgresql://app@db.internal/app in the environment) and keep "
                "postgresql+embedded:// in settings.toml [development] only.",
            )
        )
    return found


def check_cookies(config: t.Mapping[str, t.Any], remember_cookie: bool) -> list[Problem]:
    """Cookie flags: ``Secure``, ``HttpOnly`` and ``SameSite`` on the session (and remember)
    cookie."""
    # (setting, its value when unset)
    wanted = [("SESSION_COOKIE_SECURE", False), ("SESSION_COOKIE_HTTPONLY", True)]
    if remember_cookie:  # Flask-Login's defaults
        wanted += [("REMEMBER_COOKIE_SECURE", False), ("REMEMBER_COOKIE_HTTPONLY", True)]
    found = [
        _found(
            f"cookie.{key.lower()}",
            key,
            _BY_ID[f"cookie.{key.lower()}"].judges + ".",
            f"Set {key} = true {_SET_IN.format(key=key)}.",
        )
        for key, unset in wanted
        if config.get(key, unset) is not True
    ]
    if config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        found.append(
            _found(
                "cookie.session_cookie_samesite",
                "SESSION_COOKIE_SAMESITE",
                "SESSION_COOKIE_SAMESITE is not Lax or Strict: other sites' forms send the "
                "session cookie along (cross-site request forgery).",
                'Set SESSION_COOKIE_SAMESITE = "Lax" '
                + _SET_IN.format(key="SESSION_COOKIE_SAMESITE")
                + ".",
            )
        )
    return found


def check_cors(origins: list[str], credentials: bool) -> list[Problem]:
    """Production CORS: ``*`` (any site reads the API) and ``http://`` origins."""
    found = []
    if "*" in origins:
        found.append(
            _found(
                "cors.wildcard",
                "CORS_ORIGINS",
                'CORS_ORIGINS contains "*": every website can call the API from its pages and '
                "read the answers.",
                "Fine for a public API without cookies; otherwise list the exact origins of "
                'your front ends, e.g. CORS_ORIGINS = ["https://app.example.com"].',
            )
        )
    plain = [o for o in origins if o.lower().startswith("http://")]
    if plain:
        found.append(
            _found(
                "cors.http_origin",
                "CORS_ORIGINS",
                f"CORS_ORIGINS allows unencrypted origins: {', '.join(plain)}. Anyone on the "
                "network path can inject script into such a page and use the API"
                + (" with the user's cookies." if credentials else "."),
                "Serve the front end over HTTPS and list its https:// origin.",
                level="error" if credentials else None,
            )
        )
    return found


def check_throttle_fail_open(config: t.Mapping[str, t.Any], login: bool) -> list[Problem]:
    """``AUTH_THROTTLE_FAIL_OPEN`` on: while the throttle's storage is down, every login checks
    its password without a limit, and a right one stands out (an unlimited guessing oracle)."""
    throttled = login and config.get("AUTH_THROTTLE") is not False
    if not throttled or config.get("AUTH_THROTTLE_FAIL_OPEN") is not True:
        return []
    return [
        _found(
            "auth.throttle_fail_open",
            "AUTH_THROTTLE_FAIL_OPEN",
            "AUTH_THROTTLE_FAIL_OPEN is true: while the login throttle's storage (Redis or its "
            "table) is down, every login checks its password without a limit.",
            "Delete the setting or set AUTH_THROTTLE_FAIL_OPEN = false "
            + _SET_IN.format(key="AUTH_THROTTLE_FAIL_OPEN")
            + ": logins then answer 503 until the storage is back.",
        )
    ]


def check_readable(files: list[tuple[str, int]]) -> list[Problem]:
    """Secret files (name, permission bits) that other users of the machine may open."""
    return [
        _found(
            "secrets.readable",
            name,
            f"{name} has mode {mode:04o}: "
            + ("every user" if mode & 0o006 else "its group")
            + " of this machine can "
            + ("read" if mode & 0o044 else "change")
            + " the secrets in it.",
            f"chmod 600 {name} (only its owner reads and writes it).",
        )
        for name, mode in files
    ]


def check_tracked(paths: list[str]) -> list[Problem]:
    """Secret files committed to git."""
    if not paths:
        return []
    names = ", ".join(paths)
    return [
        _found(
            "secrets.tracked",
            ".secrets.toml",
            f"{names} {'is' if len(paths) == 1 else 'are'} tracked by git: every clone of the "
            "repository has the secrets.",
            f"git rm --cached {' '.join(paths)}; add them to .gitignore (`flask complete init` "
            "does); then replace the secrets, they stay in the history.",
        )
    ]


def check_committed(found: list[Committed]) -> list[Problem]:
    """Secrets in settings files that git tracks (their values judged, see
    :func:`flask_complete.checks.secret_files.secret_in`)."""
    return [
        _found(
            "secrets.committed",
            c.key.split()[-1].split(".")[0],
            f"{c.file} {c.key} holds {c.what}, and git tracks {c.file}: every clone of the "
            "repository has it.",
            f"Move it to .secrets.toml or the environment and out of {c.file} (leave an empty "
            "value or a ${VARIABLE} if the key must stay listed); then replace the secret: "
            "it stays in the history.",
        )
        for c in found
    ]


def check_versions(packages: list[Package]) -> list[Problem]:
    """Installed bundled packages outside the ranges flask_complete is tested with."""
    return [
        _found(
            "versions.outside",
            p.name,
            f"{p.name} {p.installed} is outside the tested range {p.tested}.",
            f'Install a tested version: pip install "{p.name}{p.tested}" (see `flask complete '
            "versions`).",
        )
        for p in packages
        if p.inside is False
    ]


def check_auth_routes(app: Flask) -> list[Problem]:
    """Auth endpoints whose URL the app serves too: the app's view answers them."""
    if "complete.auth" not in app.extensions:
        return []
    from ..auth.routes import FIX, shadowed, taken_notes

    fix = FIX[0].upper() + FIX[1:] + " (or AUTH_ENDPOINTS = false)."
    return [
        _found("auth.routes_shadowed", "AUTH_URL_PREFIX", f"{message}.", fix)
        for message in taken_notes(app) + shadowed(app)
    ]


def debug_source(state: CompleteState) -> DebugSource | None:
    """Where debug mode is on for this app as it will run, or ``None``.

    ``--debug`` (before or after ``run``) sets ``FLASK_DEBUG`` before the app is loaded, so it
    is seen here; ``app.debug`` is not read: the ``flask`` command resets it from
    ``FLASK_DEBUG`` after the factory returns, which a WSGI server does not.
    """
    from flask.cli import run_command
    from flask.helpers import get_debug_flag

    contexts = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        contexts.append(ctx)
        ctx = ctx.parent
    if get_debug_flag():
        if any(c.get_parameter_source("debug") is ParameterSource.COMMANDLINE for c in contexts):
            return DebugSource(
                "the --debug option of the flask command",
                "Start production without --debug, under a WSGI server (gunicorn, waitress): "
                "`flask run` is the development server.",
            )
        if loaded := state.settings.flask_dotenv.get("FLASK_DEBUG"):
            from ..settings.dotenv import file_value

            file = os.path.basename(loaded)
            return DebugSource(
                f"FLASK_DEBUG={file_value('FLASK_DEBUG', loaded)} in {loaded}, which the flask "
                "command loaded",
                f"Remove FLASK_DEBUG from {file} on this machine, or run with "
                f"FLASK_SKIP_DOTENV=1 so that flask reads no {file}.",
            )
        return DebugSource(
            f"FLASK_DEBUG={os.environ.get('FLASK_DEBUG', '')} in the environment",
            "Unset FLASK_DEBUG for production (the flask command also reads it from .env and "
            ".flaskenv files).",
        )
    settings = state.settings
    if settings.code.get("DEBUG"):
        return DebugSource(
            "DEBUG = True, set in code",
            "Do not set DEBUG or app.debug in code that runs in production; set DEBUG = true "
            "in settings.toml [development] instead.",
        )
    if settings.values.get("DEBUG"):
        where = settings.sources.get("DEBUG", "the settings")
        return DebugSource(
            f"DEBUG = {settings.values['DEBUG']!r} from {where}",
            f"Remove DEBUG from {where}; set it in settings.toml [development] if you want it "
            "there.",
        )
    if any(c.command is run_command and c.params.get("debugger") for c in contexts):
        return DebugSource(
            "the --debugger option of flask run",
            "Drop --debugger: Werkzeug's debugger runs any code a visitor sends it.",
        )
    return None


def _has_login(app: Flask, state: CompleteState) -> bool:
    # Before the pieces are wired, the bundle's login is foreseen from the user model.
    if hasattr(app, "login_manager"):
        return True
    return state.user_model is not None and app.config.get("COMPLETE_AUTH", True) is True


def app_names(app: Flask, state: CompleteState) -> list[str]:
    """Names a key built by hand may be made of: the app's, its project folder's, the bundle's."""
    return [app.import_name, app.name, state.root.name, "flask_complete"]


def check_credentials(app: Flask, state: CompleteState) -> list[Problem]:
    """Production's encrypted credentials, decrypted with production's key
    (:mod:`flask_complete.checks.credentials`)."""
    from .credentials import production_credentials

    return production_credentials(state.root, app.instance_path, state.env)


def production_findings(app: Flask, state: CompleteState) -> list[Problem]:
    """The one gate of production: every check of :data:`CHECKS` that needs only the settings
    and files, judged as production. Start-up refuses its errors and logs its warnings;
    ``flask complete check`` reports both. Cheap: no connection, no subprocess."""
    config = app.config
    settings = state.settings
    names = app_names(app, state)
    # A key generated for development is no key for production.
    secret = None if settings.secret_generated else config.get("SECRET_KEY")
    found = check_secret(secret, settings.sources.get("SECRET_KEY", "code"), names)
    found += check_keys(config, settings.sources, names)
    found += check_debug(debug_source(state))
    found += check_switches(config, _has_login(app, state))
    found += check_sqlite(config.get("SQLALCHEMY_DATABASE_URI"))
    found += check_embedded(config, settings.sources)
    found += check_cookies(config, _has_login(app, state))
    found += check_throttle_fail_open(config, _has_login(app, state))
    if config.get("COMPLETE_CORS", True):
        from ..web.cors import parse_origins

        origins, _ = parse_origins(config.get("CORS_ORIGINS"))
        found += check_cors(origins, config.get("CORS_SUPPORTS_CREDENTIALS") is True)
    found += check_readable(readable_secret_files(state.root))
    found += check_credentials(app, state)
    return found


def start_up(app: Flask, state: CompleteState, *, quiet: bool = False) -> list[Problem]:
    """Production start-up: the errors of :func:`production_findings`, which init refuses; each
    warning is logged on the ``flask_complete`` logger, one line each (not when ``quiet``)."""
    found = production_findings(app, state)
    if not quiet:
        for warning in (f for f in found if f.level != "error"):
            log.warning("[%s] %s %s", warning.id, warning.message, warning.fix)
    return [f for f in found if f.level == "error"]


#: Set in the WSGI environment by Werkzeug's debugger when it can run code (``evalex``).
_DEBUGGER_KEY = "werkzeug.debug.preserve_context"


def guard_debug(app: Flask) -> None:
    """Refuse every request once debug mode or Werkzeug's debugger is on in production.

    The second line behind :func:`start_up`, for what start-up cannot see: ``app.debug = True``
    or ``app.run(debug=True)`` after ``Complete(app)``. The debugger answers its own
    ``/console`` before the app sees a request, so only start-up keeps that closed.
    """
    config = app.config
    logged = False

    def refuse_debug() -> Response | None:
        if not config["DEBUG"] and _DEBUGGER_KEY not in request.environ:
            return None
        nonlocal logged
        if not logged:
            logged = True
            if config["DEBUG"]:
                how = "DEBUG was switched on after Complete(app), e.g. by app.run(debug=True)"
            else:
                how = "Werkzeug's debugger wraps the app (e.g. app.run(use_debugger=True))"
            log.error(
                "[debug.on] %s in production: every request is refused. Run production "
                "without debug, under a WSGI server (gunicorn, waitress).",
                how,
            )
        return app.response_class(
            "Server misconfigured: debug mode is on in production; see the server log.\n",
            status=500,
            mimetype="text/plain",
        )

    app.before_request(refuse_debug)


def run_checks(app: Flask, *, deploy: bool = False) -> list[Problem]:
    """Every finding for ``app``: the refusals init collected, then each check.

    :param deploy: Also run the production checks outside production.
    """
    from ..state import get_state
    from .versions import bundled

    state = get_state(app)
    findings = list(state.problems)
    findings += [p for p in state.settings.problems if p.level != "error"]
    if deploy or state.env == "production":
        findings += production_findings(app, state)
    database_known = not any(p.id in _NO_DATABASE for p in findings)
    if state.db is not None and "sqlalchemy" in app.extensions and database_known:
        from .database import database_findings

        findings += database_findings(app, state)
    findings += check_tracked(tracked_secret_files(state.root))
    findings += check_committed(committed_secrets(state.root))
    findings += check_auth_routes(app)
    from .credentials import plaintext_secrets, tracked_keys

    findings += tracked_keys(state.root, app.instance_path)
    if deploy or state.env == "production":
        findings += plaintext_secrets(state.root)
    # Not installed as a distribution: no ranges to compare against.
    with contextlib.suppress(LookupError):
        findings += check_versions(bundled())
    unique: dict[tuple[str, str, str], Problem] = {}
    for finding in findings:
        unique.setdefault((finding.id, finding.key, finding.message), finding)
    return list(unique.values())

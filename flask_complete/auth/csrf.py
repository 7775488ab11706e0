"""CSRF protection for cookie-authenticated unsafe requests: a session token plus an Origin check.

The token is handed out by ``POST /auth/login`` and ``GET /auth/me`` (JSON field ``csrf_token``
and an ``XSRF-TOKEN`` cookie) and by the ``csrf_token()`` template global; it comes back in the
``X-CSRF-Token`` header or a ``csrf_token`` form field. Requests authenticated by a bearer token
carry no ambient credentials and are exempt, as are anonymous requests and safe methods. For an
app with its own login, whose session keys are unknown, any request carrying the app's session
cookie counts as cookie-authenticated.
"""

from __future__ import annotations

import re
import secrets
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import abort, current_app, request, session

from .models import constant_equal

if t.TYPE_CHECKING:
    from flask import Flask, Response

SESSION_KEY = "_csrf_token"
COOKIE_NAME = "XSRF-TOKEN"
HEADER_NAME = "X-CSRF-Token"
FIELD_NAME = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_STATE_KEY = "complete.csrf"

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def token() -> str:
    """The session's CSRF token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return value


def rotate() -> str:
    """A new token for the session (at login: a token seen before login is worthless after)."""
    session.pop(SESSION_KEY, None)
    return token()


def clear(response: Response | None = None) -> None:
    """Forget the token (at logout), and delete its cookie from ``response``."""
    session.pop(SESSION_KEY, None)
    if response is not None:
        response.delete_cookie(COOKIE_NAME, path="/")


def set_cookie(response: Response, value: str) -> None:
    """Send the token as the ``XSRF-TOKEN`` cookie, readable by the page's JavaScript."""
    config = current_app.config
    response.set_cookie(
        COOKIE_NAME,
        value,
        secure=bool(config.get("SESSION_COOKIE_SECURE")),
        samesite=config.get("SESSION_COOKIE_SAMESITE") or "Lax",
        httponly=False,
        path="/",
    )


def exempt(view: F) -> F:
    """Exempt ``view`` from the CSRF check (a webhook with its own signature, say)."""
    view._csrf_exempt = True  # type: ignore[attr-defined]
    return view


@dataclass(frozen=True)
class _Policy:
    """Per-app CSRF settings, at ``app.extensions["complete.csrf"]``."""

    trusted: list[re.Pattern[str]]
    #: The app has its own login (no user model): a request carrying its session cookie is
    #: cookie-authenticated, whatever the login keeps in the session (``session["user_id"]``).
    session_login: bool


def install(
    app: Flask, *, everywhere: bool, blueprint: t.Any = None, session_login: bool = False
) -> None:
    """Check unsafe requests on every endpoint (``everywhere``) or on ``blueprint``'s only.

    :param session_login: The app has its own login: its session cookie authenticates.
    """
    app.extensions[_STATE_KEY] = _Policy(_trusted_origins(app), session_login)
    if everywhere:
        app.before_request(protect)
    elif blueprint is not None:
        blueprint.before_request(protect)
    # A context processor rather than a Jinja global: touching app.jinja_env builds the whole
    # template environment at init (about 1 ms per app).
    app.context_processor(_template_globals)


def _template_globals() -> dict[str, t.Any]:
    return {"csrf_token": token}


def protect() -> None:
    """``before_request``: refuse a cookie-authenticated unsafe request without a valid token or
    from a foreign origin. Returns at once for safe methods."""
    if request.method in SAFE_METHODS:
        return
    endpoint = request.endpoint
    view = current_app.view_functions.get(endpoint) if endpoint else None
    if view is not None and getattr(view, "_csrf_exempt", False):
        return
    if not cookie_authenticated():
        return
    check_origin()
    require_token(request.headers.get(HEADER_NAME) or request.form.get(FIELD_NAME))


def require_token(sent: object) -> None:
    """Refuse (403) unless ``sent`` is this session's token."""
    expected = session.get(SESSION_KEY)
    if not isinstance(sent, str) or not sent:
        abort(
            403,
            description=(
                "CSRF token missing: send the session's token (csrf_token() in a template, or "
                f"csrf_token from /auth/login or /auth/me) in the {HEADER_NAME} header or a "
                f"{FIELD_NAME} form field."
            ),
        )
    if not isinstance(expected, str) or not constant_equal(sent, expected):
        abort(
            403,
            description=(
                "CSRF token invalid or from another session: reload the page (or fetch "
                "/auth/me) for a fresh one."
            ),
        )


def check_origin() -> None:
    """Refuse a request whose ``Origin`` (or, without one, ``Referer``) is another site that is
    not in ``AUTH_TRUSTED_ORIGINS`` or the CORS origins. Requests naming no origin pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin != "null":
        host = urlsplit(origin).netloc.lower()
        if host and host == request.host.lower():
            return
        policy = current_app.extensions.get(_STATE_KEY)
        if policy is not None and any(p.fullmatch(origin) for p in policy.trusted):
            return
    abort(
        403,
        description=(
            f"Cross-site request refused: origin {origin[:100]!r} is not this site. "
            "Add it to AUTH_TRUSTED_ORIGINS if it is yours."
        ),
    )


def cookie_authenticated() -> bool:
    """Whether the request is authenticated by cookies: a Flask-Login session or remember
    cookie, or, for an app with its own login, the app's session cookie."""
    from .state import state_or_none

    auth = state_or_none()
    if auth is not None and auth.bearer_first and _has_bearer():
        # The bundle's loader ignores the session when a bearer token is sent.
        return False
    config = current_app.config
    policy = current_app.extensions.get(_STATE_KEY)
    if (
        policy is not None
        and policy.session_login
        and config["SESSION_COOKIE_NAME"] in request.cookies
    ):
        return True
    cookie = config.get("REMEMBER_COOKIE_NAME", "remember_token")
    return "_user_id" in session or cookie in request.cookies


def _has_bearer() -> bool:
    header = request.headers.get("Authorization", "")
    return header[:7].lower() == "bearer "


def _trusted_origins(app: Flask) -> list[re.Pattern[str]]:
    trusted = app.config.get("AUTH_TRUSTED_ORIGINS") or []
    entries = [trusted] if isinstance(trusted, str) else list(trusted)
    cors = app.config.get("CORS_ORIGINS")
    if app.config.get("CORS_SUPPORTS_CREDENTIALS") and cors and cors != "*":
        entries += [cors] if isinstance(cors, str) else list(cors)
    patterns = []
    for entry in entries:
        if not isinstance(entry, str) or entry == "*":
            continue
        try:
            from ..web.cors import origin_pattern

            patterns.append(origin_pattern(entry))
        except (ImportError, ValueError):
            patterns.append(re.compile(re.escape(entry.rstrip("/")), re.IGNORECASE))
    return patterns

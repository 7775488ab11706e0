"""View decorators: ``login_required`` and role checks.

Flask-Login's ``login_required`` lets every ``OPTIONS`` request through, so a view that handles
``OPTIONS`` itself becomes reachable without a login. These exempt only real CORS preflights (an
``OPTIONS`` request carrying ``Access-Control-Request-Method``), and patch nothing global.
"""

from __future__ import annotations

import functools
import typing as t

from flask import abort, current_app, request
from flask_login import current_user

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def is_preflight() -> bool:
    """Whether the request is a CORS preflight."""
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _login_disabled() -> bool:
    # Production refuses LOGIN_DISABLED at start; set later, it is ignored there all the same.
    config = current_app.config
    return bool(config.get("LOGIN_DISABLED")) and config.get("COMPLETE_ENV") != "production"


def _protect(view: F, roles: tuple[str, ...]) -> F:
    @functools.wraps(view)
    def wrapped(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if is_preflight():
            # Answer the preflight here (flask-cors adds its headers): the view never runs
            # for an anonymous client, even when it handles OPTIONS itself.
            return current_app.make_default_options_response()
        if not _login_disabled():
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            has_role = getattr(current_user, "has_role", None)
            if roles and (has_role is None or not all(has_role(role) for role in roles)):
                abort(403, description=f"This needs the role(s): {', '.join(roles)}.")
        return current_app.ensure_sync(view)(*args, **kwargs)

    return t.cast(F, wrapped)


def login_required(view: F) -> F:
    """Refuse the view to anonymous users with the login manager's ``unauthorized()`` (a 401,
    or a redirect to ``login_view`` when the app set one)."""
    return _protect(view, ())


def role_required(*roles: str) -> t.Callable[[F], F]:
    """Like :func:`login_required`, and refuse with 403 a user lacking any of ``roles``
    (checked with ``user.has_role(role)``)."""
    return lambda view: _protect(view, roles)


def admin_required(view: F) -> F:
    """Like :func:`login_required`, and refuse with 403 a user who is not an admin."""
    return role_required("admin")(view)

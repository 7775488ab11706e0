"""Authentication: Flask-Login wired to a user model, API tokens, throttling, CSRF, ``flask users``.

Inert without a user model (``Complete(app, user_model=User)``): an app with its own login keeps
working. Importing this package is cheap; the pieces are imported when an app wires them.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from flask import Flask

    from ..settings.config import Problem
    from ..state import CompleteState
    from .csrf import exempt as csrf_exempt
    from .decorators import admin_required, login_required, role_required
    from .models import ApiTokenMixin, UserMixin
    from .passwords import PasswordError


__all__ = [
    "ApiTokenMixin",
    "PasswordError",
    "UserMixin",
    "admin_required",
    "csrf_exempt",
    "init_app",
    "login_required",
    "role_required",
]

_EXPORTS = {
    "ApiTokenMixin": ("models", "ApiTokenMixin"),
    "UserMixin": ("models", "UserMixin"),
    "PasswordError": ("passwords", "PasswordError"),
    "admin_required": ("decorators", "admin_required"),
    "login_required": ("decorators", "login_required"),
    "role_required": ("decorators", "role_required"),
    "csrf_exempt": ("csrf", "exempt"),
}


def __getattr__(name: str) -> t.Any:
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def init_app(app: Flask, state: CompleteState) -> None:
    """Wire auth into ``app`` when a user model is given; otherwise only the opt-in CSRF check
    (``CSRF_PROTECT = true``) for an app with its own login."""
    from .flags import csrf_flag

    if state.user_model is None:
        # Read from app.config, so that a value set in code is judged too.
        flag = csrf_flag(app.config.get("CSRF_PROTECT", "auto"))
        if flag == "invalid":
            state.problems.append(_invalid_flag(app, state))
        elif flag is True:
            from . import csrf

            csrf.install(app, everywhere=True, session_login=True)
        return
    from . import wiring

    wiring.setup(app, state)


def _invalid_flag(app: Flask, state: CompleteState) -> Problem:
    from ..settings.config import Problem

    value = app.config.get("CSRF_PROTECT")
    source = state.settings.sources.get("CSRF_PROTECT", "code")
    return Problem(
        "auth.setting",
        "CSRF_PROTECT",
        f"CSRF_PROTECT = {value!r} (from {source}) is not valid, and a security switch is "
        "never guessed: it would leave cross-site requests unchecked.",
        'Write CSRF_PROTECT = true, false or "auto" (TOML booleans take no quotes; in the '
        "environment FLASK_CSRF_PROTECT=true).",
    )

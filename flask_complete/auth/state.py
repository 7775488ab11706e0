"""The per-app auth state (``app.extensions["complete.auth"]``) and how the rest of auth reaches
it. Imports only :mod:`.models` (and the settings' :class:`~flask_complete.settings.config.Problem`
for type hints)."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from .models import ApiTokenMixin, UserMixin, find_token_model, normalise_email

if t.TYPE_CHECKING:
    from flask import Flask
    from flask_login import LoginManager
    from flask_sqlalchemy import SQLAlchemy

    from . import sessions, throttle

STATE_KEY = "complete.auth"

_UNSET: t.Any = object()


@dataclass
class AuthState:
    """Per-app auth state, at ``app.extensions["complete.auth"]``."""

    db: SQLAlchemy
    user_model: type[t.Any]
    manager: LoginManager
    #: The app had its own ``LoginManager``; it is used as it is.
    adopted: bool
    #: The bundle's manager: a bearer token wins over the session cookie.
    bearer_first: bool
    login_field: str
    password_method: str
    token_days: int
    token_max_days: int
    policy: throttle.Policy
    throttle: throttle.Throttle | None
    #: Server-side sessions (``AUTH_SESSIONS``), also with an adopted login manager.
    sessions: sessions.Store | None
    #: ``"everywhere"``, ``"blueprint"`` (only the bundle's endpoints) or ``"off"``.
    csrf: str
    #: Called with the login record's id after a login is recorded (an adopted login manager
    #: keeps it in its own remember cookie).
    on_recorded: t.Callable[[str], None] | None = None
    _token_model: t.Any = field(default=_UNSET, repr=False)

    def login_key(self, value: str) -> str:
        """``value`` in the form the login column stores: normalised for the mixin's email,
        only stripped for a model of the app's own (it decides how it stores them)."""
        if self.login_field == "email" and issubclass(self.user_model, UserMixin):
            return normalise_email(value)
        return value.strip()

    def find_user(self, key: str) -> t.Any:
        """The user whose login column holds exactly ``key``, or ``None``."""
        model = self.user_model
        column = getattr(model, self.login_field)
        bind = self.db.session.get_bind(mapper=sa.inspect(model))
        return self.db.session.execute(
            sa.select(model).where(exact(column, key, bind.dialect.name))
        ).scalar()

    def token_model(self) -> type[ApiTokenMixin] | None:
        """The app's API token model (the ``ApiTokenMixin`` subclass beside the user model)."""
        if self._token_model is _UNSET:
            self._token_model = find_token_model(self.user_model)
        return t.cast("type[ApiTokenMixin] | None", self._token_model)


def tables(auth: AuthState) -> list[sa.Table]:
    """The tables the login reads and writes: the users', the API tokens', the login records'
    and the throttle's (those in the database)."""
    found = [auth.user_model.__table__]
    token_model = auth.token_model()
    if token_model is not None:
        found.append(token_model.__table__)  # type: ignore[attr-defined]
    for store in (auth.sessions, auth.throttle):
        table = getattr(store, "table", None)  # None for their Redis stores
        if isinstance(table, sa.Table):
            found.append(table)
    return found


def exact(column: t.Any, value: str, dialect: str) -> t.Any:
    """``column == value``, compared exactly: MySQL's default ``utf8mb4_general_ci`` finds
    ``"ann@"`` for ``"ànn@"``, so there the bytes are compared too (after the plain comparison,
    which keeps using the index)."""
    condition = column == value
    if dialect in ("mysql", "mariadb"):
        condition = sa.and_(
            condition, sa.cast(column, sa.BINARY) == sa.cast(sa.literal(value), sa.BINARY)
        )
    return condition


def get_auth() -> AuthState:
    """The auth state of the current app; a clear error when auth is not wired."""
    auth = current_app.extensions.get(STATE_KEY)
    if auth is None:
        raise RuntimeError(
            "flask_complete auth is not wired on this app: pass the user model, "
            "Complete(app, user_model=User), and keep COMPLETE_AUTH = true."
        )
    return t.cast(AuthState, auth)


def state_or_none(app: Flask | None = None) -> AuthState | None:
    """The auth state of ``app`` (default: the current app), ``None`` when auth is not wired."""
    if app is None:
        from flask import current_app

        app = current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions.get(STATE_KEY)

"""API tokens: ``Authorization: Bearer <token>`` through Flask-Login's request loader.

A token request costs one indexed query (token joined to its user, by the token's SHA-256) and
never the password KDF. ``last_used_at`` is written at most every few minutes per token, after the
response, on a connection of its own, so that it never commits the request's work.
"""

from __future__ import annotations

import logging
import typing as t
from datetime import timedelta

import sqlalchemy as sa
from flask import after_this_request, g

from .models import ApiTokenMixin, token_digest, utcnow

if t.TYPE_CHECKING:
    from flask import Request, Response

#: How stale ``last_used_at`` may get before a request updates it.
TOUCH_EVERY = timedelta(minutes=5)
#: Longer header values are not tokens (ours are ~47 characters).
MAX_TOKEN_LENGTH = 200
log = logging.getLogger("flask_complete.auth")


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or ``None``."""
    header = request.headers.get("Authorization")
    if not header or header[:7].lower() != "bearer ":
        return None
    token = header[7:].strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        # Still a bearer request: it must not fall back to the session.
        return ""
    return token


def current_token() -> ApiTokenMixin | None:
    """The token that authenticated this request, if a token did."""
    return t.cast("ApiTokenMixin | None", g.get("_complete_token"))


def load_from_request(request: Request) -> t.Any:
    """Flask-Login's request loader: the active user owning a valid bearer token, or ``None``."""
    from .state import get_auth

    raw = bearer_token(request)
    if not raw:
        return None
    auth = get_auth()
    model = auth.token_model()
    if model is None:
        return None
    user_model = auth.user_model
    user_pk = sa.inspect(user_model).primary_key[0]
    row = auth.db.session.execute(
        sa.select(user_model, model)
        .join(model, model.user_id == user_pk)
        .where(model.digest == token_digest(raw))
    ).first()
    if row is None:
        return None
    user, token = row
    now = utcnow()
    if not token.is_valid(now) or not user.is_active:
        return None
    g._complete_token = token
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        _touch_after_response(auth.db, model, token.id, now)
    return user


def _touch_after_response(db: t.Any, model: type[ApiTokenMixin], token_id: int, now: t.Any) -> None:
    @after_this_request
    def touch(response: Response) -> Response:
        statement = sa.update(model).where(model.id == token_id).values(last_used_at=now)
        bind = db.session.get_bind(mapper=sa.inspect(model))
        try:
            if isinstance(bind, sa.Engine):
                with bind.begin() as conn:
                    conn.execute(statement)
            else:
                # A connection handed in by a test fixture: write inside its transaction.
                db.session.execute(statement)
        except sa.exc.SQLAlchemyError as e:
            log.warning("could not record the API token's last use: %s", e)
        return response


def expiry(days: int | None, default: int, maximum: int) -> timedelta:
    """The lifetime of a new token: ``days`` (default ``AUTH_TOKEN_DAYS``), at most
    ``AUTH_TOKEN_MAX_DAYS``. Raises :class:`ValueError` naming the bounds."""
    if days is None:
        days = default
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= maximum:
        raise ValueError(
            f"The token lifetime must be a whole number of days from 1 to {maximum} "
            "(AUTH_TOKEN_MAX_DAYS)."
        )
    return timedelta(days=days)


def issue(user: t.Any, name: str, days: int | None = None) -> tuple[ApiTokenMixin, str]:
    """Create, add and flush a token for ``user``; return it and its secret (shown once).
    Raises :class:`ValueError` for a bad name or lifetime, :class:`LookupError` when the app has
    no token model."""
    from .state import get_auth

    auth = get_auth()
    model = auth.token_model()
    if model is None:
        raise LookupError(
            "API tokens are not set up: declare a model with flask_complete.auth.ApiTokenMixin "
            "(class ApiToken(ApiTokenMixin, db.Model): pass) and migrate."
        )
    from ..api import clean_text

    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 100:
        raise ValueError("name is required: 1 to 100 characters.")
    problem = clean_text(name)
    if problem is not None:
        raise ValueError(f"The name {problem}.")
    token, secret = model.issue(user, name, expiry(days, auth.token_days, auth.token_max_days))
    auth.db.session.add(token)
    auth.db.session.flush()
    return token, secret

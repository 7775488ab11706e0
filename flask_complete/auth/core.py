"""The login manager and the user loader: who the request is, from a token, the session or
the remember cookie, checked against the login records."""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, redirect, request, session, url_for
from flask.globals import request_ctx
from flask_login import (
    LoginManager,
    user_unauthorized,
)
from flask_login.config import COOKIE_NAME
from flask_login.signals import user_loaded_from_cookie
from flask_login.utils import encode_cookie

from .. import api
from . import sessions, tokens
from .models import constant_equal
from .state import STATE_KEY, get_auth

if t.TYPE_CHECKING:
    from flask import Response


class BundleLoginManager(LoginManager):  # type: ignore[misc]
    """Flask-Login's manager with a cheaper request path.

    Anonymous requests return before session protection hashes the client address and browser
    string; a ``Bearer`` header is authenticated by the token alone, never by the session. A
    response whose request left the session untouched is not given ``Vary: Cookie``.
    """

    def unauthorized(self) -> t.Any:
        """A browser asking for a page is sent to the login page (with ``next`` for a ``GET``);
        JSON clients, and apps that set their own ``login_view`` or handler, as Flask-Login
        does."""
        target = None
        if self.unauthorized_callback is None and not (
            self.login_view or self.blueprint_login_views
        ):
            target = login_page_url()
        if target is None:
            return super().unauthorized()
        user_unauthorized.send(current_app._get_current_object())  # type: ignore[attr-defined]
        return redirect(target)

    def _update_remember_cookie(self, response: Response) -> Response:
        # Flask-Login reads the session after every request, which marks it accessed: every
        # response, even one the session played no part in, then gets "Vary: Cookie" (which
        # defeats shared caches) and pays for the header. The remember cookie only changes
        # when a login or logout of this request left "_remember", or with the refresh setting.
        if "_remember" not in _unmarked_session() and not current_app.config.get(
            "REMEMBER_COOKIE_REFRESH_EACH_REQUEST"
        ):
            return response
        return t.cast("Response", super()._update_remember_cookie(response))

    def _load_user(self) -> t.Any:
        if tokens.bearer_token(request) is not None:
            user = self._load_user_from_request(request) if self._request_callback else None
            return self._update_request_context_with_user(user)
        cookie = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
        if "_user_id" not in session and cookie not in request.cookies:
            return self._update_request_context_with_user()
        return super()._load_user()

    def _load_user_from_remember_cookie(self, cookie: str) -> t.Any:
        # Flask-Login's, with the login's id in the cookie beside the user's.
        auth = current_app.extensions.get(STATE_KEY)
        user_id: str | None
        if auth is not None and auth.sessions is not None:
            remembered = sessions.remembered_id(cookie)
            if remembered is None:
                return None
            user_id, session[sessions.SESSION_KEY] = remembered
        else:
            user_id = sessions.decode(cookie)
        if user_id is None:
            return None
        session["_user_id"] = user_id
        session["_fresh"] = False
        user = self._user_callback(user_id) if self._user_callback else None
        if user is None:
            return None
        # Flask-Login leaves the restored session without its identifier, so "strong"
        # protection would end it on the very next request (maxcountryman/flask-login#685).
        session["_id"] = self._session_identifier_generator()
        user_loaded_from_cookie.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
        return user

    def _set_cookie(self, response: Response) -> None:
        payload = str(session["_user_id"])
        login_id = session.get(sessions.SESSION_KEY)
        auth = current_app.extensions.get(STATE_KEY)
        if auth is not None and auth.sessions is not None and login_id:
            payload = f"{payload}|{login_id}"
        set_remember_cookie(response, payload)


def login_page_url() -> str | None:
    """Where a browser logs in: the bundle's login page when it serves one and the request
    asked for a page outside the JSON prefixes; ``None`` otherwise."""
    from . import pages

    endpoint = "complete_auth.login"
    if endpoint not in current_app.view_functions or not pages.wants_html():
        return None
    if request.blueprint != "complete_auth" and api.under_prefix():
        return None
    if request.method != "GET":
        return url_for(endpoint)
    return url_for(endpoint, next=request.full_path.rstrip("?"))


def set_remember_cookie(response: Response, payload: str) -> None:
    """Flask-Login's remember cookie holding ``payload``, signed, with its settings. Flask-Login
    0.6.3 computes the expiry with ``datetime.utcnow()``, deprecated on 3.12+."""
    config = current_app.config
    if "_remember_seconds" in session:
        duration = timedelta(seconds=session["_remember_seconds"])
    else:
        duration = config.get("REMEMBER_COOKIE_DURATION", timedelta(days=14))
        if isinstance(duration, int | float):
            duration = timedelta(seconds=duration)
    response.set_cookie(
        config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME),
        value=encode_cookie(payload),
        max_age=int(duration.total_seconds()),
        expires=datetime.now(UTC) + duration,
        domain=config.get("REMEMBER_COOKIE_DOMAIN"),
        path=config.get("REMEMBER_COOKIE_PATH", "/"),
        secure=config.get("REMEMBER_COOKIE_SECURE", False),
        httponly=config.get("REMEMBER_COOKIE_HTTPONLY", True),
        samesite=config.get("REMEMBER_COOKIE_SAMESITE"),
    )


def _unmarked_session() -> t.Mapping[str, t.Any]:
    """This request's session, read without marking it accessed (as ``flask.session`` does):
    Flask keeps it in ``_session``, behind the property that marks it."""
    # Without that private attribute (a Flask that moved it; flask_complete.hooks warns at
    # init), the public session: correct, only marked accessed.
    raw = getattr(request_ctx._get_current_object(), "_session", session)  # type: ignore[attr-defined]
    return t.cast("t.Mapping[str, t.Any]", raw) if raw is not None else {}


def load_user(user_id: str) -> t.Any:
    """Flask-Login's user loader: one primary-key lookup (the identity map's, if loaded), then
    the session token compared in constant time."""
    auth = get_auth()
    model = auth.user_model
    ident, sep, token = str(user_id).partition(":")
    pk_column = sa.inspect(model).primary_key[0]
    try:
        pk: t.Any = pk_column.type.python_type(ident)
    except (ValueError, TypeError, NotImplementedError):
        return None
    if isinstance(pk, int) and not api.fits(pk_column, pk):
        return None
    if auth.sessions is not None:
        # The login's record, joined to the user: still one query per request.
        login_id = session.get(sessions.SESSION_KEY)
        user = None
        if isinstance(login_id, str) and login_id:
            user = auth.sessions.user(model, pk, login_id)
        if user is None:
            # Ended (logout, another device, an admin) or never recorded: forget it.
            session.pop("_user_id", None)
            session.pop(sessions.SESSION_KEY, None)
            return None
    else:
        user = auth.db.session.get(model, pk)
    if user is None or not user.is_active:
        return None
    expected = getattr(user, "session_token", None)
    if expected is not None and not (sep and constant_equal(token, expected)):
        # The password changed (or the user was deactivated) since this session began.
        return None
    return user

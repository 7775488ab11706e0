"""The JSON endpoints: login, logout, me and API tokens (blueprint ``complete_auth``).

Mounted at ``AUTH_URL_PREFIX`` (default ``/auth``); ``AUTH_ENDPOINTS = false`` leaves them out.
Every answer is JSON, a bad input a ``4xx`` naming the fix, a lost database a ``503`` with
``Retry-After``; bodies are read up to 64 KiB.
"""

from __future__ import annotations

import logging
import typing as t

import sqlalchemy as sa
from flask import Blueprint, Response, abort, jsonify, make_response, request
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from .. import api
from . import csrf, passwords, sessions, throttle, tokens
from .core import AuthState, get_auth
from .decorators import login_required
from .models import UserMixin, new_session_token, utcnow

log = logging.getLogger("flask_complete.auth")

#: One answer for an unknown account, a wrong password and a deactivated user.
INVALID = "Invalid email or password."
_TRUE = ("1", "true", "on", "yes")
#: Longer logins are not looked up (RFC 5321 caps an address at 254 characters).
_MAX_LOGIN = 320


def _json_error(error: HTTPException) -> t.Any:
    response = api.error_response(error)
    if error.code == 401:
        message = "Log in first (POST /auth/login) or send an Authorization: Bearer token."
        response.set_data(jsonify(error=message).get_data())
    return response


def _database_error(error: Exception) -> t.Any:
    return api.error_response(api.unavailable(error))


def _csrf_on_bundle_endpoints() -> None:
    # With an adopted LoginManager the app-wide check is opt-in, but these endpoints always check.
    if get_auth().csrf == "blueprint":
        csrf.protect()


def _lookup_key(auth: AuthState, login: str) -> str | None:
    """``login`` in its stored form, or ``None`` when it cannot name any account (empty, too
    long, not text, control characters)."""
    key = auth.login_key(login)
    if not key or len(key) > _MAX_LOGIN or passwords.usable(key) is None:
        return None
    return key


def _user_dict(auth: AuthState, user: t.Any) -> dict[str, t.Any]:
    if hasattr(user, "auth_dict"):
        return t.cast("dict[str, t.Any]", user.auth_dict())
    return {"id": _user_pk(user), auth.login_field: getattr(user, auth.login_field, None)}


def _user_pk(user: t.Any) -> t.Any:
    return sa.inspect(user).identity[0]


def _too_many(seconds: int) -> Response:
    response = jsonify(error=f"Too many failed logins: try again in {seconds} seconds.")
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def _throttle_down(error: throttle.StoreUnavailable) -> Response:
    # Without a count no password is checked: a right one must not stand out from wrong ones.
    log.error(
        "logins answer 503 until the login throttle's storage is back: %s "
        "(AUTH_THROTTLE_FAIL_OPEN = true would let them through unthrottled)",
        error,
    )
    message = "Logging in is unavailable at the moment; try again shortly."
    answer = api.error_response(ServiceUnavailable(message, retry_after=api.RETRY_AFTER))
    return t.cast(Response, answer)


@csrf.exempt
def login() -> Response:
    """Log in with the login field and password (JSON or form); ``remember`` is optional."""
    auth = get_auth()
    if auth.csrf != "off":
        # No session to ride yet, but a foreign page must not log the browser into an account.
        csrf.check_origin()
    data = api.json_body(form=True)
    login_value, password = data.get(auth.login_field), data.get("password")
    if not isinstance(login_value, str) or not isinstance(password, str) or not password:
        abort(400, description=f"Send {auth.login_field} and password as strings.")
    key = _lookup_key(auth, login_value)
    reservation: throttle.Reservation | None = None
    if auth.throttle is not None:
        # Reserved before the password is checked: parallel attempts cannot outrun the count.
        keys = [
            (throttle.account_key(key or login_value[:_MAX_LOGIN]), auth.policy.account_limit),
            (throttle.address_key(request.remote_addr or "unknown"), auth.policy.address_limit),
        ]
        try:
            reserved = auth.throttle.reserve(keys)
        except throttle.StoreUnavailable as e:
            if not auth.policy.fail_open:
                return _throttle_down(e)
            log.error("login throttling is off (AUTH_THROTTLE_FAIL_OPEN = true): %s", e)
            reserved = throttle.Reservation()
        if isinstance(reserved, int):
            return _too_many(reserved)
        reservation = reserved

    user = auth.find_user(key) if key is not None else None
    if user is None or passwords.usable(password) is None:
        # Same cost as a real check; the app's own check_password never sees unusable input.
        passwords.verify(None, password, auth.password_method)
        ok = False
    else:
        ok = bool(user.check_password(password)) and bool(user.is_active)
    if not ok:
        response = jsonify(error=INVALID)
        response.status_code = 401
        return response

    if reservation is not None and auth.throttle is not None:
        auth.throttle.release(reservation)
    # Nothing of the session before the login carries into it (fixation), and the browser's
    # previous login ends.
    sessions.start_afresh(auth)
    if isinstance(user, UserMixin):
        if user.password_needs_rehash():
            user.rehash_password(password)
        user.last_login_at = utcnow()
    remember = data.get("remember")
    remember = remember is True or (isinstance(remember, str) and remember.lower() in _TRUE)
    auth.db.session.flush()
    body: dict[str, t.Any] = {"user": _user_dict(auth, user)}
    # The session record is written in this transaction: the login and its record commit
    # together, or neither does.
    login_user(user, remember=remember)
    auth.db.session.commit()
    if auth.csrf != "off":
        body["csrf_token"] = csrf.rotate()
    response = jsonify(body)
    if auth.csrf != "off":
        csrf.set_cookie(response, body["csrf_token"])
    return response


def logout() -> Response:
    """End this login: its session and remember cookie stop working on every worker at once.
    ``?everywhere=1`` ends every login of the user (API tokens stay)."""
    auth = get_auth()
    everywhere = request.args.get("everywhere", "").strip().lower() in _TRUE
    if everywhere and current_user.is_authenticated:
        if auth.sessions is not None:
            auth.sessions.revoke_user(_user_pk(current_user))
        elif hasattr(current_user, "session_token"):
            # Without records, a new session token ends every session and remember cookie.
            current_user.session_token = new_session_token()
    logout_user()
    auth.db.session.commit()
    response = make_response("", 204)
    csrf.clear(response)
    return response


@login_required
def me() -> Response:
    """The logged-in user; for a cookie session also a fresh ``csrf_token``."""
    auth = get_auth()
    token = tokens.current_token()
    body: dict[str, t.Any] = {
        "user": _user_dict(auth, current_user),
        "authenticated_by": "token" if token is not None else "session",
    }
    if token is None and auth.csrf != "off":
        body["csrf_token"] = csrf.token()
    response = jsonify(body)
    if "csrf_token" in body:
        csrf.set_cookie(response, body["csrf_token"])
    return response


def _token_model(auth: AuthState) -> t.Any:
    model = auth.token_model()
    if model is None:
        abort(
            404,
            description=(
                "API tokens are not set up: declare a model with "
                "flask_complete.auth.ApiTokenMixin and migrate."
            ),
        )
    return model


@login_required
def list_tokens() -> Response:
    """The user's API tokens (never their secrets)."""
    auth = get_auth()
    model = _token_model(auth)
    rows = auth.db.session.scalars(
        sa.select(model)
        .where(model.user_id == _user_pk(current_user))
        .order_by(model.created_at.desc(), model.id.desc())
    )
    return jsonify(tokens=[row.auth_dict() for row in rows])


@login_required
def create_token() -> tuple[Response, int]:
    """Create a named token; its secret is in this response only."""
    auth = get_auth()
    model = _token_model(auth)
    if tokens.current_token() is not None:
        abort(
            403,
            description=(
                "Create tokens from a logged-in session (or `flask users token`), not with a "
                "token: a leaked token must not be able to mint others."
            ),
        )
    data = api.json_body(form=True)
    name = api.text(data, "name", required=False, column=model.name)
    days = data.get("expires_in_days")
    if isinstance(days, str) and days.strip().isascii() and days.strip().isdigit():
        days = int(days)
    try:
        token, secret = tokens.issue(current_user, name or "", days)
    except ValueError as e:
        abort(400, description=str(e))
    auth.db.session.commit()
    return jsonify({**token.auth_dict(), "token": secret}), 201


@login_required
def revoke_token(token_id: int) -> Response:
    """Revoke one of the user's tokens."""
    auth = get_auth()
    model = _token_model(auth)
    # Beyond the id column's range nothing can match (PostgreSQL would refuse the query).
    token = auth.db.session.get(model, token_id) if api.fits(model.id, token_id) else None
    if token is None or token.user_id != _user_pk(current_user):
        abort(404, description="No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        auth.db.session.commit()
    return make_response("", 204)


#: The endpoints, under ``AUTH_URL_PREFIX``: rule, view, methods.
ROUTES: tuple[tuple[str, t.Callable[..., t.Any], tuple[str, ...]], ...] = (
    ("/login", login, ("POST",)),
    ("/logout", logout, ("POST",)),
    ("/me", me, ("GET",)),
    ("/tokens", list_tokens, ("GET",)),
    ("/tokens", create_token, ("POST",)),
    ("/tokens/<int:token_id>", revoke_token, ("DELETE",)),
)


def blueprint(skip: t.Collection[str] = ()) -> Blueprint:
    """The endpoints as blueprint ``complete_auth`` for one app, without the rules in ``skip``
    (URLs the app serves itself)."""
    from . import routes

    bp = Blueprint("complete_auth", __name__)
    # First: a request for a URL the app also serves is the app's (routes it added later).
    bp.before_request(routes.yield_to_app)
    bp.before_request(_csrf_on_bundle_endpoints)
    bp.register_error_handler(HTTPException, _json_error)
    for error in api.DATABASE_UNAVAILABLE:
        bp.register_error_handler(error, _database_error)
    for rule, view, methods in ROUTES:
        if rule not in skip:
            bp.add_url_rule(rule, view_func=view, methods=list(methods))
    return bp

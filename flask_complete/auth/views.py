"""The JSON endpoints: login, logout, me and API tokens (blueprint ``complete_auth``).

Mounted at ``AUTH_URL_PREFIX`` (default ``/auth``); ``AUTH_ENDPOINTS = false`` leaves them out.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from flask import Blueprint, Response, abort, jsonify, make_response, request
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException

from . import csrf, passwords, throttle, tokens
from .core import AuthState, get_auth
from .decorators import login_required
from .models import UserMixin, utcnow

bp = Blueprint("complete_auth", __name__)

#: One answer for an unknown account, a wrong password and a deactivated user.
INVALID = "Invalid email or password."
_TRUE = ("1", "true", "on", "yes")
#: Longer logins are not looked up (RFC 5321 caps an address at 254 characters).
_MAX_LOGIN = 320


@bp.errorhandler(HTTPException)
def _json_error(error: HTTPException) -> t.Any:
    message = error.description
    if error.code == 401:
        message = "Log in first (POST /auth/login) or send an Authorization: Bearer token."
    response = error.get_response()
    response.set_data(jsonify(error=message).get_data())
    response.mimetype = "application/json"
    return response


@bp.before_request
def _csrf_on_bundle_endpoints() -> None:
    # With an adopted LoginManager the app-wide check is opt-in, but these endpoints always check.
    if get_auth().csrf == "blueprint":
        csrf.protect()


def _payload() -> dict[str, t.Any]:
    """The request's fields, from a JSON object or a form."""
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:
            data = None
        if not isinstance(data, dict):
            abort(400, description="Send a JSON object (Content-Type: application/json).")
        return data
    return request.form.to_dict()


def _lookup_key(auth: AuthState, login: str) -> str | None:
    """``login`` in its stored form, or ``None`` when it cannot name any account."""
    key = auth.login_key(login)
    if not key or len(key) > _MAX_LOGIN or "\x00" in key or passwords.usable(key) is None:
        return None
    return key


def _find_user(auth: AuthState, key: str | None) -> t.Any:
    if key is None:
        return None
    column = getattr(auth.user_model, auth.login_field)
    return auth.db.session.execute(sa.select(auth.user_model).where(column == key)).scalar()


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


@bp.post("/login")
@csrf.exempt
def login() -> Response:
    """Log in with the login field and password (JSON or form); ``remember`` is optional."""
    auth = get_auth()
    if auth.csrf != "off":
        # No session to ride yet, but a foreign page must not log the browser into an account.
        csrf.check_origin()
    data = _payload()
    login_value, password = data.get(auth.login_field), data.get("password")
    if not isinstance(login_value, str) or not isinstance(password, str) or not password:
        abort(400, description=f"Send {auth.login_field} and password as strings.")
    key = _lookup_key(auth, login_value)
    failed_keys: list[tuple[str, int]] = []
    if auth.throttle is not None:
        failed_keys = [
            (throttle.account_key(key or login_value[:_MAX_LOGIN]), auth.policy.account_limit),
            (throttle.address_key(request.remote_addr or "unknown"), auth.policy.address_limit),
        ]
        wait = auth.throttle.retry_after([k for k, _ in failed_keys])
        if wait:
            return _too_many(wait)

    user = _find_user(auth, key)
    if user is None or passwords.usable(password) is None:
        # Same cost as a real check; the app's own check_password never sees unusable input.
        passwords.verify(None, password, auth.password_method)
        ok = False
    else:
        ok = bool(user.check_password(password)) and bool(user.is_active)
    if not ok:
        if auth.throttle is not None:
            auth.throttle.failure(failed_keys)
        response = jsonify(error=INVALID)
        response.status_code = 401
        return response

    if auth.throttle is not None:
        auth.throttle.success(failed_keys[0][0])
    if isinstance(user, UserMixin):
        if user.password_needs_rehash():
            user.rehash_password(password)
        user.last_login_at = utcnow()
    remember = data.get("remember")
    remember = remember is True or (isinstance(remember, str) and remember.lower() in _TRUE)
    auth.db.session.flush()
    body: dict[str, t.Any] = {"user": _user_dict(auth, user)}
    login_user(user, remember=remember)
    auth.db.session.commit()
    if auth.csrf != "off":
        body["csrf_token"] = csrf.rotate()
    response = jsonify(body)
    if auth.csrf != "off":
        csrf.set_cookie(response, body["csrf_token"])
    return response


@bp.post("/logout")
def logout() -> Response:
    """End the session and forget the remember cookie."""
    logout_user()
    response = make_response("", 204)
    csrf.clear(response)
    return response


@bp.get("/me")
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


@bp.get("/tokens")
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


@bp.post("/tokens")
@login_required
def create_token() -> tuple[Response, int]:
    """Create a named token; its secret is in this response only."""
    auth = get_auth()
    _token_model(auth)
    if tokens.current_token() is not None:
        abort(
            403,
            description=(
                "Create tokens from a logged-in session (or `flask users token`), not with a "
                "token: a leaked token must not be able to mint others."
            ),
        )
    data = _payload()
    days = data.get("expires_in_days")
    if isinstance(days, str) and days.strip().isascii() and days.strip().isdigit():
        days = int(days)
    try:
        token, secret = tokens.issue(current_user, data.get("name", ""), days)
    except ValueError as e:
        abort(400, description=str(e))
    auth.db.session.commit()
    return jsonify({**token.auth_dict(), "token": secret}), 201


@bp.delete("/tokens/<int:token_id>")
@login_required
def revoke_token(token_id: int) -> Response:
    """Revoke one of the user's tokens."""
    auth = get_auth()
    model = _token_model(auth)
    token = auth.db.session.get(model, token_id)
    if token is None or token.user_id != _user_pk(current_user):
        abort(404, description="No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        auth.db.session.commit()
    return make_response("", 204)

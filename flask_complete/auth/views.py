"""The JSON endpoints: login, logout, me and API tokens (blueprint ``complete_auth``).

Mounted at ``AUTH_URL_PREFIX`` (default ``/auth``); ``AUTH_ENDPOINTS = false`` leaves them out.
Every answer is JSON, a bad input a ``4xx`` naming the fix, a lost database a ``503`` with
``Retry-After``; bodies are read up to 64 KiB.
"""

from __future__ import annotations

import logging
import typing as t

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, jsonify, make_response, redirect, request
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException, ServiceUnavailable
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import api
from . import csrf, pages, passwords, sessions, throttle, tokens
from .decorators import login_required
from .models import UserMixin, new_session_token, utcnow
from .state import AuthState, get_auth

log = logging.getLogger("flask_complete.auth")

#: One answer for an unknown account, a wrong password and a deactivated user.
INVALID = "Invalid email or password."
_TRUE = ("1", "true", "on", "yes")
#: Longer logins are not looked up (RFC 5321 caps an address at 254 characters).
_MAX_LOGIN = 320


def _json_error(error: HTTPException) -> t.Any:
    if pages.wants_html():
        return pages.error_page(error)
    response = api.error_response(error)
    if error.code == 401:
        message = "Log in first (POST /auth/login) or send an Authorization: Bearer token."
        response.set_data(jsonify(error=message).get_data())
    return response


def _database_error(error: Exception) -> t.Any:
    # A 503 only while nothing can have been written (a login commits its session record).
    return api.error_response(api.database_error(error))


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


def _throttle_down(error: throttle.StoreUnavailable) -> WerkzeugResponse:
    # Without a count no password is checked: a right one must not stand out from wrong ones.
    log.error(
        "logins answer 503 until the login throttle's storage is back: %s "
        "(AUTH_THROTTLE_FAIL_OPEN = true would let them through unthrottled)",
        error,
    )
    message = "Logging in is unavailable at the moment; try again shortly."
    return api.error_response(ServiceUnavailable(message, retry_after=api.RETRY_AFTER))


def _invalid() -> Response:
    response = jsonify(error=INVALID)
    response.status_code = 401
    return response


def _authenticate(
    auth: AuthState, login_value: str, password: str
) -> tuple[t.Any, throttle.Reservation | None] | WerkzeugResponse:
    """The user ``login_value`` names if ``password`` is theirs, with the throttle's
    reservation to release; else the JSON refusal (401 alike for every failure, 429, 503)."""
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
        return _invalid()
    return user, reservation


def _begin(auth: AuthState, user: t.Any, password: str | None) -> None:
    """Start a new login of ``user`` in this browser, up to the login itself (:func:`_finish`):
    the previous one ends and the user row is updated (a rehash of a just-checked ``password``)."""
    # Nothing of the session before the login carries into it (fixation), and the browser's
    # previous login ends.
    sessions.start_afresh(auth)
    if isinstance(user, UserMixin):
        if password is not None and user.password_needs_rehash():
            user.rehash_password(password)
        user.last_login_at = utcnow()
    auth.db.session.flush()


def _finish(auth: AuthState, user: t.Any, remember: bool) -> str | None:
    """Log ``user`` in and commit; the session's new CSRF token, if CSRF is on."""
    # The session record is written in this transaction: the login and its record commit
    # together, or neither does.
    login_user(user, remember=remember)
    auth.db.session.commit()
    return csrf.rotate() if auth.csrf != "off" else None


def _as_page(refusal: WerkzeugResponse, **context: t.Any) -> Response:
    """A JSON refusal of the login as the login page, with its status and headers."""
    body = refusal.get_json(silent=True) or {}
    page = pages.login_page(str(body.get("error", INVALID)), refusal.status_code, **context)
    if "Retry-After" in refusal.headers:
        page.headers["Retry-After"] = refusal.headers["Retry-After"]
    return page


def _form_token_refused() -> str | None:
    """For a page's form: why its CSRF token is refused, or ``None`` when it is right."""
    if get_auth().csrf == "off":
        return None
    try:
        csrf.require_token(request.form.get(csrf.FIELD_NAME))
    except HTTPException:
        return "The form expired or came from another page: log in again."
    return None


@csrf.exempt
def login() -> WerkzeugResponse:
    """Log in with the login field and password (JSON or form); ``remember`` is optional.
    A browser gets the login page (``GET``) and is sent on to ``next`` after its form."""
    auth = get_auth()
    html = pages.wants_html()
    if request.method == "GET":
        if not html:
            abort(405, valid_methods=["POST"])
        return pages.login_page()
    if auth.csrf != "off":
        # No session to ride yet, but a foreign page must not log the browser into an account.
        csrf.check_origin()
    data = api.json_body(form=True)
    login_value, password = data.get(auth.login_field), data.get("password")
    kept = {"login_value": login_value if isinstance(login_value, str) else ""}
    if html:
        # A form must carry the token of the page it came from (login CSRF).
        refused = _form_token_refused()
        if refused is not None:
            return pages.login_page(refused, 403, **kept)
    if not isinstance(login_value, str) or not isinstance(password, str) or not password:
        if html:
            return pages.login_page(f"Enter your {auth.login_field} and password.", 400, **kept)
        abort(400, description=f"Send {auth.login_field} and password as strings.")
    found = _authenticate(auth, login_value, password)
    if not isinstance(found, tuple):
        return _as_page(found, **kept) if html else found
    user, reservation = found
    if reservation is not None and auth.throttle is not None:
        auth.throttle.release(reservation)
    _begin(auth, user, password)
    remember = data.get("remember")
    remember = remember is True or (isinstance(remember, str) and remember.lower() in _TRUE)
    body: dict[str, t.Any] = {"user": _user_dict(auth, user)}
    token = _finish(auth, user, remember)
    if html:
        response = make_response(redirect(pages.safe_next(data.get("next")), 303))
    else:
        if token is not None:
            body["csrf_token"] = token
        response = jsonify(body)
    if token is not None:
        csrf.set_cookie(response, token)
    return response


def logout() -> Response:
    """End this login: its session and remember cookie stop working on every worker at once.
    ``?everywhere=1`` ends every login of the user (API tokens stay). A browser gets a page
    with the button (``GET``) and is sent on to ``next`` after it."""
    auth = get_auth()
    html = pages.wants_html()
    if request.method == "GET":
        if not html:
            abort(405, valid_methods=["POST"])
        return pages.render("logout.html", next=pages.safe_next(request.args.get("next")))
    flag = request.values.get("everywhere", "").strip().lower()
    if flag in _TRUE and current_user.is_authenticated:
        if auth.sessions is not None:
            auth.sessions.revoke_user(_user_pk(current_user))
        elif hasattr(current_user, "session_token"):
            # Without records, a new session token ends every session and remember cookie.
            current_user.session_token = new_session_token()
    logout_user()
    auth.db.session.commit()
    if html:
        response = make_response(redirect(pages.safe_next(request.values.get("next")), 303))
    else:
        response = make_response("", 204)
    csrf.clear(response)
    return response


def _password_page(error: str | None = None, status: int = 200, **context: t.Any) -> Response:
    minimum = current_app.config.get("AUTH_PASSWORD_MIN_LENGTH", 10)
    return pages.render("password.html", status, error=error, min_length=minimum, **context)


@login_required
def change_password() -> WerkzeugResponse:
    """Change the logged-in user's password (a page for a browser, JSON otherwise): the current
    one is checked as a login's is, throttled alike; every other login of the user ends."""
    auth = get_auth()
    html = pages.wants_html()
    if tokens.current_token() is not None:
        abort(403, description="Change the password from a logged-in session, not with a token.")
    if request.method == "GET":
        if not html:
            abort(405, valid_methods=["POST"])
        return _password_page()
    if not callable(getattr(current_user, "set_password", None)):
        abort(404, description="This user model has no set_password(): mix in UserMixin.")
    data = api.json_body(form=True)
    current, new = data.get("current_password"), data.get("new_password")
    again = data.get("new_password_again", new)

    def refuse(message: str, status: int = 400) -> Response:
        if html:
            return _password_page(message, status)
        abort(status, description=message)

    if html and (refused := _form_token_refused()) is not None:
        return refuse(refused.replace("log in", "try"), 403)
    if not all(isinstance(v, str) and v for v in (current, new, again)):
        return refuse("Send current_password and new_password as strings.")
    if again != new:
        return refuse("The two new passwords differ: type the same one twice.")
    found = _authenticate(auth, getattr(current_user, auth.login_field), t.cast(str, current))
    if not isinstance(found, tuple):
        if found.status_code != 401:
            return _password_page(found.get_json()["error"], found.status_code) if html else found
        return refuse("The current password is wrong.")
    user, reservation = found
    if reservation is not None and auth.throttle is not None:
        auth.throttle.release(reservation)
    try:
        user.set_password(new)
    except passwords.PasswordError as e:
        return refuse(str(e))
    if auth.sessions is not None:
        auth.sessions.revoke_user(_user_pk(user))
    # This browser stays logged in, with a new login (every earlier one ended).
    remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    _begin(auth, user, None)
    token = _finish(auth, user, remember)
    response = _password_page(done=True) if html else jsonify(csrf_token=token)
    if token is not None:
        csrf.set_cookie(response, token)
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
    ("/login", login, ("GET", "POST")),
    ("/logout", logout, ("GET", "POST")),
    ("/password", change_password, ("GET", "POST")),
    ("/me", me, ("GET",)),
    ("/tokens", list_tokens, ("GET",)),
    ("/tokens", create_token, ("POST",)),
    ("/tokens/<int:token_id>", revoke_token, ("DELETE",)),
)


def blueprint(skip: t.Collection[str] = ()) -> Blueprint:
    """The endpoints as blueprint ``complete_auth`` for one app, without the rules in ``skip``
    (URLs the app serves itself)."""
    from . import routes

    # Its pages are templates under complete/auth/: a file at the same path in the app's own
    # templates folder wins (Flask searches the app's folder first).
    bp = Blueprint("complete_auth", __name__, template_folder="templates")
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

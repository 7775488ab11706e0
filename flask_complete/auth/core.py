"""Wiring: settings checks, the login manager, the user loader and the per-app auth state."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, redirect, request, session, url_for
from flask.globals import request_ctx
from flask_login import (
    LoginManager,
    user_accessed,
    user_logged_in,
    user_logged_out,
    user_unauthorized,
)
from flask_login.config import COOKIE_NAME
from flask_login.signals import user_loaded_from_cookie
from flask_login.utils import encode_cookie

from .. import api
from ..cli import LazyGroup
from ..settings.config import Problem
from . import STATE_KEY, _flag, csrf, passwords, sessions, throttle, tokens
from .models import ApiTokenMixin, UserMixin, constant_equal, normalise_email

if t.TYPE_CHECKING:
    from flask import Flask, Response
    from flask_sqlalchemy import SQLAlchemy

    from ..state import CompleteState

_INTS = {
    "AUTH_PASSWORD_MIN_LENGTH": 1,
    "AUTH_REMEMBER_DAYS": 1,
    "AUTH_TOKEN_DAYS": 1,
    "AUTH_TOKEN_MAX_DAYS": 1,
    "AUTH_THROTTLE_ACCOUNT_LIMIT": 1,
    "AUTH_THROTTLE_ADDRESS_LIMIT": 1,
    "AUTH_THROTTLE_DELAY": 1,
    "AUTH_THROTTLE_MAX_DELAY": 1,
    "AUTH_THROTTLE_WINDOW": 1,
}
_BOOLS = ("AUTH_ENDPOINTS", "AUTH_THROTTLE", "AUTH_THROTTLE_FAIL_OPEN", "AUTH_SESSIONS")
_STORAGES = ("AUTH_THROTTLE_STORAGE", "AUTH_SESSION_STORAGE")
_UNSET: t.Any = object()

users_group = LazyGroup(
    "users",
    help="Manage users and their API tokens.",
    lazy={
        name: f"flask_complete.cli.users:{attr}"
        for name, attr in (
            ("create", "create_command"),
            ("list", "list_command"),
            ("set-password", "set_password_command"),
            ("deactivate", "deactivate_command"),
            ("activate", "activate_command"),
            ("delete", "delete_command"),
            ("token", "token_command"),
            ("tokens", "tokens_command"),
            ("revoke-token", "revoke_token_command"),
            ("sessions", "sessions_command"),
        )
    },
)


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
            self._token_model = tokens.find_model(self.user_model)
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


def setup(app: Flask, state: CompleteState) -> None:
    """Check the settings, then wire the login manager, loaders, throttle, CSRF, views and CLI."""
    problems = check_settings(app, state)
    if problems:
        state.problems.extend(problems)
        return
    config = app.config
    assert state.db is not None and state.user_model is not None
    from .. import hooks

    hooks.usable("flask.ctx.RequestContext._session")
    hooks.usable("flask_login.LoginManager._load_user")
    existing = getattr(app, "login_manager", None)
    manager = existing if existing is not None else BundleLoginManager()
    if existing is None:
        manager.init_app(app)
    if manager._user_callback is None:
        manager.user_loader(load_user)
    if manager._request_callback is None:
        manager.request_loader(tokens.load_from_request)
    config.setdefault("REMEMBER_COOKIE_DURATION", timedelta(days=config["AUTH_REMEMBER_DAYS"]))

    policy = throttle.Policy(
        account_limit=config["AUTH_THROTTLE_ACCOUNT_LIMIT"],
        address_limit=config["AUTH_THROTTLE_ADDRESS_LIMIT"],
        delay=config["AUTH_THROTTLE_DELAY"],
        max_delay=config["AUTH_THROTTLE_MAX_DELAY"],
        window=config["AUTH_THROTTLE_WINDOW"],
        fail_open=config["AUTH_THROTTLE_FAIL_OPEN"],
    )
    metadata = getattr(state.user_model, "metadata", None)
    metadata = state.db.metadata if metadata is None else metadata
    clients: dict[str, t.Any] = {}
    store: throttle.Throttle | None = None
    if config["AUTH_THROTTLE"]:
        # Declared whatever the storage, so that every environment has the same schema.
        table = throttle.table(metadata)
        redis_url = _redis_url(app, "AUTH_THROTTLE_STORAGE")
        if redis_url:
            prefix = str(config.get("AUTH_THROTTLE_PREFIX") or "flask_complete:throttle:")
            store = throttle.RedisThrottle(_redis(clients, redis_url), prefix, policy)
        else:
            store = throttle.DatabaseThrottle(state.db, table, policy)
    logins: sessions.Store | None = None
    if config["AUTH_SESSIONS"]:
        records = sessions.table(metadata, state.user_model)
        redis_url = _redis_url(app, "AUTH_SESSION_STORAGE")
        if redis_url:
            prefix = str(config.get("AUTH_SESSION_PREFIX") or "flask_complete:session:")
            longest = max(
                sessions.as_timedelta(config["REMEMBER_COOKIE_DURATION"]),
                sessions.as_timedelta(config.get("PERMANENT_SESSION_LIFETIME", 31 * 86400)),
            )
            client = _redis(clients, redis_url)
            logins = sessions.RedisSessions(client, prefix, state.db, state.user_model, longest)
        else:
            logins = sessions.DatabaseSessions(state.db, records, state.user_model)
        user_logged_in.connect(sessions.on_login, app)
        user_logged_out.connect(sessions.on_logout, app)
        if existing is not None:
            from . import adopted

            # Before every load, whenever the app registered its loader: it checks the record.
            user_accessed.connect(adopted.check_records, app)

    flag = _flag(config.get("CSRF_PROTECT", "auto"))
    if flag is False:
        mode = "off"
    elif flag is True or existing is None:
        mode = "everywhere"
    else:
        mode = "blueprint"
    app.extensions[STATE_KEY] = AuthState(
        db=state.db,
        user_model=state.user_model,
        manager=manager,
        adopted=existing is not None,
        bearer_first=existing is None,
        login_field=str(getattr(state.user_model, "login_field", "email")),
        password_method=config["AUTH_PASSWORD_METHOD"],
        token_days=config["AUTH_TOKEN_DAYS"],
        token_max_days=config["AUTH_TOKEN_MAX_DAYS"],
        policy=policy,
        throttle=store,
        sessions=logins,
        csrf=mode,
    )
    if mode != "off":
        csrf.install(app, everywhere=mode == "everywhere")
    if config["AUTH_ENDPOINTS"]:
        _register_endpoints(app, state, config["AUTH_URL_PREFIX"].rstrip("/"))
    if "users" not in app.cli.commands:
        app.cli.add_command(users_group)
    else:
        state.notes.append(
            "The app has its own `flask users` command, so flask_complete's is not registered."
        )
    if state.env == "production":
        weak = passwords.normalise_method(config["AUTH_PASSWORD_METHOD"])
        if weak.startswith("scrypt:") and int(weak.split(":")[1]) < 2**14:
            state.notes.append(
                f"AUTH_PASSWORD_METHOD = {weak!r} is a cheap test setting; production should "
                "use the default scrypt (delete the setting)."
            )


def _register_endpoints(app: Flask, state: CompleteState, prefix: str) -> None:
    """The JSON endpoints under ``prefix``, but for URLs the app already serves: the app's
    routes win (those it adds later win at request time, see :mod:`.routes`)."""
    from . import routes, views

    taken = routes.leave_out(app, prefix, [(rule, verbs) for rule, _, verbs in views.ROUTES])
    state.notes += [f"{note}: {routes.FIX}." for note in routes.taken_notes(app)]
    app.register_blueprint(views.blueprint(skip=taken), url_prefix=prefix or None)
    # URLs under the prefix that match no endpoint (404, 405) answer JSON too.
    api.json_errors(app, f"{prefix}/")


def _redis_url(app: Flask, key: str) -> str | None:
    """The Redis URL ``key`` chooses, ``None`` for the database. ``AUTH_SESSION_STORAGE = ""``
    follows the throttle's choice; ``AUTH_THROTTLE_STORAGE = ""`` takes ``REDIS_URL`` if set."""
    storage = str(app.config.get(key) or "").strip()
    if not storage and key == "AUTH_SESSION_STORAGE":
        return _redis_url(app, "AUTH_THROTTLE_STORAGE")
    if storage == "database":
        return None
    if storage and storage != "redis":
        return storage
    url = app.config.get("REDIS_URL")
    return str(url) if url else None


def _redis(clients: dict[str, t.Any], url: str) -> t.Any:
    """One client (and connection pool) per URL for the throttle and the sessions."""
    if url not in clients:
        import redis

        clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return clients[url]


def check_settings(app: Flask, state: CompleteState) -> list[Problem]:
    """Problems with the auth settings and the user model, each naming the fix."""
    config = app.config
    found = []

    def bad(key: str, message: str, fix: str) -> None:
        found.append(Problem("auth.setting", key, message, fix))

    if state.db is None:
        bad(
            "COMPLETE_DATABASE",
            "Auth needs the database but no SQLAlchemy instance is in use.",
            "Keep COMPLETE_DATABASE = true or pass Complete(app, db=db).",
        )
    for key, low in _INTS.items():
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            bad(key, f"{key} = {value!r} is not valid.", f"Expected a whole number >= {low}.")
    for key in _BOOLS:
        if not isinstance(config.get(key), bool):
            bad(key, f"{key} = {config.get(key)!r} is not valid.", "Expected true or false.")
    origins = config.get("AUTH_TRUSTED_ORIGINS", [])
    if not isinstance(origins, list | tuple) or not all(isinstance(o, str) for o in origins):
        bad(
            "AUTH_TRUSTED_ORIGINS",
            f"AUTH_TRUSTED_ORIGINS = {origins!r} is not a list of origins.",
            'E.g. ["https://app.example.com"].',
        )
    prefix = config.get("AUTH_URL_PREFIX")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        bad("AUTH_URL_PREFIX", f"AUTH_URL_PREFIX = {prefix!r} is not a URL path.", 'E.g. "/auth".')
    method = config.get("AUTH_PASSWORD_METHOD")
    try:
        passwords.normalise_method(str(method))
    except ValueError as e:
        bad(
            "AUTH_PASSWORD_METHOD",
            f"AUTH_PASSWORD_METHOD = {method!r}: {e}.",
            'Use "scrypt" (the default) or e.g. "scrypt:32768:8:1".',
        )
    if _flag(config.get("CSRF_PROTECT", "auto")) == "invalid":
        bad(
            "CSRF_PROTECT",
            f"CSRF_PROTECT = {config.get('CSRF_PROTECT')!r} is not valid.",
            'Expected true, false or "auto".',
        )
    for key in _STORAGES:
        storage = str(config.get(key) or "").strip()
        if storage not in ("", "database", "redis") and not storage.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            bad(
                key,
                f"{key} = {storage!r} is not a storage.",
                'Use "database", "redis" (with REDIS_URL set) or a redis:// URL'
                + (', or "" for the throttle\'s.' if key == "AUTH_SESSION_STORAGE" else "."),
            )
        elif storage == "redis" and not config.get("REDIS_URL"):
            bad(
                key,
                f'{key} = "redis" but REDIS_URL is not set.',
                "Set REDIS_URL (e.g. redis://127.0.0.1:6379/0) or give the URL in the setting.",
            )
    keep = config.get("AUTH_SESSION_CARRY_OVER", [])
    if not isinstance(keep, list | tuple) or not all(isinstance(k, str) for k in keep):
        bad(
            "AUTH_SESSION_CARRY_OVER",
            f"AUTH_SESSION_CARRY_OVER = {keep!r} is not a list of session keys.",
            'E.g. ["cart_id"]: the session keys a login keeps.',
        )
    model = state.user_model
    login_field = getattr(model, "login_field", "email")
    if model is not None and not hasattr(model, login_field):
        found.append(
            Problem(
                "auth.model",
                "user_model",
                f"The user model {model.__name__} has no {login_field!r} attribute to log in with.",
                "Mix in flask_complete.auth.UserMixin, or set login_field = '<column>' on it.",
            )
        )
    return found

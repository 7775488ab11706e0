"""Auth wired into an app: its settings checked, then the login manager, the loaders, the
throttle, the login records, CSRF and the endpoints, in that order. Only this module and the
package's ``init_app`` know every other module of auth."""

from __future__ import annotations

import typing as t
from datetime import timedelta

from flask_login import user_accessed, user_logged_in, user_logged_out

from .. import api
from ..settings.config import Problem
from . import csrf, passwords, sessions, throttle, tokens
from .core import BundleLoginManager, load_user
from .flags import csrf_flag
from .state import STATE_KEY, AuthState

if t.TYPE_CHECKING:
    from flask import Flask

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


def setup(app: Flask, state: CompleteState) -> None:
    """Check the settings, then wire the login manager, loaders, throttle, CSRF and views."""
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

    flag = csrf_flag(config.get("CSRF_PROTECT", "auto"))
    if flag is False:
        mode = "off"
    elif flag is True or existing is None:
        mode = "everywhere"
    else:
        mode = "blueprint"
    recorded = None
    if existing is not None:
        from . import adopted

        recorded = adopted.remember_with_record
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
        on_recorded=recorded,
    )
    if mode != "off":
        csrf.install(app, everywhere=mode == "everywhere")
    if config["AUTH_ENDPOINTS"]:
        _register_endpoints(app, state, config["AUTH_URL_PREFIX"].rstrip("/"))
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
    if csrf_flag(config.get("CSRF_PROTECT", "auto")) == "invalid":
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

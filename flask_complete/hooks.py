"""What flask_complete uses of the bundled libraries beyond their public API, and the check that
each is still there with the shape it expects.

Each :class:`Hook` names a private attribute, the distribution it belongs to, a probe that
exercises it the way flask_complete does (cheap: no I/O, run once per process) and what happens
without it. A piece asks :func:`usable` at ``init_app`` time; when the probe fails, the piece
uses the library's public behaviour instead and :func:`usable` logs one warning naming the
installed version. A newer release that renames or reshapes a private name therefore costs a
warning and the bundle's extra (speed, a header saved), never an exception or a wrong result.

Imports nothing of the bundled libraries until a probe runs; a probe imports only its own.
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing as t
from dataclasses import dataclass
from importlib import metadata

log = logging.getLogger("flask_complete.hooks")


@dataclass(frozen=True)
class Hook:
    """A private name of a bundled library that flask_complete relies on."""

    #: The dotted name (``werkzeug.routing.Rule._compile_builder``).
    name: str
    #: The distribution it belongs to (``werkzeug``).
    distribution: str
    #: What flask_complete does without it.
    fallback: str
    probe: t.Callable[[], bool]


def _parameters(function: t.Any) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return []


def _lazy_rules() -> bool:
    """``LazyRule`` builds what Werkzeug's own ``Rule`` builds, before and after compiling."""
    from werkzeug.routing import Map, Rule

    if _parameters(Rule.__dict__.get("_compile_builder"))[:2] != ["self", "append_unknown"]:
        return False
    from .routing import LazyRule

    values = {"item": 7, "name": "a b/c.txt", "q": "x y"}
    built = []
    for rule_class in (Rule, LazyRule, LazyRule):  # LazyRule twice: compiling, then compiled
        adapter = Map([rule_class("/i/<int:item>/<path:name>", endpoint="e")]).bind("h")
        built.append(adapter.build("e", values, force_external=True))
    return built[0] == built[1] == built[2] == "http://h/i/7/a%20b/c.txt?q=x+y"


def _teardown_session() -> bool:
    from flask_sqlalchemy import SQLAlchemy

    return _parameters(getattr(SQLAlchemy, "_teardown_session", None)) == ["self", "exc"]


def _request_session() -> bool:
    """Flask's request context keeps the session in ``_session``, behind ``flask.session``
    (which marks it accessed)."""
    from flask import Flask, session
    from flask.globals import request_ctx

    app = Flask("probe")
    app.secret_key = "probe"
    with app.test_request_context():
        context = request_ctx._get_current_object()  # type: ignore[attr-defined]
        kept = getattr(context, "_session", None)
        return kept is not None and kept is session._get_current_object()  # type: ignore[attr-defined]


#: Flask-Login 0.6.3's methods that ``BundleLoginManager`` overrides or calls, by parameters.
_LOGIN_METHODS = {
    "_update_remember_cookie": ["self", "response"],
    "_load_user": ["self"],
    "_load_user_from_remember_cookie": ["self", "cookie"],
    "_load_user_from_request": ["self", "request"],
    "_set_cookie": ["self", "response"],
    "_update_request_context_with_user": ["self", "user"],
}


def _login_manager() -> bool:
    from flask_login import LoginManager

    if any(
        _parameters(getattr(LoginManager, name, None)) != expected
        for name, expected in _LOGIN_METHODS.items()
    ):
        return False
    manager = LoginManager()
    attributes = ("_user_callback", "_request_callback", "_session_identifier_generator")
    return all(hasattr(manager, name) for name in attributes) and callable(
        manager._session_identifier_generator
    )


def _pool_names() -> bool:
    from sqlalchemy.engine import create

    renamed = getattr(create, "_pool_translate_kwargs", None)
    return isinstance(renamed, t.Mapping) and renamed.get("pre_ping") == "pool_pre_ping"


def _pool_overflow() -> bool:
    from sqlalchemy.pool import QueuePool

    pool = QueuePool(t.cast(t.Any, lambda: None), pool_size=1, max_overflow=3)
    return getattr(pool, "_max_overflow", None) == 3


def _url_replace() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url("postgresql://u@h/a?dbname=b")
    replaced = url._replace(database=None)
    return replaced.database is None and replaced.query == url.query


HOOKS: dict[str, Hook] = {
    hook.name: hook
    for hook in (
        Hook(
            "werkzeug.routing.Rule._compile_builder",
            "werkzeug",
            "URL rules compile their builders when added, as Werkzeug's own do (the same URLs; "
            "building an app costs more)",
            _lazy_rules,
        ),
        Hook(
            "flask_sqlalchemy.SQLAlchemy._teardown_session",
            "flask-sqlalchemy",
            "Flask-SQLAlchemy's own teardown is kept: a rollback that fails on a dead "
            "connection raises at teardown instead of being logged",
            _teardown_session,
        ),
        Hook(
            "flask.ctx.RequestContext._session",
            "flask",
            "the login manager reads the session through flask.session, so every response "
            "of an app with auth gets Vary: Cookie",
            _request_session,
        ),
        Hook(
            "flask_login.LoginManager._load_user",
            "flask-login",
            "Flask-Login's own loading and remember cookie are used: bearer tokens on session "
            "requests, the login records in remember cookies and the saved Vary header are off",
            _login_manager,
        ),
        Hook(
            "sqlalchemy.engine.create._pool_translate_kwargs",
            "sqlalchemy",
            "engine options are checked against the pool's own argument names",
            _pool_names,
        ),
        Hook(
            "sqlalchemy.pool.QueuePool._max_overflow",
            "sqlalchemy",
            "the connection-capacity warning counts pool_size only",
            _pool_overflow,
        ),
        Hook(
            "sqlalchemy.engine.URL._replace",
            "sqlalchemy",
            "none: the test-database gate needs it (URL is a named tuple; _replace is the "
            "tuple's public method)",
            _url_replace,
        ),
    )
}


@functools.cache
def _works(name: str) -> bool:
    try:
        return HOOKS[name].probe()
    except Exception:  # any failure of the probe means: not the shape we expect
        return False


def usable(name: str) -> bool:
    """Whether the hook ``name`` is there with the shape flask_complete expects; if not, log a
    warning naming the installed version and the fallback."""
    if _works(name):
        return True
    hook = HOOKS[name]
    try:
        version = metadata.version(hook.distribution)
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    log.warning(
        "%s %s has no %s of the shape flask_complete %s expects; instead %s. "
        "Install a version of %s in the tested range (flask complete versions --check).",
        hook.distribution,
        version,
        hook.name,
        flask_complete_version(),
        hook.fallback,
        hook.distribution,
    )
    return False


def missing() -> list[Hook]:
    """Every hook whose probe fails in this process."""
    return [hook for name, hook in HOOKS.items() if not _works(name)]


def recheck() -> None:
    """Forget the probes' results (after a library was patched, as tests do)."""
    _works.cache_clear()


DISTRIBUTION = "flask-complete"


def flask_complete_version() -> str:
    """The installed flask_complete version."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__

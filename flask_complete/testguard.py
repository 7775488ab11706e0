"""Which databases tests may use: the testing URL derived from the development one, and the one
gate that every test fixture and helper passes before it touches an engine.

The rule, as pytest-django's: the configured database is never used by tests. In the testing
environment every URL is the one the app would use in development (or the one ``[testing]`` or
the app's code names), given a ``test_`` name unless it already is a test database: in-memory
SQLite, a temporary file, or a ``test_``-named database. No test database is ever the
development or production database, compared by what the URLs address, not how they are spelled.
"""

from __future__ import annotations

import os
import tempfile
import typing as t
import weakref

from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from . import config as _config

if t.TYPE_CHECKING:
    from flask import Flask

    from .state import CompleteState


class DatabaseRefused(Exception):
    """Tests will not use, create or drop this database; the message says why and how."""


#: What a URL addresses: ``("sqlite", real path)`` or ``(backend, host, port, database)``.
Identity = tuple[str, ...]
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "localhost.localdomain"}


def identity(url: str | URL, instance_path: str) -> Identity | None:
    """What ``url`` addresses, however it is spelled (driver, default port, loopback name,
    query order, relative SQLite path); ``None`` for an in-memory SQLite database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite":
        if database.startswith("file:"):
            database = database[5:].partition("?")[0]
            if "mode=memory" in str(parsed.query.get("mode", "")) or not database:
                return None
        if not database or database == ":memory:":
            return None
        return ("sqlite", os.path.realpath(os.path.join(instance_path, database)))
    if backend == "mariadb":
        backend = "mysql"
    host = (parsed.host or str(parsed.query.get("host") or "") or "localhost").lower()
    host = host.strip("[]")
    if host in _LOOPBACK or host.startswith("/"):  # a Unix socket is this machine too
        host = "localhost"
    port = parsed.port or _DEFAULT_PORTS.get(backend)
    return (backend, host, str(port or ""), database)


def _inside(folder: str, path: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, path]) == folder


def is_test_database(
    ident: Identity | None, protected: t.Container[Identity], root: str | os.PathLike[str]
) -> bool:
    """Whether a database may be used by tests: in-memory, ``test_``-named, or a temporary file
    outside the project ``root`` (a test's own ``tmp_path``); never the development or
    production database (``protected``)."""
    if ident is None:
        return True
    if ident in protected:
        return False
    if ident[0] == "sqlite":
        path = ident[1]
        temporary = _inside(tempfile.gettempdir(), path) and not _inside(str(root), path)
        return os.path.basename(path).startswith("test_") or temporary
    return ident[-1].startswith("test_")


def derive_test_url(url: str) -> str:
    """``url`` with a ``test_`` name: ``test_<name>`` on a server, ``test_<file>`` beside a
    SQLite file (and ``_<worker>`` under pytest-xdist, one database per worker)."""
    parsed = make_url(url)
    database = parsed.database or ""
    worker = _worker()
    if identity(parsed, "") is None:
        return url
    if parsed.get_backend_name() == "sqlite":
        folder, name = os.path.split(database)
        stem, suffix = os.path.splitext(name)
        if not stem.startswith("test_"):
            stem = f"test_{stem}"
        if worker:
            stem = f"{stem}_{worker}"
        new = os.path.join(folder, stem + suffix)
    else:
        new = database if database.startswith("test_") else f"test_{database}"
        if worker:
            new = f"{new}_{worker}"
    return parsed.set(database=new).render_as_string(hide_password=False)


def _worker() -> str:
    # One database per pytest-xdist worker, when the pytest plugin has pinned the run.
    return _config._forced_worker if _config._forced_env == "testing" else ""


# -- the development and production databases -----------------------------------------------------

_protected: weakref.WeakKeyDictionary[Flask, dict[Identity, str]] = weakref.WeakKeyDictionary()
#: Per app, per bind (``None`` = default): where its test URL came from, for the report.
_origins: weakref.WeakKeyDictionary[Flask, dict[str | None, str]] = weakref.WeakKeyDictionary()
#: Per app, the binds whose test database the suite named itself, in code.
_suites: weakref.WeakKeyDictionary[Flask, set[str | None]] = weakref.WeakKeyDictionary()


def _settings_urls(settings: _config.Settings) -> dict[str | None, tuple[t.Any, str]]:
    """The URL of every bind in ``settings`` (files and environment) with its source."""
    values, sources = settings.values, settings.sources
    urls: dict[str | None, tuple[t.Any, str]] = {}
    if values.get("DATABASE_URL") is not None:
        urls[None] = (values["DATABASE_URL"], sources.get("DATABASE_URL", "settings"))
    binds = values.get("SQLALCHEMY_BINDS")
    for key, value in (binds if isinstance(binds, dict) else {}).items():
        url = value.get("url") if isinstance(value, dict) else value
        urls[key] = (url, sources.get("SQLALCHEMY_BINDS", "settings"))
    return urls


def _load(app: Flask, root: t.Any, env: str) -> _config.Settings | None:
    try:
        return _config.load(app, env=env, root=root, log=False)
    except _config.ConfigError:
        return None


_development: weakref.WeakKeyDictionary[Flask, dict[str | None, tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def development_urls(app: Flask, root: t.Any) -> dict[str | None, tuple[str, str]]:
    """The URLs ``app`` would use in development (files, ``.env``, the environment and the
    bundle's default; not code), normalised and absolute, with their sources; read once per
    app (both the derivation and the protected databases need them)."""
    found = _development.get(app)
    if found is None:
        found = _development[app] = _read_development_urls(app, root)
    return found


def _read_development_urls(app: Flask, root: t.Any) -> dict[str | None, tuple[str, str]]:
    from .database import absolute_sqlite, default_url, normalize_url

    settings = _load(app, root, "development")
    urls = _settings_urls(settings) if settings is not None else {}
    if None not in urls and not urls:
        default = default_url(app, "development")
        if default is not None:
            urls[None] = (default, "flask_complete default (development)")
    found = {}
    for key, (url, source) in urls.items():
        if not isinstance(url, str):
            continue
        try:
            found[key] = (absolute_sqlite(normalize_url(url), app.instance_path), source)
        except (_config.ConfigError, ArgumentError):
            continue
    return found


def protected(app: Flask, root: t.Any) -> dict[Identity, str]:
    """The development and production databases of ``app`` (every bind) by :func:`identity`,
    each with a description; computed once per app."""
    found = _protected.get(app)
    if found is not None:
        return found
    from .database import normalize_url

    found = {}
    sources = {"development": development_urls(app, root)}
    production = _load(app, root, "production")
    sources["production"] = {
        key: (url, source)
        for key, (url, source) in (_settings_urls(production) if production else {}).items()
        if isinstance(url, str)
    }
    for env, urls in sources.items():
        for key, (url, source) in urls.items():
            try:
                ident = identity(normalize_url(url), app.instance_path)
            except (_config.ConfigError, ArgumentError):
                continue
            if ident is not None:
                bind = f" (bind {key!r})" if key else ""
                found.setdefault(
                    ident, f"the {env} database {_config.redact_url(url)}{bind}, from {source}"
                )
    _protected[app] = found
    return found


# -- the testing URLs -----------------------------------------------------------------------------


def testing_urls(
    app: Flask, state: CompleteState, urls: dict[str | None, str]
) -> dict[str | None, str]:
    """The test database of each bind in ``urls`` (the testing environment's, normalised and
    absolute): the URL ``[testing]`` or code names, else the development one, given a ``test_``
    name unless it already is a test database. Records where each came from."""
    sources = state.settings.sources
    development: dict[str | None, tuple[str, str]] | None = None
    guarded = protected(app, state.root)
    chosen: dict[str | None, str] = {}
    origins: dict[str | None, str] = {}
    suites: set[str | None] = set()
    for key, url in urls.items():
        source = sources.get("SQLALCHEMY_DATABASE_URI" if key is None else "SQLALCHEMY_BINDS", "")
        if source != "code" and "[testing]" not in source:
            if development is None:
                development = development_urls(app, state.root)
            url, source = development.get(key, (url, source))
        ident = identity(url, app.instance_path)
        # Under pytest-xdist each worker gets its own copy of every database the run creates;
        # a URL set in code is the suite's own business.
        per_worker = bool(_worker()) and source != "code"
        if ident is None or (is_test_database(ident, guarded, state.root) and not per_worker):
            chosen[key] = url
            origins[key] = f"set in {source or 'code'}, a test database already"
            if source in ("code", ""):
                suites.add(key)
        else:
            chosen[key] = derive_test_url(url)
            origins[key] = f"derived from {_config.redact_url(url)} ({source or 'code'})"
    _origins[app] = origins
    _suites[app] = suites
    return chosen


def suite_owned(app: Flask) -> set[str | None]:
    """The binds of ``app`` whose test database the suite named itself, in code: the test run
    uses them as they are and never drops what it did not create."""
    return set(_suites.get(app, ()))


def origins(app: Flask) -> dict[str | None, str]:
    """Where each test URL of ``app`` came from (empty outside the testing environment)."""
    return dict(_origins.get(app, {}))


# -- the gate -------------------------------------------------------------------------------------

_verified: weakref.WeakKeyDictionary[Flask, frozenset[str]] = weakref.WeakKeyDictionary()


def _engine_urls(app: Flask) -> dict[str | None, URL]:
    state = app.extensions.get("complete")
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None or "sqlalchemy" not in app.extensions:
        return {}
    with app.app_context():
        engines = dict(sqla.engines)
    return {key: (e.url if isinstance(e, Engine) else e.engine.url) for key, e in engines.items()}


def refusal(app: Flask) -> str | None:
    """Why tests must not touch ``app``'s databases; ``None`` when every one is a test database.
    The one rule: every fixture, helper and command of the test run asks it first."""
    urls = _engine_urls(app)
    rendered = frozenset(f"{k}={u.render_as_string(hide_password=False)}" for k, u in urls.items())
    if _verified.get(app) == rendered:
        return None
    state = app.extensions.get("complete")
    root = state.root if state is not None else app.root_path
    guarded = protected(app, root)
    hits = []
    for key, url in urls.items():
        ident = identity(url, app.instance_path)
        if is_test_database(ident, guarded, root):
            continue
        bind = f" (bind {key!r})" if key else ""
        why = guarded.get(ident) if ident is not None else None
        hits.append(
            f"{_config.redact_url(url)}{bind} is {why}"
            if why
            else f"{_config.redact_url(url)}{bind} is not a test database"
        )
    if not hits:
        _verified[app] = rendered
        return None
    return (
        "flask_complete refuses to let tests touch a database that is not a test database: "
        + "; ".join(hits)
        + ". Tests get their own database: build the app in the testing environment (the "
        "pytest plugin does; do not pin Complete(app, env=...)) so that flask_complete derives "
        "test_<name> from the development URL, or give it an in-memory SQLite URL, a temporary "
        "file or a database whose name starts with test_."
    )


def require_test_databases(app: Flask) -> None:
    """Raise :class:`DatabaseRefused` unless every database of ``app`` is a test database."""
    message = refusal(app)
    if message is not None:
        raise DatabaseRefused(message)


def require_test_url(url: URL, app: Flask | None, action: str) -> None:
    """Raise :class:`DatabaseRefused` unless ``url`` is a test database (before ``action``:
    create, drop)."""
    instance = app.instance_path if app is not None else os.getcwd()
    guarded: dict[Identity, str] = {}
    root = instance
    if app is not None and "complete" in app.extensions:
        root = app.extensions["complete"].root
        guarded = protected(app, root)
    ident = identity(url, instance)
    if not is_test_database(ident, guarded, root):
        why = guarded.get(ident) if ident is not None else None
        raise DatabaseRefused(
            f"flask_complete will not {action} the database {_config.redact_url(url)}: "
            + (f"it is {why}. " if why else "it is not a test database. ")
            + "Only in-memory SQLite, temporary files and databases whose name starts with "
            "test_ are created and dropped by the test run. Leave the test URL to the plugin (it "
            "derives test_<name>) or name it test_..."
        )

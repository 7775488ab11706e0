"""Which databases tests may use: the testing URL derived from the development one, and the one
gate that every connection of the test run passes before any statement of a fixture, a helper, a
command or the code under test.

The rule, as pytest-django's: the configured database is never used by tests. In the testing
environment every URL is the one the app would use in development (or the one ``[testing]`` or the
app's code names), given a ``test_`` name unless it already is a test database. The gate judges what
a connection is really on, as the server or the filesystem names it
(:mod:`flask_complete.database.identity`): a ``test_``-named database, an in-memory SQLite database
or a temporary file outside the project; never the development or production database, never one
stamped development or production. A URL's text is never trusted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import typing as t
import weakref
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ..settings import config as _config
from ..state import app_context_of
from .identity import Identity, declared, declared_name, probe, sqlite_path, without_overrides

if t.TYPE_CHECKING:
    from flask import Flask

    from ..state import CompleteState


class DatabaseRefused(Exception):
    """Tests will not use, create or drop this database; the message says why and how."""


#: Stamps that no test may touch, whatever the database is called.
REFUSED_STAMPS = ("development", "production")


def _inside(folder: str, path: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, path]) == folder


def test_named(ident: Identity, root: str | os.PathLike[str]) -> bool:
    """Whether ``ident`` is a test database by what it is called: in memory, a ``test_`` name,
    or a temporary file outside the project ``root`` (a test's own ``tmp_path``)."""
    if ident.in_memory:
        return True
    if ident.backend == "sqlite":
        path = ident.name
        temporary = _inside(tempfile.gettempdir(), path) and not _inside(str(root), path)
        return os.path.basename(path).startswith("test_") or temporary
    return ident.name.startswith("test_")


def judge(
    ident: Identity,
    stamp: str | None,
    guarded: t.Iterable[tuple[Identity, str]],
    root: str | os.PathLike[str],
) -> str | None:
    """Why tests must not touch the database ``ident`` (stamped ``stamp``), or ``None`` when it
    is a test database. The one rule."""
    for other, why in guarded:
        if not ident.in_memory and ident.same(other):
            return f"is {why}"
    if stamp in REFUSED_STAMPS:
        return f"is stamped {stamp}"
    if not test_named(ident, root):
        return "is not a test database"
    return None


def derive_test_url(url: str, name: str | None = None) -> str:
    """``url`` with a ``test_`` name: ``test_<name>`` on a server (``name``: the database the
    server reported for ``url``; by default what the URL names, read as its driver reads it),
    ``test_<file>`` beside a SQLite file (and ``_<worker>`` under pytest-xdist, one database per
    worker). Query parameters that would pick another database are dropped."""
    parsed = make_url(url)
    worker = _worker()
    if parsed.get_backend_name() == "sqlite":
        if not sqlite_path(parsed, ""):
            return url
        folder, base = os.path.split(parsed.database or "")
        stem, suffix = os.path.splitext(base)
        if not stem.startswith("test_"):
            stem = f"test_{stem}"
        if worker:
            stem = f"{stem}_{worker}"
        return parsed.set(database=os.path.join(folder, stem + suffix)).render_as_string(
            hide_password=False
        )
    database = declared_name(parsed) if name is None else name
    new = database if database.startswith("test_") else f"test_{database}"
    if worker:
        new = f"{new}_{worker}"
    return without_overrides(parsed, new).render_as_string(hide_password=False)


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
    from .urls import absolute_sqlite, default_url, normalize_url

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


def _probe_args(url: URL) -> dict[str, t.Any]:
    # A development server that is down must not stall the test run for long.
    driver = url.get_driver_name()
    return {"connect_timeout": 5} if driver in ("psycopg", "psycopg2", "pymysql") else {}


def real_identity(url: str | URL, instance_path: str) -> Identity:
    """What ``url`` is: asked of its server when the database exists and answers (kept for the
    process), else read from the URL as its driver reads it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        with contextlib.suppress(DBAPIError, ArgumentError, ImportError):
            found = probe(parsed, _probe_args(parsed), cache=True)
            if found is not None:
                return found
    return declared(parsed, instance_path)


def protected(app: Flask, root: t.Any) -> dict[Identity, str]:
    """The development and production databases of ``app`` (every bind), each with a
    description: the development ones as their servers name them, the production ones as their
    URLs do (tests never connect to production); computed once per app."""
    found = _protected.get(app)
    if found is not None:
        return found
    from .urls import absolute_sqlite, normalize_url

    found = {}
    for key, (url, source) in development_urls(app, root).items():
        ident = real_identity(url, app.instance_path)
        bind = f" (bind {key!r})" if key else ""
        if not ident.in_memory:
            found.setdefault(
                ident,
                f"the development database {_config.redact_url(url)}{bind}, from {source}",
            )
    production = _load(app, root, "production")
    for key, (url, source) in (_settings_urls(production) if production else {}).items():
        if not isinstance(url, str):
            continue
        try:
            ident = declared(absolute_sqlite(normalize_url(url), app.instance_path), "")
        except (_config.ConfigError, ArgumentError):
            continue
        bind = f" (bind {key!r})" if key else ""
        if not ident.in_memory:
            found.setdefault(
                ident, f"the production database {_config.redact_url(url)}{bind}, from {source}"
            )
    _protected[app] = found
    return found


# -- the testing URLs -----------------------------------------------------------------------------


def testing_urls(
    app: Flask, state: CompleteState, urls: dict[str | None, str]
) -> dict[str | None, str]:
    """The test database of each bind in ``urls`` (the testing environment's, normalised and
    absolute): the URL ``[testing]`` or code names when it is a test database already, else
    ``test_`` + the name the server reports for the development database (or for the URL
    given). Records where each came from."""
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
        ident = real_identity(url, app.instance_path)
        # Under pytest-xdist each worker gets its own copy of every database the run creates;
        # a URL set in code is the suite's own business.
        per_worker = bool(_worker()) and source != "code"
        if ident.in_memory or (
            judge(ident, None, guarded.items(), state.root) is None and not per_worker
        ):
            chosen[key] = url
            origins[key] = f"set in {source or 'code'}, a test database already"
            if source in ("code", ""):
                suites.add(key)
        else:
            chosen[key] = derive_test_url(url, ident.name or None)
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

_allowed = 0


@contextlib.contextmanager
def database_access() -> Iterator[None]:
    """Allow the plugin-built app's engines to connect inside this block."""
    global _allowed
    _allowed += 1
    try:
        yield
    finally:
        _allowed -= 1


def access_allowed() -> bool:
    """Whether a :func:`database_access` block is open."""
    return _allowed > 0


def _root(app: Flask) -> t.Any:
    state = app.extensions.get("complete")
    return state.root if state is not None else app.root_path


def _message(ident: Identity, shown: str, why: str, action: str) -> str:
    said = ident.describe()
    return (
        f"flask_complete refuses to let tests {action} {shown}: the server says it is {said}, "
        f"which {why}. Tests get their own database: build the app in the testing environment "
        "(the pytest plugin does; do not pin Complete(app, env=...)) so that flask_complete "
        "derives test_<name> from the development database, or give it an in-memory SQLite "
        "URL, a temporary file or a database whose name starts with test_ (and is not stamped "
        "development or production)."
    )


def verify(connection: Connection, app: Flask, action: str = "touch") -> Identity:
    """The gate: raise :class:`DatabaseRefused` unless ``connection`` is on a test database of
    ``app``, by what its server reports (name, server, file) and the environment it records;
    return what it is on."""
    from . import stamp as dbenv
    from .identity import ask

    ident = ask(connection)
    stamp = dbenv.read_stamp(connection)
    root = _root(app)
    why = judge(ident, stamp, protected(app, root).items(), root)
    if why is not None:
        shown = _config.redact_url(connection.engine.url)
        raise DatabaseRefused(_message(ident, shown, why, action))
    return ident


_VERIFIED = "flask_complete.verified"
_watched: weakref.WeakSet[Engine] = weakref.WeakSet()
#: Engines whose database :func:`require_test_databases` has asked.
_probed: weakref.WeakSet[Engine] = weakref.WeakSet()


def _engines(app: Flask) -> dict[str | None, t.Any]:
    state = app.extensions.get("complete")
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None or "sqlalchemy" not in app.extensions:
        return {}
    with app_context_of(app):
        return dict(sqla.engines)


def watch(app: Flask) -> None:
    """Put every engine of ``app`` behind the gate: each new connection (and each pooled one not
    yet judged) is verified before the statement that asked for it."""
    ref = weakref.ref(app)
    for engine in _engines(app).values():
        if isinstance(engine, Engine) and engine not in _watched:
            _watched.add(engine)
            event.listen(engine, "engine_connect", _verifier(ref))


def _verifier(ref: weakref.ref[Flask]) -> t.Callable[[Connection], None]:
    def on_connect(connection: Connection) -> None:
        if connection.info.get(_VERIFIED):
            return
        app = ref()
        if app is None:
            return
        try:
            verify(connection, app)
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        connection.info[_VERIFIED] = True

    return on_connect


def _unopened(engine: Engine, app: Flask) -> Identity | None:
    """What ``engine`` would open, when the database is not there yet (nothing in it to
    protect; judged by what it would be); ``None`` when it exists."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url, app.instance_path)
        return None if not path or os.path.exists(path) else declared(url, app.instance_path)
    return None


def require_test_databases(app: Flask) -> None:
    """Raise :class:`DatabaseRefused` unless every database of ``app`` is a test database, asked
    of its server now (a missing one is judged by what it would be), and keep asking on every
    new connection."""
    from .identity import missing_database

    watch(app)
    root = _root(app)
    with database_access():
        for engine in _engines(app).values():
            if not isinstance(engine, Engine) or engine in _probed:
                # Under isolation a connection the gate already judged; or an engine asked
                # before (its every new connection is still judged).
                continue
            ident = _unopened(engine, app)
            if ident is None:
                try:
                    with engine.connect():
                        _probed.add(engine)
                        continue
                except DBAPIError as e:
                    if not missing_database(e):
                        continue  # unreachable: the step that needs it explains
                ident = declared(engine.url, app.instance_path)
            why = judge(ident, None, protected(app, root).items(), root)
            if why is not None:
                shown = _config.redact_url(engine.url)
                raise DatabaseRefused(_message(ident, shown, why, "create"))

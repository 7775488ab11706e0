"""Which command may touch which database: the one gate of every command that writes
(:func:`authorize`, applied by :func:`guard` to each database of an app), judged by the
environment the database records (:mod:`.stamp`). In testing, the test gate decides
(:mod:`.gate`)."""

from __future__ import annotations

import contextlib
import typing as t

import click
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from ..settings.config import Problem, redact_url
from .binds import EVERY, Which
from .stamp import (
    _MISSING,
    FLAG,
    PRODUCTION,
    _lookup,
    _sqlite_file,
    holdings,
    read_stamp,
    stamp,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from flask import Flask

#: Actions that destroy or rewrite data: a production database needs the flag for them.
#: ``create`` is the pytest plugin's, which drops an existing test database first.
DESTRUCTIVE = frozenset(
    {"create", "downgrade", "drop", "environment", "load", "reset", "seed", "stamp"}
)


#: Actions refused on an unstamped database that holds tables (``load``: rows) until it is
#: stamped: nothing says whose data it is (Rails' ``NoEnvironmentInSchemaError``).
NEEDS_STAMP = frozenset({"downgrade", "drop", "load", "reset", "stamp"})


#: Actions refused on a database stamped with another environment (``environment`` is how a
#: database changes hands, so it is not among them).
WRITING = (DESTRUCTIVE - {"environment"}) | {"migrate", "prepare", "upgrade"}


class EnvironmentRefused(click.UsageError):
    """The gate refused an action on a database; the message names the database, both
    environments and the command that goes ahead."""


_VERB = {"environment": "re-stamp", "create": "recreate"}


def refusal(
    stamped: str | None,
    *,
    env: str,
    action: str,
    i_know: bool,
    shown: str,
    command: str,
    holds: t.Sequence[str] = (),
    bind: str | None = None,
) -> str | None:
    """Why ``action`` in ``env`` may not touch the database ``shown`` stamped ``stamped``
    (``None`` when it may). ``command`` is what the user ran, for the fix; ``holds``, the tables
    an unstamped database holds data in."""
    verb = _VERB.get(action, action)
    if stamped is None and holds and action in NEEDS_STAMP and env != PRODUCTION:
        listed = ", ".join(holds[:5]) + (f" and {len(holds) - 5} more" if len(holds) > 5 else "")
        what = "rows" if action == "load" else "tables"
        where = f" --bind {bind}" if bind else ""
        return (
            f"Refusing to {verb} {shown}: it holds {what} ({listed}) and records no environment, "
            f"so nothing says it is the {env} database (it may be another environment's, "
            f"made before stamps existed). If it is the {env} database, stamp it, then run the "
            f"command again: `flask db environment {env}{where}`. If it belongs to another "
            "environment, run the command there (FLASK_ENV=...)."
        )
    if stamped is not None and stamped != env and action in WRITING:
        # Changing a production stamp needs the flag, as does what destroys data there.
        restamp = f" {FLAG}" if stamped == PRODUCTION else ""
        rerun = restamp if action in DESTRUCTIVE else ""
        return (
            f"Refusing to {verb} {shown}: the database is stamped {stamped}, and this command "
            f"runs in {env}. If you meant the {stamped} database, run the command there: "
            f"`FLASK_ENV={stamped} {command}{rerun}`. If the database now belongs to {env}, "
            f"re-stamp it first: `flask db environment {env}{restamp}`."
        )
    protected = stamped == PRODUCTION or (stamped is None and env == PRODUCTION)
    if protected and action in DESTRUCTIVE and not i_know:
        why = "stamped production" if stamped else "this command runs in production"
        return (
            f"Refusing to {verb} the production database {shown} ({why}). If you really mean "
            f"it, run `{command} {FLAG}`."
        )
    return None


def authorize(
    bind: Connection | URL | str,
    *,
    env: str,
    action: str,
    i_know: bool = False,
    connect_args: dict[str, t.Any] | None = None,
    command: str | None = None,
    bind_key: str | None = None,
) -> str | None:
    """The gate: raise :class:`EnvironmentRefused` unless ``action`` run in ``env`` may touch
    the database of ``bind``; return its stamp.

    :param bind: A connection, or a URL (read on its own unpooled connection; a missing
        database, file or table has no stamp). Needs no app context.
    :param action: ``create``, ``drop``, ``reset``, ``seed``, ``downgrade``, ``stamp``,
        ``environment`` (destructive); ``upgrade``, ``prepare``, ``migrate`` (writing).
    :param i_know: ``--i-know-this-is-production`` was given.
    :param command: The command as the user would retype it, for the message (default
        ``flask db <action>``).
    :param bind_key: The app's bind the database is, for the fix (``--bind``).
    """
    stamped = read_stamp(bind, connect_args)
    url = bind.engine.url if isinstance(bind, Connection) else make_url(bind)
    holds: list[str] = []
    # The test run's databases are judged by the test gate; production needs the flag anyway.
    if stamped is None and action in NEEDS_STAMP and env not in ("testing", PRODUCTION):
        holds = holdings(bind, connect_args, rows=action == "load")
    message = refusal(
        stamped,
        env=env,
        action=action,
        i_know=i_know,
        shown=redact_url(url),
        command=command or f"flask db {action}",
        holds=holds,
        bind=bind_key,
    )
    if message is not None:
        raise EnvironmentRefused(message)
    return stamped


@contextlib.contextmanager
def _connection(app: Flask, bind: str | None = None) -> Iterator[tuple[Connection | URL, bool]]:
    """What to read the database ``bind`` of ``app`` through: the connection standing in for the
    engine under the pytest plugin's isolation (``True``), an in-memory database's own engine,
    else its URL (so a missing server database reads as unstamped)."""
    from ..state import get_state
    from . import binds

    sqla = get_state(app).db
    if sqla is None:
        raise click.ClickException("This app has no database (COMPLETE_DATABASE = false).")
    with app.app_context():
        engine = binds.bind_of(sqla, bind)
        if isinstance(engine, Connection):
            yield engine, True
            return
        url = engine.url
        if url.get_backend_name() == "sqlite" and _sqlite_file(url) is None:
            # Another connection would open another in-memory database.
            with binds.connect(sqla, bind) as connection:
                yield connection, False
            return
        yield url, False


def guard(
    app: Flask,
    action: str,
    *,
    i_know: bool = False,
    command: str | None = None,
    record: bool = False,
    bind: Which = EVERY,
) -> str | None:
    """:func:`authorize` ``action`` on ``app``'s database ``bind`` (default: every database of
    the app, each checked before any is stamped) in the app's environment; with ``record``,
    stamp an unstamped database with that environment. Returns the stamp found (of the first
    database)."""
    from ..state import get_state
    from . import binds

    env = get_state(app).env
    if env == "testing":
        from .gate import DatabaseRefused, require_test_databases

        # In testing, commands touch test databases only: the test run's one gate decides.
        try:
            require_test_databases(app)
        except DatabaseRefused as e:
            raise EnvironmentRefused(str(e)) from None
    found: dict[str | None, str | None] = {}
    plugins = False
    keys = list(binds.resolve(bind, app))
    for key in keys:
        with _connection(app, key) as (target, isolated):
            plugins = plugins or isolated
            found[key] = authorize(
                target,
                env=env,
                action=action,
                i_know=i_know,
                connect_args=binds.connect_args(app, key),
                command=command,
                bind_key=key,
            )
    if record and not plugins:
        # Under the plugin's isolation the test database is the plugin's: it stamped it when
        # it built the schema, and DDL there would end the test's transaction on MySQL.
        for key, stamped in found.items():
            if stamped is None:
                set_stamp(app, env, key)
    return next(iter(found.values()), None)


def set_stamp(app: Flask, env: str, bind: Which = EVERY) -> None:
    """Stamp ``app``'s database ``bind`` (default: every one) with ``env`` (the ``flask db
    environment`` command, after the gate)."""
    from ..state import get_state
    from . import binds

    sqla = get_state(app).db
    assert sqla is not None
    with app.app_context():
        for key in binds.resolve(bind, app):
            with binds.connect(sqla, key) as connection:
                stamp(connection, env)


def current(app: Flask, bind: str | None = None) -> str | None:
    """The stamp of ``app``'s database ``bind`` (``None``: unstamped or missing)."""
    from . import binds

    with _connection(app, bind) as (target, _):
        return read_stamp(target, binds.connect_args(app, bind))


def check(app: Flask) -> list[Problem]:
    """Findings for ``flask complete check``, for each database of ``app``:
    ``database.unstamped`` (warning) when it records no environment, ``database.env_mismatch``
    (error) when it records another one. No finding for a missing or unreachable database:
    other checks report that."""
    from . import binds

    try:
        keys = binds.keys(app)
    except click.ClickException:
        return []
    return [p for key in keys for p in _check_one(app, key)]


def _check_one(app: Flask, bind: str | None) -> list[Problem]:
    from ..state import get_state
    from . import binds

    env = get_state(app).env
    try:
        with _connection(app, bind) as (target, _):
            found = _lookup(target, binds.connect_args(app, bind))
            url = target.engine.url if isinstance(target, Connection) else make_url(target)
    except (sa.exc.SQLAlchemyError, ModuleNotFoundError, click.ClickException):
        return []
    shown = redact_url(url)
    setting = binds.setting(bind)
    if found is _MISSING:
        return []
    if found is None:
        restamp = f"flask db environment {env}" + (f" --bind {bind}" if bind else "")
        return [
            Problem(
                "database.unstamped",
                setting,
                f"The database {shown} records no environment, so nothing tells a command "
                "run in another environment (or with FLASK_ENV unset) that it is not theirs.",
                f"Stamp it: `{restamp}` (`flask db prepare` and `flask db "
                "upgrade` stamp a database too).",
                level="warning",
            )
        ]
    if found != env:
        flag = f" {FLAG}" if found == PRODUCTION else ""
        where = f" --bind {bind}" if bind else ""
        return [
            Problem(
                "database.env_mismatch",
                setting,
                f"The database {shown} is stamped {found}, but the app runs in {env}: "
                f"commands that write to it are refused.",
                f"Run in {found} (FLASK_ENV={found}), or point {setting} at the {env} "
                f"database; if this database now belongs to {env}, re-stamp it with "
                f"`flask db environment {env}{where}{flag}`.",
            )
        ]
    return []

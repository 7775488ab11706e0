"""The databases of an app, one per bind: their keys in a stable order and each one's URL,
connection, engine options and tables.

``None`` is the default database (``SQLALCHEMY_DATABASE_URI``); the others are the keys of
``SQLALCHEMY_BINDS``. An app may have binds and no default database. Every database command
takes ``--bind NAME`` (repeatable) and covers every database, the default first, when none is
given. Call these inside an app context.
"""

from __future__ import annotations

import contextlib
import enum
import typing as t

import click
from flask import current_app
from sqlalchemy.engine import URL, Connection, Engine

from ..state import get_state

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import sqlalchemy as sa
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

Key = str | None


class _Every(enum.Enum):
    EVERY = "every"


#: "Every database of the app", where a bind key is taken.
EVERY: t.Final = _Every.EVERY
Which = Key | t.Literal[_Every.EVERY]
#: What ``--bind`` calls the default database.
DEFAULT = "default"

bind_option = click.option(
    "--bind",
    "bind_names",
    multiple=True,
    metavar="NAME",
    help=f"Only this database: a key of SQLALCHEMY_BINDS, or {DEFAULT!r} (repeatable; "
    "default: every database).",
)


def _app(app: Flask | None) -> Flask:
    if app is not None:
        return app
    return t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]


def sqla_of(app: Flask | None = None) -> SQLAlchemy:
    """The app's ``SQLAlchemy``; a clear error when the app has none."""
    sqla = get_state(_app(app)).db
    if sqla is None:
        raise click.ClickException(
            "This app has no database (COMPLETE_DATABASE = false): nothing to do."
        )
    return sqla


def keys(app: Flask | None = None) -> list[Key]:
    """Every database of the app: the default one (when configured) first, then the binds by
    name."""
    app = _app(app)
    sqla = sqla_of(app)
    with app.app_context():
        found = list(sqla.engines)
    return sorted(found, key=lambda k: (k is not None, k or ""))


def select(names: Iterable[str] = (), app: Flask | None = None) -> list[Key]:
    """The databases ``--bind`` names (every one when ``names`` is empty), in :func:`keys`
    order; a usage error naming the known binds for an unknown name."""
    known = keys(app)
    wanted = {None if n == DEFAULT and DEFAULT not in known else n for n in names}
    unknown = sorted(str(n) for n in wanted if n not in known)
    if unknown:
        shown = ", ".join(label(k) for k in known) or "none"
        raise click.UsageError(
            f"No database bind {unknown[0]!r}. This app's databases: {shown} (SQLALCHEMY_BINDS "
            f"keys, {DEFAULT!r} for SQLALCHEMY_DATABASE_URI)."
        )
    return [k for k in known if not wanted or k in wanted]


def resolve(which: Which, app: Flask | None = None) -> list[Key]:
    """The keys ``which`` stands for: every database for :data:`EVERY`, else that one."""
    return keys(app) if which is EVERY else [which]


def label(key: Key) -> str:
    """The name ``--bind`` takes for ``key``."""
    return DEFAULT if key is None else key


def setting(key: Key) -> str:
    """The setting that holds the URL of ``key``."""
    return "DATABASE_URL" if key is None else f"SQLALCHEMY_BINDS.{key}"


def bind_of(sqla: SQLAlchemy, key: Key) -> Engine | Connection:
    """The engine of ``key``, or under the pytest plugin's isolation the connection standing in
    for it."""
    try:
        return t.cast("Engine | Connection", sqla.engines[key])
    except KeyError:
        raise click.UsageError(
            f"No database bind {label(key)!r}: set {setting(key)} (or choose another with --bind)."
        ) from None


def url(sqla: SQLAlchemy, key: Key) -> URL:
    """The URL of the database ``key``."""
    return bind_of(sqla, key).engine.url


@contextlib.contextmanager
def connect(sqla: SQLAlchemy, key: Key) -> Iterator[Connection]:
    """A connection to the database ``key``; under the pytest plugin's isolation, the connection
    standing in for the engine."""
    bind = bind_of(sqla, key)
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as connection:
        yield connection


def engine_options(app: Flask, key: Key) -> dict[str, t.Any]:
    """The engine options of the database ``key`` (its URL left out)."""
    if key is None:
        return dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    value = (app.config.get("SQLALCHEMY_BINDS") or {}).get(key)
    options = dict(value) if isinstance(value, t.Mapping) else {}
    options.pop("url", None)
    return options


def connect_args(app: Flask, key: Key) -> dict[str, t.Any]:
    """The driver's connect arguments of the database ``key``."""
    return dict(engine_options(app, key).get("connect_args") or {})


def metadata(sqla: SQLAlchemy, key: Key) -> sa.MetaData | None:
    """The models' metadata of the database ``key`` (``None`` when no model is bound to it)."""
    return sqla.metadatas.get(key)


def tables(sqla: SQLAlchemy, key: Key) -> list[sa.Table]:
    """The models' tables of the database ``key``, parents before the tables that reference
    them."""
    found = metadata(sqla, key)
    return [] if found is None else list(found.sorted_tables)


def dispose(sqla: SQLAlchemy, key: Key) -> None:
    """Close the pooled connections of the database ``key`` (not under isolation)."""
    bind = bind_of(sqla, key)
    if isinstance(bind, Engine):
        sqla.session.remove()
        bind.dispose()

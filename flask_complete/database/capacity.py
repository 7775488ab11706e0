"""Whether the app's connection pools fit the database server's ``max_connections``.

Every worker process holds at most ``pool_size + max_overflow`` connections per engine, so a
deploy asks for up to *workers x (pool_size + max_overflow)*. When the first connection of a
process is made, the server's limit is read with one query on it, and a warning is logged (on
the ``flask_complete`` logger, id ``database.connections``) when the pools can exceed it.

Workers are counted from the command line of a gunicorn process (``-w``/``--workers``), then
``GUNICORN_CMD_ARGS``, then ``WEB_CONCURRENCY`` (which gunicorn and most hosts read too); else
the process counts alone. A gunicorn config file's ``workers`` is not read.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import typing as t

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ..settings.sensitive import redact_url

if t.TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

logger = logging.getLogger("flask_complete")

#: Dialect name -> the query giving (max_connections, connections reserved for superusers).
_LIMIT_QUERIES = {
    "postgresql": (
        "SELECT current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int "
        "+ coalesce(current_setting('reserved_connections', true)::int, 0)"
    ),
    "mysql": "SELECT @@max_connections, 0",
    "mariadb": "SELECT @@max_connections, 0",
}


def workers(
    argv: t.Sequence[str] | None = None, environ: t.Mapping[str, str] | None = None
) -> tuple[int, str]:
    """How many worker processes share the server, and where that number came from."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if argv and os.path.basename(argv[0]).startswith("gunicorn"):
        found = _workers_option(list(argv[1:]))
        if found:
            return found, "gunicorn --workers"
    if environ.get("GUNICORN_CMD_ARGS"):
        found = _workers_option(shlex.split(environ["GUNICORN_CMD_ARGS"]))
        if found:
            return found, "GUNICORN_CMD_ARGS --workers"
    value = environ.get("WEB_CONCURRENCY", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "WEB_CONCURRENCY"
    return 1, "one process (no WEB_CONCURRENCY or gunicorn --workers)"


def _workers_option(args: list[str]) -> int | None:
    found = None
    for i, arg in enumerate(args):
        value = None
        if arg in ("-w", "--workers") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.partition("=")[2]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value is not None and value.isdigit() and int(value) > 0:
            found = int(value)  # the last one wins, as in argparse
    return found


def per_process(engine: Engine) -> int | None:
    """The most connections one process's pool of ``engine`` holds; ``None``: no bound."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None  # NullPool, StaticPool, an unbounded overflow
    return int(size()) + overflow


def problem(engine: Engine, limit: int, reserved: int) -> str | None:
    """The warning for ``engine`` against a server allowing ``limit`` connections, of which
    ``reserved`` are for superusers; ``None`` when the pools fit."""
    each = per_process(engine)
    count, source = workers()
    if each is None or count * each <= limit - reserved:
        return None
    pool = engine.pool
    size = pool.size()  # type: ignore[attr-defined]
    overflow = each - size
    spare = f" ({reserved} of them reserved for superusers)" if reserved else ""
    return (
        f"[database.connections] {count} worker(s) ({source}) x (pool_size {size} + "
        f"max_overflow {overflow}) = up to {count * each} connections to "
        f"{redact_url(engine.url.render_as_string(hide_password=False))}, but the server "
        f"allows {limit}{spare}: requests will fail with 'too many connections' under load. "
        "Lower DATABASE_MAX_OVERFLOW or DATABASE_POOL_SIZE (in [production]), raise the "
        'server\'s max_connections, or put PgBouncer in front with DATABASE_POOL = "null".'
    )


def watch(engine: Engine) -> None:
    """Check ``engine``'s pools against the server once per process, on its first connection."""
    query = _LIMIT_QUERIES.get(engine.dialect.name)
    if query is None or per_process(engine) is None:
        return
    checked: set[int] = set()

    def on_first_connect(dbapi_connection: t.Any, connection_record: t.Any) -> None:
        # first_connect fires again for the pool a fork or dispose() makes: once per process.
        if os.getpid() in checked:
            return
        checked.add(os.getpid())
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(query)
                limit, reserved = cursor.fetchone()
            finally:
                cursor.close()
            # End the transaction the query opened: the pool hands out an idle connection.
            dbapi_connection.rollback()
        except Exception as e:  # never fail a connection for a warning
            logger.debug("could not read the server's max_connections: %s", e)
            return
        message = problem(engine, int(limit), int(reserved))
        if message:
            logger.warning(message)

    event.listen(engine, "first_connect", on_first_connect)


def init_app(app: Flask, sqla: SQLAlchemy) -> None:
    """Watch every engine of ``app`` (see :func:`watch`)."""
    with app.app_context():
        engines = list(sqla.engines.values())
    for engine in engines:
        if isinstance(engine, Engine):  # not the pytest plugin's per-test connection
            watch(engine)

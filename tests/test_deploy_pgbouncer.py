"""PostgreSQL behind a real PgBouncer in transaction mode.

Each test starts its own PgBouncer (a config in a temporary folder, loopback, a free port) in
front of a fresh database on the shared server, builds an app with ``Complete(app)`` in
production on it, and drives 4 threads x 40 transactions of one parametrised query (psycopg
prepares a query on a connection once it ran it 5 times). PgBouncer gets 2 server connections
for the 4 threads, so clients share backends, as they do in production.

- ``DATABASE_POOL = "null"`` (NullPool, psycopg's prepared statements off): no error.
- The default pool with psycopg's default ``prepare_threshold``: prepared statements meet a
  backend another client prepared on (``DuplicatePreparedStatement``) or one that lacks them
  (``InvalidSqlStatementName``). That is the failure the setting guards against.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REQUIRE, free_port, poll, server_database, stop
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_complete import Complete

#: Real processes and builds: `make test-slow` and CI run them, `make test` does not.
pytestmark = pytest.mark.slow

# Random, fixed: production refuses guessable keys.
SECRET = "q3Vw8Xo1nR6tZp0LkJ2sYdHf5mBcE9aGu7iTlWvNxQ4rSeKyDjOh_UzCb-FgPAM"
THREADS, TRANSACTIONS, SERVER_CONNECTIONS = 4, 40, 2
#: The same statement every time, so that psycopg counts its uses (and prepares it).
QUERY = sa.text("SELECT pg_backend_pid() + 0 * CAST(:n AS integer)")


class Bouncer(t.NamedTuple):
    url: str
    log: Path


def _binary() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
def bouncer() -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of a fresh database; stopped after the test."""
    binary = _binary()
    if binary is None:
        reason = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if REQUIRE:
            pytest.fail(f"{reason} (REQUIRE_TEST_SERVERS=1: servers are required)")
        pytest.skip(reason)
    with server_database("postgres") as target:
        server = sa.make_url(target)
        folder = Path(tempfile.mkdtemp(prefix="fc-pgbouncer-"))
        port, log = free_port(), folder / "pgbouncer.log"
        (folder / "pgbouncer.ini").write_text(
            f"""\
[databases]
{server.database} = host={server.host} port={server.port or 5432} dbname={server.database} \
user={server.username}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
min_pool_size = 0
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
"""
        )
        command = [binary, str(folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root: it switches to the postgres user itself (so the
            # PID below is PgBouncer's own).
            shutil.chown(folder, "postgres")
            command[1:1] = ["-u", "postgres"]
        url = server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:

            def answers() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"pgbouncer exited:\n{log.read_text()}")
                engine = sa.create_engine(
                    url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 2}
                )
                try:
                    with engine.connect() as conn:
                        return conn.execute(sa.text("SELECT 1")).scalar() == 1
                except sa.exc.OperationalError:
                    return False
                finally:
                    engine.dispose()

            poll(answers, 15, "pgbouncer to accept connections")
            yield Bouncer(url, log)
        finally:
            stop(proc)
            shutil.rmtree(folder, ignore_errors=True)
        # server_database drops the database (closing PgBouncer's server connections if any).


def production_app(url: str, root: Path, **config: t.Any) -> tuple[Flask, SQLAlchemy]:
    db = SQLAlchemy()
    app = Flask("pgbouncerapp")
    app.config.update(SECRET_KEY=SECRET, SQLALCHEMY_DATABASE_URI=url, **config)
    Complete(app, db=db, env="production", root=root)
    return app, db


class Load(t.NamedTuple):
    errors: collections.Counter[str]
    backends: set[int]
    done: int


def drive(app: Flask, db: SQLAlchemy) -> Load:
    """:data:`THREADS` threads x :data:`TRANSACTIONS` transactions of :data:`QUERY`, each in
    its own app context (a request's worth of work)."""
    errors: collections.Counter[str] = collections.Counter()
    backends: set[int] = set()
    done = [0]
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work() -> None:
        start.wait(timeout=10)
        for n in range(TRANSACTIONS):
            with app.app_context():
                try:
                    backend = db.session.execute(QUERY, {"n": n}).scalar_one()
                    db.session.commit()
                except sa.exc.DBAPIError as e:
                    db.session.rollback()
                    with lock:
                        errors[type(e.orig).__name__] += 1
                else:
                    with lock:
                        backends.add(backend)
                        done[0] += 1
                finally:
                    db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a load thread hung"
    return Load(errors, backends, done[0])


def _dispose(app: Flask, db: SQLAlchemy) -> None:
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.postgres
def test_null_pool_behind_pgbouncer_transaction_mode_has_no_errors(
    bouncer: Bouncer, tmp_path: Path
) -> None:
    app, db = production_app(bouncer.url, tmp_path, DATABASE_POOL="null")
    try:
        with app.app_context():
            engine = db.engine
            assert isinstance(engine.pool, sa.pool.NullPool)
        load = drive(app, db)
    finally:
        _dispose(app, db)
    assert dict(load.errors) == {}
    assert load.done == THREADS * TRANSACTIONS
    # 160 client connections (one per transaction) shared PgBouncer's few server connections.
    assert 1 <= len(load.backends) <= SERVER_CONNECTIONS


@pytest.mark.postgres
def test_default_pool_and_prepared_statements_break_behind_pgbouncer(
    bouncer: Bouncer, tmp_path: Path
) -> None:
    """What ``DATABASE_POOL = "null"`` guards against. Each of the pooled client connections
    prepares the query as ``_pg3_0`` on its 5th use; with 4 of them on 2 backends at least one
    finds the name taken on its backend (or its statement missing on the next one)."""
    app, db = production_app(bouncer.url, tmp_path)  # the default: a QueuePool
    try:
        with app.app_context():
            assert isinstance(db.engine.pool, sa.pool.QueuePool)
        load = drive(app, db)
    finally:
        _dispose(app, db)
    assert sum(load.errors.values()) > 0, load
    assert set(load.errors) <= {"DuplicatePreparedStatement", "InvalidSqlStatementName"}, load
    assert sum(load.errors.values()) + load.done == THREADS * TRANSACTIONS

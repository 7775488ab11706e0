"""Faults on real servers over real HTTP: backends terminated under load, forked workers, a
short MariaDB ``wait_timeout``, and a database that is down when the app starts.

Each test serves a small app built with ``Complete(app)`` in production on gunicorn (loopback,
a free port), drives it from client threads for a bounded count of requests, and waits by
polling with a deadline, never by sleeping.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import answers, free_port, poll, stop

#: Real processes and builds: `make test-slow` and CI run them, `make test` does not.
pytestmark = pytest.mark.slow

#: The app gunicorn serves: writes a row per POST, reports its worker and database backend.
APP = """
import os
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from flask_complete import Complete

db = SQLAlchemy()
app = Flask("faultapp")
Complete(app, db=db)
BACKEND = {backend!r}

if os.environ.get("FAULT_QUERY_AT_IMPORT"):
    # A connection in the master's pool before the fork (gunicorn --preload).
    with app.app_context():
        MASTER = db.session.execute(text(BACKEND)).scalar()
        db.session.remove()
else:
    MASTER = None


@app.post("/rows")
def write():
    db.session.execute(text("INSERT INTO fault_row (name) VALUES (:n)"), {{"n": request.args["n"]}})
    db.session.commit()
    return jsonify(name=request.args["n"]), 201


@app.get("/pid")
def pid():
    backend = db.session.execute(text(BACKEND)).scalar()
    return jsonify(worker=os.getpid(), backend=backend, master=MASTER)
"""
BACKEND_QUERY = {"postgres": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    url: str,
    kind: str,
    *args: str,
    workers: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[int, Path]]:
    """gunicorn serving :data:`APP` on ``url`` in production; yields the port and its log."""
    (tmp_path / "faultapp.py").write_text(APP.format(backend=BACKEND_QUERY[kind]))
    port, log = free_port(), tmp_path / "gunicorn.log"
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_")) and k not in ("WEB_CONCURRENCY",)
    }
    environ.update(
        FLASK_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=url,
        FLASK_HEALTH_ENDPOINT="/-/health",
        FLASK_COMPLETE_MIGRATE="false",
        **(env or {}),
    )
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        *("--no-control-socket", "-w", str(workers), "-b", f"127.0.0.1:{port}"),
        *("--chdir", str(tmp_path), "--graceful-timeout", "3", *args, "faultapp:app"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:

        def booted() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
            return log.read_text().count("Booting worker") >= workers and answers(port)

        poll(booted, 30, f"{workers} gunicorn workers")
        yield port, log
    finally:
        stop(proc)


class Result(t.NamedTuple):
    start: float
    status: int
    name: str
    headers: dict[str, str]
    body: bytes


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Result:
    """One request on a new connection; status 0 when the connection failed."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Result(start, response.status, "", dict(response.getheaders()), response.read())
    except (OSError, http.client.HTTPException):
        return Result(start, 0, "", {}, b"")
    finally:
        conn.close()


class Writers:
    """Client threads each POSTing rows with unique names until stopped."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            name = uuid.uuid4().hex
            result = request(self.port, "POST", f"/rows?n={name}")._replace(name=name)
            with self.lock:
                self.results.append(result)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def count(self, since: float = 0.0, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.results
                if r.start >= since and (status is None or r.status == status)
            )


def _table(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE fault_row (id SERIAL PRIMARY KEY, name VARCHAR(40))"))
    engine.dispose()


def _stored(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT name FROM fault_row")).scalars())
    engine.dispose()
    return names


@pytest.mark.postgres
def test_terminated_backends_mid_load_lose_no_acknowledged_write(
    pg_url: str, tmp_path: Path
) -> None:
    _table(pg_url)
    database = sa.make_url(pg_url).database
    admin = sa.create_engine(pg_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    gthread = ("-k", "gthread", "--threads", "4")
    with serve(tmp_path, pg_url, "postgres", *gthread) as (port, _), Writers(port) as load:
        poll(lambda: load.count(status=201) >= 40, 20, "40 writes before the fault")
        with admin.connect() as conn:
            killed = list(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": database},
                )
            )
            # False: that backend ended on its own between the two (a pool let it go); gone()
            # below still requires every one of them to be gone.
            assert any(ok for ok, _ in killed), killed
            pids = [pid for _, pid in killed]

            def gone() -> bool:
                query = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"
                return conn.execute(sa.text(query), {"p": pids}).scalar() == 0

            # The retry window: until the terminated backends have exited.
            poll(gone, 10, "the terminated backends to exit")
        after = time.monotonic()
        poll(lambda: load.count(since=after) >= 80, 30, "80 requests after the fault")
    admin.dispose()
    later = [r for r in load.results if r.start >= after]
    assert [r.status for r in later if r.status != 201] == []
    acknowledged = {r.name for r in load.results if r.status == 201}
    assert acknowledged <= _stored(pg_url)
    assert len(acknowledged) >= 120


@pytest.mark.postgres
def test_preloaded_workers_have_their_own_connections(pg_url: str, tmp_path: Path) -> None:
    env = {"FAULT_QUERY_AT_IMPORT": "1"}
    with serve(tmp_path, pg_url, "postgres", "--preload", workers=3, env=env) as (port, _):
        seen: dict[int, set[int]] = {}
        masters: set[int] = set()

        def three_workers() -> bool:
            # Concurrent requests, so that every worker takes some.
            threads_results: list[Result] = []
            threads = [
                threading.Thread(
                    target=lambda: threads_results.append(request(port, "GET", "/pid"))
                )
                for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for result in threads_results:
                assert result.status == 200, result.body
                found = json.loads(result.body)
                seen.setdefault(found["worker"], set()).add(found["backend"])
                masters.add(found["master"])
            return len(seen) >= 3

        poll(three_workers, 20, "answers from 3 workers")
    backends = [b for found in seen.values() for b in found]
    assert len(backends) == len(set(backends)), seen  # no backend shared by two workers
    (master,) = masters
    assert master is not None and master not in backends


@pytest.mark.mysql
@pytest.mark.usefixtures("clean_env")
def test_mariadb_wait_timeout_the_next_request_succeeds(mysql_url: str, tmp_path: Path) -> None:
    _table_mysql(mysql_url)
    options = '{connect_args = {init_command = "SET SESSION wait_timeout = 1"}}'
    env = {"FLASK_SQLALCHEMY_ENGINE_OPTIONS": options}
    admin = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with serve(tmp_path, mysql_url, "mysql", workers=1, env=env) as (port, _):
        first = request(port, "GET", "/pid")
        assert first.status == 200, first.body
        backend = json.loads(first.body)["backend"]
        with admin.connect() as conn:

            def closed() -> bool:
                query = "SELECT count(*) FROM information_schema.processlist WHERE id = :i"
                return conn.execute(sa.text(query), {"i": backend}).scalar() == 0

            poll(closed, 10, "the server to close the idle connection")
        after = request(port, "POST", f"/rows?n={uuid.uuid4().hex}")
        assert after.status == 201, after.body
        again = request(port, "GET", "/pid")
        assert again.status == 200 and json.loads(again.body)["backend"] != backend
    admin.dispose()


def _table_mysql(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE fault_row (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40))")
        )
    engine.dispose()


@pytest.mark.parametrize("preload", [False, True], ids=["workers", "preload"])
def test_database_down_at_start_the_app_starts_and_health_answers_503_json(
    tmp_path: Path, preload: bool
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/down"  # nothing listens there
    args = ("--preload",) if preload else ()
    with serve(tmp_path, url, "postgres", *args) as (port, log):
        health = request(port, "GET", "/-/health", {"Accept": "text/html"})
        assert health.status == 503
        assert health.headers["Content-Type"] == "application/json"
        assert health.headers["Retry-After"] == "5"
        assert json.loads(health.body) == {
            "status": "error",
            "database": "unreachable",
            "migrations": "unknown",
        }
        # A view of the app's own still fails, but the workers stay up and keep answering.
        assert request(port, "GET", "/pid").status in (500, 503)
        assert request(port, "GET", "/-/health").status == 503
    assert "Worker exiting" not in log.read_text().split("Handling signal: term")[0]


@contextlib.contextmanager
def dropping_port() -> Iterator[int]:
    """A loopback port whose server takes no more connections: its accept queue is full, so
    the kernel drops every further connection attempt, as a dead or firewalled host does."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError), probe:
            probe.connect(("127.0.0.1", port))
        yield port
    finally:
        filler.close()
        server.close()


#: DATABASE_CONNECT_TIMEOUT in the test below (libpq's minimum).
CONNECT_TIMEOUT = 2
#: What each driver says when our connect timeout ends an attempt.
TIMED_OUT = {"postgres": "connection timeout expired", "mysql": "(timed out)"}


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_host_that_drops_connections_gets_503_within_the_connect_timeout(
    tmp_path: Path, kind: str
) -> None:
    """Without a connect timeout, psycopg waits 130 s and PyMySQL 10 s for each connection: a
    request outlives gunicorn's 30 s worker timeout, the worker is killed, the health check
    never answers. With DATABASE_CONNECT_TIMEOUT each answers 503 JSON in time.

    The bound is the server's, not this test's clock (how long an answer takes on the clock
    depends on the machine's load): gunicorn aborts a request that outlives --timeout, set
    below both drivers' own waits, and logs WORKER TIMEOUT. So answers with no such line mean
    the connect timeout ended every wait; the drivers' messages say it did, and no answer
    came before it could have."""
    scheme = "postgresql" if kind == "postgres" else "mysql"
    with dropping_port() as dead:
        url = f"{scheme}://app@127.0.0.1:{dead}/app"
        env = {"FLASK_DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
        with serve(tmp_path, url, kind, "--timeout", "9", env=env) as (port, log):
            for path in ("/-/health", "/pid"):
                answer = request(port, "GET", path)
                took = time.monotonic() - answer.start
                expected = (503,) if path == "/-/health" else (500, 503)
                assert answer.status in expected, (path, answer.status, took)
                # A refused connection fails at once; libpq counts the timeout in whole
                # seconds, so its attempt may end up to a second early.
                assert took >= CONNECT_TIMEOUT - 1, (path, took)
            health = request(port, "GET", "/-/health")
            assert health.status == 503
            assert json.loads(health.body)["database"] == "unreachable"
        served = log.read_text()
        assert "WORKER TIMEOUT" not in served
        assert TIMED_OUT[kind] in served

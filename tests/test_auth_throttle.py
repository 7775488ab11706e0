"""Failed-login throttling: per account and address, exponential back-off, database and Redis
storage, and shared state across two gunicorn workers over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
import typing as t
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, User, add_user, authdb, dispose, make_app
from flask import Flask

from flask_complete import Complete
from flask_complete.auth.models import utcnow
from flask_complete.auth.throttle import TABLE, DatabaseThrottle, Policy, RedisThrottle

pytest_plugins = ["authapps"]
REDIS = "redis://127.0.0.1:6379/0"


def attempt(client: t.Any, email: str = "ann@example.test", password: str = "wrong pass!") -> t.Any:
    return client.post("/auth/login", json={"email": email, "password": password})


def redis_or_skip() -> t.Any:
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        if os.environ.get("REQUIRE_TEST_SERVERS") == "1":
            pytest.fail(f"Redis at {REDIS} not reachable: {e}")
        pytest.skip(f"Redis at {REDIS} not reachable: {e}")
    return client


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis_or_skip()
    prefix = f"fc-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_lock_grows_exponentially_and_is_capped() -> None:
    policy = Policy(account_limit=5, delay=30, max_delay=900)
    assert [policy.lock_seconds(n, 5) for n in (4, 5, 6, 7, 10, 10_000)] == [
        0,
        30,
        60,
        120,
        900,
        900,
    ]


def test_sixth_failure_is_429_for_known_and_unknown_accounts(auth_app: Flask) -> None:
    add_user(auth_app)
    client = auth_app.test_client()
    for email in ("ann@example.test", "ghost@example.test"):
        assert [attempt(client, email).status_code for _ in range(5)] == [401] * 5
        locked = attempt(client, email, PASSWORD)  # even the right password waits
        assert locked.status_code == 429
        assert locked.headers["Retry-After"] == "30"
        assert "try again in 30 seconds" in locked.json["error"]
        assert client.get("/auth/me").status_code == 401
    # Another account from the same address is not locked by these 10 failures.
    add_user(auth_app, "bob@example.test")
    assert attempt(client, "bob@example.test", PASSWORD).status_code == 200


def test_lock_doubles_after_it_expires_and_success_resets(auth_app: Flask) -> None:
    add_user(auth_app)
    client = auth_app.test_client()
    for _ in range(5):
        attempt(client)
    with auth_app.app_context():
        table = authdb.metadata.tables[TABLE]
        authdb.session.execute(sa.update(table).values(locked_until=utcnow()))
        authdb.session.commit()
    assert attempt(client).status_code == 401  # the lock ran out; the 6th failure counts
    assert attempt(client).headers["Retry-After"] == "60"

    with auth_app.app_context():
        authdb.session.execute(sa.delete(authdb.metadata.tables[TABLE]))
        authdb.session.commit()
    for _ in range(4):
        attempt(client)
    assert attempt(client, password=PASSWORD).status_code == 200
    assert [attempt(client).status_code for _ in range(4)] == [401] * 4


def test_per_address_limit(tmp_path: Path) -> None:
    app = make_app("sqlite://", tmp_path, AUTH_THROTTLE_ADDRESS_LIMIT=3)
    client = app.test_client()
    assert [attempt(client, f"u{i}@example.test").status_code for i in range(3)] == [401] * 3
    locked = attempt(client, "someone-else@example.test")
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert attempt(other, "someone-else@example.test").status_code == 401


def test_redis_storage(tmp_path: Path, redis_prefix: str) -> None:
    app = make_app(
        "sqlite://", tmp_path, AUTH_THROTTLE_STORAGE=REDIS, AUTH_THROTTLE_PREFIX=redis_prefix
    )
    add_user(app)
    client = app.test_client()
    assert [attempt(client).status_code for _ in range(5)] == [401] * 5
    locked = attempt(client, password=PASSWORD)
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
    with app.app_context():
        assert authdb.session.execute(sa.select(authdb.metadata.tables[TABLE])).all() == []


def test_throttle_storage_falls_back_to_redis_url(
    tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    app = make_app(
        "sqlite://", tmp_path, AUTH_THROTTLE_STORAGE="", AUTH_THROTTLE_PREFIX=redis_prefix
    )
    client = app.test_client()
    for _ in range(5):
        attempt(client)
    assert attempt(client).status_code == 429
    assert any(k.startswith(redis_prefix.encode()) for k in redis_or_skip().scan_iter())


# --- two gunicorn workers --------------------------------------------------------------------

APP_MODULE = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from authapps import make_app

app = make_app(os.environ["AUTH_TEST_URL"], Path(os.environ["AUTH_TEST_ROOT"]),
               AUTH_THROTTLE_STORAGE=os.environ["AUTH_TEST_STORAGE"],
               AUTH_THROTTLE_PREFIX=os.environ["AUTH_TEST_PREFIX"])

@app.after_request
def worker(response):
    response.headers["X-Worker"] = str(os.getpid())
    return response
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_workers(proc: subprocess.Popen[bytes], count: int, timeout: float = 30) -> None:
    """Read gunicorn's log until ``count`` workers booted (bounded by ``timeout``)."""
    assert proc.stderr is not None
    booted, log, deadline = 0, b"", time.monotonic() + timeout
    while booted < count:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stderr], [], [], max(left, 0))
        line = proc.stderr.readline() if ready else b""
        if not line:
            raise AssertionError(f"gunicorn did not boot {count} workers:\n{log.decode()}")
        log += line
        booted += b"Booting worker" in line


def post(conn: http.client.HTTPConnection, body: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    conn.request("POST", "/auth/login", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status, response.headers["X-Worker"], dict(response.headers)


def one_connection_per_worker(port: int) -> list[http.client.HTTPConnection]:
    """Kept-alive connections served by two different worker processes."""
    by_worker: dict[str, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    for _ in range(5):
        batch = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(8)]
        for conn in batch:
            conn.connect()
        for conn in batch:
            conn.request("GET", "/auth/me")
            response = conn.getresponse()
            response.read()
            worker = response.headers["X-Worker"]
            if worker in by_worker:
                spare.append(conn)
            else:
                by_worker[worker] = conn
        if len(by_worker) >= 2:
            break
    for conn in spare:
        conn.close()
    assert len(by_worker) >= 2, "every connection went to one worker"
    return list(by_worker.values())[:2]


@pytest.mark.parametrize("storage", ["database", "redis"])
def test_throttle_holds_across_two_gunicorn_workers(
    tmp_path: Path, pg_url: str, storage: str, request: pytest.FixtureRequest
) -> None:
    prefix = request.getfixturevalue("redis_prefix") if storage == "redis" else "unused:"
    app = make_app(pg_url, tmp_path)
    add_user(app)
    dispose(app)
    (tmp_path / "throttle_app.py").write_text(APP_MODULE.format(tests=str(Path(__file__).parent)))
    port = free_port()
    env = {
        **os.environ,
        "AUTH_TEST_URL": pg_url,
        "AUTH_TEST_ROOT": str(tmp_path),
        "AUTH_TEST_STORAGE": REDIS if storage == "redis" else "database",
        "AUTH_TEST_PREFIX": prefix,
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # gthread keeps connections alive, so each can be pinned to the worker that accepted it.
    workers = ["-w", "2", "-k", "gthread", "--threads", "2", "--keep-alive", "30", "--preload"]
    where = ["-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path)]
    proc = subprocess.Popen(
        [str(gunicorn), *workers, *where, "throttle_app:app"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    connections: list[http.client.HTTPConnection] = []
    try:
        wait_for_workers(proc, 2)
        connections = one_connection_per_worker(port)
        wrong = {"email": "ann@example.test", "password": "wrong pass!"}
        seen = [post(connections[i % 2], wrong) for i in range(5)]
        assert [status for status, _, _ in seen] == [401] * 5
        assert len({worker for _, worker, _ in seen}) == 2
        # The 6th goes to the worker that itself saw only two of the five failures.
        status, _, headers = post(connections[1], {**wrong, "password": PASSWORD})
        assert status == 429
        assert headers["Retry-After"] == "30"
    finally:
        for conn in connections:
            conn.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_stale_rows_are_forgotten(tmp_path: Path) -> None:
    app = make_app("sqlite://", tmp_path)
    old = utcnow() - timedelta(hours=1)
    with app.app_context():
        table = authdb.metadata.tables[TABLE]
        authdb.session.execute(
            sa.insert(table),
            [
                {"key": "a:stale", "failures": 3, "last_failure": old, "locked_until": None},
                {"key": "a:locked", "failures": 9, "last_failure": old, "locked_until": old},
            ],
        )
        authdb.session.commit()
    attempt(app.test_client(), "new@example.test")
    with app.app_context():
        keys = authdb.session.scalars(sa.select(table.c.key)).all()
    assert "a:stale" not in keys and "a:locked" not in keys and len(keys) == 2


def test_a_missing_throttle_table_lets_logins_through_and_says_why(
    auth_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    add_user(auth_app)
    with auth_app.app_context():
        authdb.metadata.tables[TABLE].drop(authdb.engine)
    client = auth_app.test_client()
    assert [attempt(client).status_code for _ in range(6)] == [401] * 6
    assert attempt(client, password=PASSWORD).status_code == 200
    assert "login throttling is off" in caplog.text and "flask db migrate" in caplog.text


def test_testing_keeps_counts_in_the_database_even_with_redis_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    kinds = {}
    for env in ("testing", "development"):
        app = Flask(f"throttle-{env}")
        app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
        Complete(app, db=authdb, user_model=User, env=env, root=tmp_path)
        kinds[env] = type(app.extensions["complete.auth"].throttle)
    assert kinds == {"testing": DatabaseThrottle, "development": RedisThrottle}

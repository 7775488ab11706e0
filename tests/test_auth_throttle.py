"""Failed-login throttling: per account and address, exponential back-off, database and Redis
storage, and shared state across two gunicorn workers over real HTTP."""

from __future__ import annotations

import http.client
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import (
    PASSWORD,
    REDIS,
    STRONG,
    Answer,
    User,
    add_user,
    authdb,
    both_workers,
    call,
    dispose,
    gunicorn,
    make_app,
    redis_or_skip,
)
from flask import Flask

from flask_complete import Complete
from flask_complete.auth.models import utcnow
from flask_complete.auth.throttle import TABLE, DatabaseThrottle, Policy, RedisThrottle

pytest_plugins = ["authapps"]


def attempt(client: t.Any, email: str = "ann@example.test", password: str = "wrong pass!") -> t.Any:
    return client.post("/auth/login", json={"email": email, "password": password})


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


@pytest.mark.parametrize("storage", ["database", "redis"])
def test_throttle_holds_across_two_gunicorn_workers(
    tmp_path: Path, pg_url: str, storage: str, request: pytest.FixtureRequest
) -> None:
    config: dict[str, t.Any] = {}
    if storage == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        config = {"AUTH_THROTTLE_STORAGE": REDIS, "AUTH_THROTTLE_PREFIX": prefix}
    app = make_app(pg_url, tmp_path, **config)
    add_user(app)
    dispose(app)
    connections: list[http.client.HTTPConnection] = []
    with gunicorn(tmp_path, pg_url, **config) as port:
        try:
            connections = both_workers(port)
            wrong = {"email": "ann@example.test", "password": "wrong pass!"}
            seen = [call(connections[i % 2], "POST", "/auth/login", wrong) for i in range(5)]
            assert [a.status for a in seen] == [401] * 5
            assert len({a.worker for a in seen}) == 2
            # The 6th goes to the worker that itself saw only two of the five failures.
            locked = call(connections[1], "POST", "/auth/login", {**wrong, "password": PASSWORD})
            assert locked.status == 429
            assert locked.headers["Retry-After"] == "30"
        finally:
            for conn in connections:
                conn.close()


@pytest.mark.parametrize("storage", ["postgres", "mysql", "redis"])
def test_parallel_attempts_verify_at_most_the_limit(
    tmp_path: Path, storage: str, request: pytest.FixtureRequest
) -> None:
    """32 wrong passwords at once, over 32 connections to two workers: the attempt is reserved
    before the password is checked, so at most AUTH_THROTTLE_ACCOUNT_LIMIT checks run."""
    url = request.getfixturevalue("mysql_url" if storage == "mysql" else "pg_url")
    config: dict[str, t.Any] = {
        # A real KDF: each check takes long enough for the attempts to overlap.
        "AUTH_PASSWORD_METHOD": "scrypt:16384:8:1",
        "AUTH_THROTTLE_ADDRESS_LIMIT": 10**6,
    }
    if storage == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        config |= {"AUTH_THROTTLE_STORAGE": REDIS, "AUTH_THROTTLE_PREFIX": prefix}
    app = make_app(url, tmp_path, **config)
    add_user(app)
    dispose(app)
    log = tmp_path / "verified.log"
    log.touch()
    count = 32
    with gunicorn(
        tmp_path, url, threads=16, env={"AUTH_TEST_VERIFY_LOG": str(log)}, **config
    ) as port:
        # Both workers take part, whichever accepted the connections' burst.
        connections = both_workers(port, count, timeout=30)
        try:
            start = threading.Barrier(count)
            wrong = {"email": "ann@example.test", "password": "wrong pass!"}

            def attempt_on(conn: http.client.HTTPConnection) -> Answer:
                start.wait(timeout=10)
                return call(conn, "POST", "/auth/login", wrong)

            with ThreadPoolExecutor(count) as pool:
                answers = list(pool.map(attempt_on, connections))
        finally:
            for conn in connections:
                conn.close()
    statuses = sorted(a.status for a in answers)
    checks = log.read_text().split()
    assert len(checks) <= 5, (len(checks), statuses)
    assert statuses.count(401) == len(checks) and statuses.count(429) == count - len(checks)
    assert len({a.worker for a in answers}) == 2, "one worker served every attempt"
    assert all(a.headers["Retry-After"].isdigit() for a in answers if a.status == 429)


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

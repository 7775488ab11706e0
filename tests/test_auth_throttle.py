"""Failed-login throttling: per account and address, exponential back-off, database and Redis
storage, and shared state across two gunicorn workers over real HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import sqlite3
import threading
import typing as t
from collections.abc import Iterator
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
    Proxy,
    User,
    add_user,
    authdb,
    both_workers,
    call,
    dispose,
    free_port,
    gunicorn,
    make_app,
    redis_or_skip,
)
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_complete import Complete
from flask_complete.auth import passwords, throttle
from flask_complete.auth.models import utcnow
from flask_complete.auth.throttle import (
    TABLE,
    DatabaseThrottle,
    Policy,
    RedisThrottle,
    account_key,
)

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


# --- never fails open by accident ------------------------------------------------------------


class Checks:
    """Counts the password checks a login runs (its KDF runs), each still run for real: every
    login path verifies through ``passwords.verify`` (a known user's ``check_password`` and the
    stand-in check of an unknown account alike)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.lock = threading.Lock()
        real = passwords.verify

        def counted(stored: str | None, password: object, method: str = "scrypt") -> bool:
            with self.lock:
                self.count += 1
            return real(stored, password, method)

        monkeypatch.setattr(passwords, "verify", counted)


def burst(app: Flask, count: int, password: str = "wrong pass!") -> list[int]:
    """``count`` logins for ann at once, one thread and client each; their statuses."""
    start = threading.Barrier(count)

    def one(_: int) -> int:
        client = app.test_client()
        start.wait(timeout=30)
        return int(attempt(client, password=password).status_code)

    with ThreadPoolExecutor(count) as pool:
        return sorted(pool.map(one, range(count)))


def test_parallel_attempts_in_one_process_verify_at_most_the_limit(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 threads of one process, one account, ten bursts: each burst checks at most the limit
    (MariaDB checked 6 to 9 in about half the bursts when a reservation could deadlock)."""
    app = make_app(
        any_db_url,
        tmp_path,
        # A real KDF, so that the attempts overlap; connections for every thread.
        AUTH_PASSWORD_METHOD="scrypt:16384:8:1",
        AUTH_THROTTLE_ADDRESS_LIMIT=10**6,
        DATABASE_POOL_SIZE=32,
    )
    add_user(app)
    checks = Checks(monkeypatch)
    table = authdb.metadata.tables[TABLE]
    try:
        for _ in range(10):
            checks.count = 0
            statuses = burst(app, 32)
            assert checks.count <= 5, (checks.count, statuses)
            assert statuses == [401] * checks.count + [429] * (32 - checks.count)
            with app.app_context():
                authdb.session.execute(sa.delete(table))
                authdb.session.commit()
    finally:
        dispose(app)


def lock_wait(url: str) -> dict[str, t.Any]:
    """Settings under which the app's connections wait one second for a lock (a busy SQLite
    file: 0.2 s), so that a held lock ends in the server's lock-timeout error in time."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "postgresql":
        args = {"options": "-c lock_timeout=1000"}
    elif backend in ("mysql", "mariadb"):
        args = {"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    else:
        return {"SQLITE_BUSY_TIMEOUT": 200}
    return {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": args}}


@contextlib.contextmanager
def holding_lock(app: Flask, key: str) -> Iterator[None]:
    """Another connection holds the lock a reservation of ``key`` needs (its row; SQLite's
    write lock) until the block ends."""
    table = authdb.metadata.tables[TABLE]
    with app.app_context():
        engine = authdb.engine
    if engine.dialect.name == "sqlite":
        # The app's file (testing may use a copy of the one the URL names).
        other = sqlite3.connect(str(engine.url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.rollback()
            other.close()
        return
    with engine.connect() as conn:
        assert conn.execute(sa.select(table).where(table.c.key == key).with_for_update()).first()
        try:
            yield
        finally:
            conn.rollback()


def test_a_held_lock_is_retried_then_refused_never_let_through(
    any_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lock wait that ends in the server's lock-timeout error is contention, not a lost
    store: retried a bounded number of times, then the attempt waits (429) unchecked."""
    app = make_app(any_db_url, tmp_path, **lock_wait(any_db_url))
    add_user(app)
    client = app.test_client()
    assert attempt(client).status_code == 401  # the account's row exists
    errors: list[BaseException] = []
    with app.app_context():
        engine = authdb.engine
    sa.event.listen(engine, "handle_error", lambda ctx: errors.append(ctx.original_exception))
    checks = Checks(monkeypatch)
    try:
        with holding_lock(app, account_key("ann@example.test")):
            for password in ("wrong pass!", PASSWORD):
                errors.clear()
                answer = attempt(client, password=password)
                assert answer.status_code == 429, answer.json
                assert answer.headers["Retry-After"] == "1"
                assert len(errors) == throttle.CONTENTION_TRIES
                assert all(throttle.contended(e, engine.dialect.name) for e in errors), errors
        assert checks.count == 0
        assert "throttling is off" not in caplog.text
        # The lock is free again: attempts count from where they were.
        assert [attempt(client).status_code for _ in range(5)] == [401] * 4 + [429]
        assert checks.count == 4
    finally:
        dispose(app)


def test_contention_is_told_apart_from_a_lost_store(database_url: str, tmp_path: Path) -> None:
    """Real errors of each server: deadlocks, lock timeouts and serialization failures are
    contention (retried); a refused connection, a missing table or bad SQL are not."""
    backend = sa.make_url(database_url).get_backend_name()
    busy = {"timeout": 0.2} if backend == "sqlite" else {}  # seconds SQLite waits for its lock
    engine = sa.create_engine(database_url, connect_args=busy)
    contention: list[BaseException] = []
    other: list[BaseException] = []

    def error_of(conn: sa.Connection, sql: str) -> BaseException:
        with pytest.raises(sa.exc.DBAPIError) as info:
            conn.exec_driver_sql(sql)
        conn.rollback()
        return info.value

    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE pair (id INTEGER PRIMARY KEY, n INTEGER)")
            conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
        a, b = engine.connect(), engine.connect()
        if backend == "sqlite":
            a.exec_driver_sql("UPDATE pair SET n = 1")
            contention.append(error_of(b, "UPDATE pair SET n = 2"))  # busy
        else:
            # A deadlock: each holds one row and asks for the other's.
            a.exec_driver_sql("UPDATE pair SET n = 1 WHERE id = 1")
            b.exec_driver_sql("UPDATE pair SET n = 1 WHERE id = 2")
            found: list[BaseException] = []

            def cross(conn: sa.Connection, row: int) -> None:
                try:
                    conn.exec_driver_sql(f"UPDATE pair SET n = 2 WHERE id = {row}")
                except sa.exc.DBAPIError as e:
                    found.append(e)
                conn.rollback()

            first = threading.Thread(target=cross, args=(a, 2))
            first.start()
            cross(b, 1)
            first.join()
            contention += found
            a.exec_driver_sql("UPDATE pair SET n = 1 WHERE id = 1")
            if backend == "postgresql":
                b.exec_driver_sql("SET lock_timeout = 200")
            else:
                b.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            contention.append(error_of(b, "UPDATE pair SET n = 2 WHERE id = 1"))  # lock wait
            if backend == "postgresql":
                contention.append(error_of(b, "SELECT * FROM pair WHERE id = 1 FOR UPDATE NOWAIT"))
            a.rollback()
            if backend == "postgresql":
                # A serialization failure: a snapshot's row changed by a committed transaction.
                b.execution_options(isolation_level="REPEATABLE READ")
                b.exec_driver_sql("SELECT n FROM pair WHERE id = 1").all()
                a.exec_driver_sql("UPDATE pair SET n = 5 WHERE id = 1")
                a.commit()
                contention.append(error_of(b, "UPDATE pair SET n = 6 WHERE id = 1"))
        a.rollback()
        other.append(error_of(a, "SELECT * FROM no_such_table"))
        other.append(error_of(a, "SELEKT 1"))
        a.close()
        b.close()
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE pair")
        engine.dispose()
    if backend != "sqlite":
        refused = sa.make_url(database_url).set(host="127.0.0.1", port=free_port())
        down = sa.create_engine(refused)
        with pytest.raises(sa.exc.DBAPIError) as info:
            down.connect()
        other.append(info.value)
    assert len(contention) == {"sqlite": 1, "postgresql": 4, "mysql": 2}[backend], contention
    dialect = engine.dialect.name
    assert [throttle.contended(e, dialect) for e in contention] == [True] * len(contention)
    assert [throttle.contended(e, dialect) for e in other] == [False] * len(other), other


# --- a store that is down ----------------------------------------------------------------------


def dead_redis() -> str:
    """A Redis URL on a loopback port where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


def test_an_unreachable_redis_answers_503_before_any_password_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Throttle and sessions in a Redis that does not answer: any login, a right password or a
    wrong one, a known account or not, answers 503 with Retry-After, and no password is checked
    (before, all were checked and only the right one answered 503: an oracle without a limit)."""
    app = make_app("sqlite://", tmp_path, AUTH_THROTTLE_STORAGE=dead_redis())
    add_user(app)
    checks = Checks(monkeypatch)
    client = app.test_client()

    @settings(max_examples=60, deadline=None)
    @given(
        email=st.one_of(st.just("ann@example.test"), st.just(" ANN@example.test"), st.emails()),
        password=st.one_of(st.just(PASSWORD), st.text(min_size=1)),
    )
    def every_login(email: str, password: str) -> None:
        answer = attempt(client, email, password)
        assert answer.status_code == 503, answer.json
        assert answer.headers["Retry-After"].isdigit()
        assert "Redis" not in answer.json["error"]  # the cause is logged, not shown

    every_login()
    assert attempt(client, password=PASSWORD).status_code == 503
    assert checks.count == 0
    assert "logins answer 503" in caplog.text and "AUTH_THROTTLE_FAIL_OPEN" in caplog.text


def test_fail_open_is_a_choice_that_checks_passwords_without_a_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        "sqlite://",
        tmp_path,
        AUTH_THROTTLE_STORAGE=dead_redis(),
        AUTH_SESSION_STORAGE="database",
        AUTH_THROTTLE_FAIL_OPEN=True,
    )
    add_user(app)
    checks = Checks(monkeypatch)
    client = app.test_client()
    assert [attempt(client).status_code for _ in range(8)] == [401] * 8
    assert attempt(client, password=PASSWORD).status_code == 200
    assert checks.count == 9
    assert "login throttling is off" in caplog.text and "AUTH_THROTTLE_FAIL_OPEN" in caplog.text


@pytest.mark.parametrize("fail_open", [False, True])
def test_a_missing_throttle_table_closes_logins_and_says_why(
    auth_db_url: str,
    tmp_path: Path,
    fail_open: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(auth_db_url, tmp_path, AUTH_THROTTLE_FAIL_OPEN=fail_open)
    add_user(app)
    with app.app_context():
        authdb.metadata.tables[TABLE].drop(authdb.engine)
    checks = Checks(monkeypatch)
    client = app.test_client()
    statuses = [attempt(client).status_code for _ in range(6)]
    right = attempt(client, password=PASSWORD)
    assert "flask db migrate" in caplog.text and TABLE in caplog.text
    if fail_open:
        assert statuses == [401] * 6 and right.status_code == 200 and checks.count == 7
    else:
        assert statuses == [503] * 6 and right.status_code == 503 and checks.count == 0
        assert right.headers["Retry-After"].isdigit()
    dispose(app)


def test_a_lost_database_answers_503_before_any_password_is_checked(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = sa.make_url(pg_url)
    proxy = Proxy((parsed.host or "127.0.0.1", int(parsed.port or 0)))
    app = make_app(proxy.url(pg_url), tmp_path, DATABASE_CONNECT_TIMEOUT=2)
    add_user(app)
    checks = Checks(monkeypatch)
    proxy.cut()
    client = app.test_client()
    for password in ("wrong pass!", PASSWORD):
        answer = attempt(client, password=password)
        assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
    assert checks.count == 0
    dispose(app)


def test_check_deploy_warns_about_fail_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    found = {}
    for fail_open in (False, True):
        app = make_app(url, tmp_path, env="development", AUTH_THROTTLE_FAIL_OPEN=fail_open)
        result = app.test_cli_runner().invoke(
            args=["complete", "check", "--deploy", "--format", "json"]
        )
        found[fail_open] = {f["id"]: f for f in json.loads(result.output)["findings"]}
        dispose(app)
    assert "auth.throttle_fail_open" not in found[False]
    warning = found[True]["auth.throttle_fail_open"]
    assert warning["level"] == "warning" and warning["key"] == "AUTH_THROTTLE_FAIL_OPEN"
    assert "AUTH_THROTTLE_FAIL_OPEN = false" in warning["fix"]

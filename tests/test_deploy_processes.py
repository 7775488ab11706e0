"""Two app servers sharing one PostgreSQL database and one Redis, as several hosts behind a load
balancer do: two gunicorn masters (one worker each, separate ports) of the example app in
production, migrated with ``flask db upgrade``, with ``REDIS_URL`` set, so that failed logins
are counted and login records kept in Redis.

- Failed logins spread over both servers add up to one lock: the 6th failure, from either, is
  ``429`` with ``Retry-After``.
- A login made through one server is valid on the other, and a logout through one ends it on
  the other (the server-side session record is gone, so the old cookie no longer works).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import REDIS, Answer, call, redis_or_skip
from conftest import answers, free_port, poll, server_database, stop

#: Real processes and builds: `make test-slow` and CI run them, `make test` does not.
pytestmark = pytest.mark.slow

#: Random, fixed: production refuses guessable keys.
SECRET = "Yk2P9vQeT5wZrN8uL1mHjD4sXcA7bG0oF3iKtEnR6yWq_VhMzUpCdSlJx-gBaIfO"
PASSWORD = "a long enough password"
ROOT = Path(__file__).resolve().parent.parent  # where the example_app package lives
APP = "example_app:create_app()"
BIN = Path(sys.executable).parent


def _environ(url: str, prefix: str) -> dict[str, str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_")) and k not in ("WEB_CONCURRENCY",)
    }
    environ.update(
        FLASK_ENV="production",
        SECRET_KEY=SECRET,
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        FLASK_AUTH_THROTTLE_PREFIX=f"{prefix}throttle:",
        FLASK_AUTH_SESSION_PREFIX=f"{prefix}session:",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return environ


def _flask(environ: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", APP, *args],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def servers(tmp_path: Path, environ: dict[str, str], count: int = 2) -> Iterator[list[int]]:
    """``count`` gunicorn masters of the example app, one worker each; yields their ports."""
    procs: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for i in range(count):
            port, log = free_port(), tmp_path / f"gunicorn-{i}.log"
            command = [
                str(BIN / "gunicorn"),
                *("--no-control-socket", "-w", "1", "-b", f"127.0.0.1:{port}"),
                *("--chdir", str(ROOT), "--graceful-timeout", "3", APP),
            ]
            with log.open("wb") as out:
                proc = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT)
            procs.append((proc, log, port))
        for proc, log, port in procs:

            def booted(
                proc: subprocess.Popen[bytes] = proc, log: Path = log, port: int = port
            ) -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
                return "Booting worker" in log.read_text() and answers(port)

            poll(booted, 30, f"gunicorn on port {port}")
        yield [port for _, _, port in procs]
    finally:
        for proc, _, _ in procs:
            proc.terminate()  # all at once: they stop together
        for proc, _, _ in procs:
            stop(proc)


def send(
    port: int,
    method: str,
    path: str,
    body: t.Any = None,
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the server on ``port``, on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        return call(conn, method, path, body, cookies, headers)
    finally:
        conn.close()


class Deployed(t.NamedTuple):
    ports: list[int]
    url: str
    prefix: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The example app migrated on a fresh database with two users, and two servers on it;
    shared by this module's tests (each uses its own user). The database is dropped and the
    Redis keys deleted after."""
    client = redis_or_skip()
    prefix = f"fc-test-{uuid.uuid4().hex[:10]}:"
    try:
        with server_database("postgres") as url:
            environ = _environ(url, prefix)
            _flask(environ, "db", "upgrade")
            for email in ("ann@example.test", "bob@example.test"):
                _flask(environ, "users", "create", email, "-p", PASSWORD)
            with servers(tmp_path_factory.mktemp("deploy"), environ) as ports:
                yield Deployed(ports, url, prefix)
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.postgres
def test_failed_logins_on_two_servers_add_up_to_one_lock(
    deployed: Deployed,
) -> None:
    (a, b), url, prefix = deployed
    wrong = {"email": "ann@example.test", "password": "wrong pass!"}
    # Five failures, alternating: server a sees three, server b two.
    assert [send((a, b)[i % 2], "POST", "/auth/login", wrong).status for i in range(5)] == [401] * 5
    for port in (b, a):  # the 6th from either, even with the right password
        locked = send(port, "POST", "/auth/login", {**wrong, "password": PASSWORD})
        assert locked.status == 429, locked.body
        assert locked.headers["Retry-After"].isdigit()
        assert 1 <= int(locked.headers["Retry-After"]) <= 30
    # The counts are in Redis, not in the database.
    keys = [k.decode() for k in redis_or_skip().scan_iter(f"{prefix}throttle:*")]
    assert any(":lock:" in k for k in keys), keys
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM auth_throttle")).scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_login_through_one_server_is_valid_on_the_other_until_logged_out(
    deployed: Deployed,
) -> None:
    (a, b), _, prefix = deployed
    login = send(a, "POST", "/auth/login", {"email": "bob@example.test", "password": PASSWORD})
    assert login.status == 200, login.body
    cookies = login.cookies()
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    for port in (a, b):
        me = send(port, "GET", "/auth/me", cookies=cookies)
        assert me.status == 200, (port, me.body)
        assert me.json()["user"]["email"] == "bob@example.test"
    assert list(redis_or_skip().scan_iter(f"{prefix}session:*")), "no login record in Redis"

    out = send(b, "POST", "/auth/logout", cookies=cookies, headers=csrf)
    assert out.status == 204, out.body
    # The same cookie, replayed to the server that made the login: its record is gone.
    for port in (a, b):
        assert send(port, "GET", "/auth/me", cookies=cookies).status == 401

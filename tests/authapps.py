"""Shared pieces of the auth tests: a user and token model on their own SQLAlchemy instance, an
app builder, fixtures over SQLite, PostgreSQL and MariaDB, Redis key prefixes, two gunicorn
workers serving an auth app, and a TCP proxy that can cut the database off; loaded by the auth
test modules with ``pytest_plugins``."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port as free_port
from conftest import stop
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from flask_complete import Complete
from flask_complete.auth import ApiTokenMixin, UserMixin
from flask_complete.database.engines import NAMING_CONVENTION

# A key as `flask complete init` writes one (a repeated pattern is refused as guessable).
STRONG = "SN0B7ZOHBFzyaMnGS6FZfstHh_dY6ic5cO2C6TX-_CkACYFRjqxRJgxhH21WMavF"
PASSWORD = "correct horse battery"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


authdb = SQLAlchemy(model_class=Base)


class User(UserMixin, authdb.Model):  # type: ignore[name-defined,misc]
    pass


class ApiToken(ApiTokenMixin, authdb.Model):  # type: ignore[name-defined,misc]
    pass


#: Answers of the fuzz suite per endpoint (``test_auth_fuzz``), printed at the end of the run.
FUZZ: dict[str, dict[str, int]] = {}


def pytest_terminal_summary(terminalreporter: t.Any) -> None:
    if not FUZZ:
        return
    terminalreporter.section("auth fuzz: answers per endpoint")
    for endpoint, tally in sorted(FUZZ.items()):
        counts = "  ".join(f"{kind} {n:>6}" for kind, n in tally.items())
        terminalreporter.write_line(f"{endpoint:<30} {counts}")


def make_app(
    url: str, root: Path, env: str = "testing", *, user_model: t.Any = User, **config: t.Any
) -> Flask:
    """An app on ``url`` with auth wired to :class:`User`, tables created."""
    app = Flask("authapp")
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url)
    app.config.setdefault("AUTH_THROTTLE_STORAGE", "database")
    app.config.update(config)
    Complete(app, db=authdb, user_model=user_model, env=env, root=root)
    with app.app_context():
        authdb.create_all()
    return app


def add_user(
    app: Flask, email: str = "ann@example.test", password: str = PASSWORD, **kw: t.Any
) -> int:
    """Create a user through the model (as ``flask users create`` does) and return its id."""
    with app.app_context():
        user = User(email=email, **kw)
        user.set_password(password)
        authdb.session.add(user)
        authdb.session.commit()
        return user.id


def dispose(app: Flask) -> None:
    with app.app_context():
        for engine in authdb.engines.values():
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def auth_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on SQLite (a file) and on PostgreSQL, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def auth_app(auth_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The auth test app in testing (cheap hash), on SQLite and PostgreSQL."""
    application = make_app(auth_db_url, tmp_path)
    yield application
    dispose(application)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on SQLite (a file), PostgreSQL and MariaDB, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    else:
        yield request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'mysql'}_url")


# --- Redis -----------------------------------------------------------------------------------

REDIS = "redis://127.0.0.1:6379/0"


def redis_or_skip() -> t.Any:
    """A client of the local Redis; skip (or fail with REQUIRE_TEST_SERVERS=1) without one."""
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
    """A key prefix no other test uses; its keys are deleted after the test."""
    client = redis_or_skip()
    prefix = f"fc-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- two gunicorn workers --------------------------------------------------------------------

#: The app module gunicorn serves: an auth app built from environment variables, with the
#: worker's pid in ``X-Worker`` and, when ``AUTH_TEST_VERIFY_LOG`` names a file, a line written
#: there for every password check (counted across processes).
APP_MODULE = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from authapps import instrument, make_app

app = make_app(os.environ["AUTH_TEST_URL"], Path(os.environ["AUTH_TEST_ROOT"]),
               **json.loads(os.environ["AUTH_TEST_CONFIG"]))
instrument(app)
"""


def instrument(app: Flask) -> None:
    """Tag responses with the worker's pid and log password checks (see :data:`APP_MODULE`)."""
    log = os.environ.get("AUTH_TEST_VERIFY_LOG")
    if log:
        real = User.check_password

        def counted(self: User, password: object) -> bool:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            return real(self, password)

        User.check_password = counted  # type: ignore[method-assign]

    @app.after_request
    def worker(response: t.Any) -> t.Any:
        response.headers["X-Worker"] = str(os.getpid())
        return response


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


@contextlib.contextmanager
def gunicorn(
    tmp_path: Path,
    url: str,
    *,
    threads: int = 2,
    env: dict[str, str] | None = None,
    **config: t.Any,
) -> Iterator[int]:
    """Two gunicorn workers (gthread, kept-alive connections) serving an auth app on ``url``
    built with ``config``; yields the port. Stopped (and killed if need be) on exit."""
    (tmp_path / "gunicorn_app.py").write_text(APP_MODULE.format(tests=str(Path(__file__).parent)))
    port = free_port()
    environ = {
        **os.environ,
        "AUTH_TEST_URL": url,
        "AUTH_TEST_ROOT": str(tmp_path),
        "AUTH_TEST_CONFIG": json.dumps(config),
        **(env or {}),
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        *("-w", "2", "-k", "gthread", "--threads", str(threads), "--keep-alive", "30"),
        *("--preload", "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path)),
        "gunicorn_app:app",
    ]
    proc = subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        wait_for_workers(proc, 2)
        yield port
    finally:
        stop(proc, 15)
        if proc.stderr is not None:
            proc.stderr.close()


class Answer(t.NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def worker(self) -> str:
        return str(self.headers["X-Worker"])

    def json(self) -> t.Any:
        return json.loads(self.body)

    def cookies(self) -> dict[str, str]:
        """The cookies this answer sets (name -> value)."""
        found = {}
        for header in self.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            found[name] = rest.partition(";")[0]
        return found


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: t.Any = None,
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on ``conn``: ``body`` sent as JSON, ``cookies`` as a Cookie header."""
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        sent["Content-Type"] = "application/json"
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request(method, path, data, sent)
    response = conn.getresponse()
    return Answer(response.status, response.headers, response.read())


def both_workers(
    port: int, count: int = 2, timeout: float = 10
) -> list[http.client.HTTPConnection]:
    """``count`` kept-alive connections, the first two served by two different worker processes
    (each asked ``GET /auth/me``): a worker may accept every connection of a burst."""
    by_worker: dict[str, list[http.client.HTTPConnection]] = {}
    for _ in range(10):
        batch = [http.client.HTTPConnection("127.0.0.1", port, timeout=timeout) for _ in range(8)]
        for conn in batch:
            conn.connect()
        for conn in batch:
            by_worker.setdefault(call(conn, "GET", "/auth/me").worker, []).append(conn)
        if len(by_worker) >= 2 and sum(map(len, by_worker.values())) >= count:
            break
    firsts = [conns[0] for conns in by_worker.values()]
    ordered = firsts + [conn for conns in by_worker.values() for conn in conns[1:]]
    for conn in ordered[count:]:
        conn.close()
    assert len(by_worker) >= 2, "every connection went to one worker"
    return ordered[:count]


# --- a TCP proxy that can cut the database off ------------------------------------------------


class Proxy:
    """Forwards a loopback port to ``target``; :meth:`cut` closes every connection and stops
    listening, so the app behind it sees its database go away (refused from then on)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, url: str) -> str:
        """``url`` pointed at the proxy."""
        import sqlalchemy as sa

        return sa.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            self.forward(client, upstream)

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Pipe one accepted connection both ways (a subclass may look at what passes)."""
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones."""
        with contextlib.suppress(OSError):
            # Wakes the accepting thread (a plain close may leave it blocked).
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

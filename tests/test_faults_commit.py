"""A ``503`` means nothing was written: a request's own server connection is killed at each point
of a write (PostgreSQL, MariaDB; real kills, see ``commitfaults``), and every answer is checked
against what the database holds.

- before the COMMIT is sent (the first query, the flush): ``503`` with ``Retry-After``, no row;
- once a COMMIT is sent: never ``503`` (the write may be stored; a retry would repeat it): the
  example app answers ``201`` (it builds its response before the commit), a view that reads
  its row back after the commit ``500``; a COMMIT whose answer is lost can be stored, which is
  why a failure at the COMMIT itself is not a ``503`` either;
- over gunicorn, writes with kills at points drawn by hypothesis: every ``503`` row is absent,
  every ``201`` row is stored exactly once.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import typing as t
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import REDIS, STRONG, Proxy, call
from commitfaults import HEADER, Killer, add_readback, install
from conftest import admin_engine, answers, free_port, poll, stop
from flask import Flask
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from example_app import create_app
from example_app.models import Note
from flask_complete import db

#: Real processes and builds: `make test-slow` and CI run them, `make test` does not.
pytestmark = pytest.mark.slow
pytest_plugins = ["authapps"]

PASSWORD = "a long enough password"
ROOT = Path(__file__).resolve().parent.parent  # where the example_app package lives
HERE = Path(__file__).resolve().parent


class Example(t.NamedTuple):
    app: Flask
    url: str
    killer: Killer
    headers: dict[str, str]  # the bearer token
    notebook: int


def prepare(url: str) -> tuple[str, int]:
    """Migrate the example app's database at ``url``, add a user, a token and a notebook."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": STRONG})
    runner = app.test_cli_runner()
    for args in (["db", "upgrade"], ["users", "create", "ann@example.test", "-p", PASSWORD]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    issued = runner.invoke(args=["users", "token", "ann@example.test", "--name", "faults"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.split()[0]
    headers = {"Authorization": f"Bearer {token}"}
    created = app.test_client().post("/api/notebooks", json={"name": "Inbox"}, headers=headers)
    assert created.status_code == 201, created.data
    with app.app_context():
        db.engine.dispose()
    return token, int(created.json["id"])


@pytest.fixture(params=["postgres", "mysql"])
def example(request: pytest.FixtureRequest) -> Iterator[Example]:
    """The example app with the read-back view and the kill hooks, on a migrated database."""
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
    token, notebook = prepare(url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": STRONG})
    add_readback(app)
    killer = install(app, db, url)
    try:
        yield Example(app, url, killer, {"Authorization": f"Bearer {token}"}, notebook)
    finally:
        killer.close()
        with app.app_context():
            db.engine.dispose()


def stored(url: str, title: str) -> int:
    """How many notes titled ``title`` the database holds (asked on a connection of its own)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(Note).where(Note.title == title)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def write(example: Example, view: str, point: str) -> tuple[t.Any, str]:
    """POST a note with a new title through ``view``, killed at ``point``."""
    title = uuid.uuid4().hex
    path = {
        "notes": f"/api/notebooks/{example.notebook}/notes",
        "readback": f"/api/readback/{example.notebook}",
    }[view]
    headers = {**example.headers, HEADER: point}
    return example.app.test_client().post(path, json={"title": title}, headers=headers), title


# --- in a request: the point of the kill decides the answer -----------------------------------


def test_the_example_app_answers_201_when_its_backend_dies_after_the_commit(
    example: Example,
) -> None:
    """It builds its answer before the commit: nothing is read after it, so a connection lost
    then changes nothing (before, the answer was a 503 for a stored note)."""
    response, title = write(example, "notes", "after-commit")
    assert response.status_code == 201, response.data
    assert response.json["title"] == title and response.json["id"] > 0
    assert stored(example.url, title) == 1
    assert example.killer.killed == 1  # the committed connection, really ended
    named = example.app.test_client().post(
        "/api/notebooks", json={"name": "Work"}, headers={**example.headers, HEADER: "after-commit"}
    )
    assert named.status_code == 201, named.data
    assert named.json == {"id": named.json["id"], "name": "Work", "notes": 0}
    assert example.killer.killed == 2


def test_a_failure_after_the_commit_is_a_500_never_a_503(
    example: Example, caplog: pytest.LogCaptureFixture
) -> None:
    """A view that reads its row back after the commit loses the connection: the note is
    stored, so the answer must not tell the client to send it again."""
    with caplog.at_level(logging.ERROR, logger="flask_complete.api"):
        response, title = write(example, "readback", "after-commit")
    assert response.status_code == 500, response.data
    assert "Retry-After" not in response.headers and response.is_json
    assert stored(example.url, title) == 1
    assert "after this request sent a COMMIT" in caplog.text


@pytest.mark.parametrize("view", ["notes", "readback"])
@pytest.mark.parametrize("point", ["query", "flush"])
def test_a_failure_before_the_commit_is_a_503_and_nothing_is_written(
    example: Example, view: str, point: str
) -> None:
    response, title = write(example, view, point)
    assert response.status_code == 503, response.data
    assert response.headers["Retry-After"].isdigit()
    assert stored(example.url, title) == 0
    assert example.killer.killed == 1


def test_a_failure_at_the_commit_is_not_a_503(example: Example) -> None:
    """The COMMIT meets a dead connection: here nothing is stored, but a COMMIT whose answer is
    lost can be (``test_a_commit_whose_answer_is_lost_is_stored``): neither is a 503."""
    response, title = write(example, "notes", "commit")
    assert response.status_code == 500, response.data
    assert "Retry-After" not in response.headers
    assert stored(example.url, title) == 0


class CommitCut(Proxy):
    """A TCP proxy to PostgreSQL that, once armed, forwards the next COMMIT to the server and
    closes the client's connection instead of forwarding the server's answer."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.armed = threading.Event()
        self.cut_done = threading.Event()  # a COMMIT's answer was dropped
        super().__init__(target)

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        committing = threading.Event()
        for pipe, a, b in ((self._up, client, upstream), (self._down, upstream, client)):
            threading.Thread(target=pipe, args=(a, b, committing), daemon=True).start()

    def _up(
        self, client: socket.socket, upstream: socket.socket, committing: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                # The simple-query message psycopg sends for commit(): b"Q", length, text.
                if self.armed.is_set() and b"COMMIT\x00" in data:
                    self.armed.clear()
                    committing.set()  # before the COMMIT leaves: its answer is not forwarded
                upstream.sendall(data)

    def _down(
        self, upstream: socket.socket, client: socket.socket, committing: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if committing.is_set():
                    # The server has answered the COMMIT (it is done): drop the answer and the
                    # client's connection, as a network failure would at that moment.
                    self.cut_done.set()
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize(("point", "status"), [("query", 503), ("commit", 500)])
def test_a_login_is_a_503_only_when_nothing_can_be_stored(
    example: Example, redis_prefix: str, point: str, status: int
) -> None:
    """The bundle's own endpoints keep the rule: a login lost before its COMMIT is a 503 with
    Retry-After; one lost at the COMMIT (its session record and last-login time may be stored)
    is a 500, so that a client does not log in again on a 503's word. (The throttle keeps its
    counts in Redis here, so the login's COMMIT is the request's only one.)"""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": example.url,
            "SECRET_KEY": STRONG,
            "AUTH_THROTTLE_STORAGE": REDIS,
            "AUTH_THROTTLE_PREFIX": redis_prefix,
        }
    )
    killer = install(app, db, example.url)
    try:
        response = app.test_client().post(
            "/auth/login",
            json={"email": "ann@example.test", "password": PASSWORD},
            headers={HEADER: point},
        )
        assert response.status_code == status, response.data
        assert ("Retry-After" in response.headers) == (status == 503)
        assert response.is_json
        assert killer.killed == 1
    finally:
        killer.close()
        with app.app_context():
            db.engine.dispose()


@pytest.mark.postgres
def test_a_commit_whose_answer_is_lost_is_stored(pg_url: str) -> None:
    """Why a failure at the COMMIT is not a 503: the server commits, the answer is lost, the
    driver raises as for any lost connection, and the row is there."""
    token, notebook = prepare(pg_url)
    parsed = sa.make_url(pg_url)
    proxy = CommitCut((parsed.host or "127.0.0.1", int(parsed.port or 5432)))
    app = create_app({"SQLALCHEMY_DATABASE_URI": proxy.url(pg_url), "SECRET_KEY": STRONG})
    try:
        title = uuid.uuid4().hex
        proxy.armed.set()
        response = app.test_client().post(
            f"/api/notebooks/{notebook}/notes",
            json={"title": title},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert proxy.cut_done.is_set(), response.data
        assert stored(pg_url, title) == 1
        assert response.status_code == 500, response.data
    finally:
        proxy.cut()
        with app.app_context():
            db.engine.dispose()


def test_a_request_after_a_committed_one_starts_afresh(example: Example) -> None:
    """The COMMIT is counted per request: the next request on the same app and pool that loses
    its connection before its commit is a 503 again."""
    assert write(example, "readback", "after-commit")[0].status_code == 500
    response, title = write(example, "readback", "flush")
    assert response.status_code == 503, response.data
    assert stored(example.url, title) == 0


# --- over gunicorn: writes killed at points hypothesis draws, and at random moments ------------

#: The answer each view gives when its connection is killed at each point.
EXPECTED = {
    ("notes", "none"): 201,
    ("notes", "query"): 503,
    ("notes", "flush"): 503,
    ("notes", "commit"): 500,
    ("notes", "after-commit"): 201,
    ("readback", "none"): 201,
    ("readback", "query"): 503,
    ("readback", "flush"): 503,
    ("readback", "commit"): 500,
    ("readback", "after-commit"): 500,
}
WRITES = st.lists(st.sampled_from(sorted(EXPECTED)), min_size=25, max_size=25)


def production(url: str) -> dict[str, str]:
    """The environment of the example app in production on ``url``, with the kill hooks' admin
    connection."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_")) and k not in ("WEB_CONCURRENCY",)
    }
    environ.update(
        FLASK_ENV="production",
        SECRET_KEY=STRONG,
        DATABASE_URL=url,
        FAULT_ADMIN_URL=url,
        PYTHONPATH=os.pathsep.join(str(p) for p in (ROOT, HERE)),
    )
    return environ


def flask(environ: dict[str, str], *args: str) -> str:
    """Run ``flask`` on the example app (as its operators do); its output."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "example_app", *args],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextlib.contextmanager
def serve_example(tmp_path: Path, environ: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """gunicorn serving the example app with the kill hooks (2 workers of 2 threads, loopback);
    yields its port and its log."""
    port, log = free_port(), tmp_path / "gunicorn.log"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        *("--no-control-socket", "-w", "2", "-k", "gthread", "--threads", "2"),
        *("-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--graceful-timeout", "3"),
        "commitfaults:create()",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:

        def booted() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
            return log.read_text().count("Booting worker") >= 2 and answers(port)

        poll(booted, 30, "2 gunicorn workers")
        yield port, log
    finally:
        stop(proc)


def post(port: int, token: str, path: str, point: str = "none") -> tuple[int, str]:
    """POST a note with a new title; the status (0: no answer) and the title."""
    title = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}", HEADER: point}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return call(conn, "POST", path, {"title": title}, headers=headers).status, title
    except (OSError, http.client.HTTPException):
        return 0, title
    finally:
        conn.close()


def counts(url: str) -> collections.Counter[str]:
    """How many times each title is stored."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return collections.Counter(conn.execute(sa.select(Note.title)).scalars())
    finally:
        engine.dispose()


def check(answers: list[tuple[int, str]], url: str) -> collections.Counter[tuple[int, int]]:
    """Every 503's note is absent, every 201's stored once; (status, copies) tallied."""
    held = counts(url)
    tally: collections.Counter[tuple[int, int]] = collections.Counter()
    for status, title in answers:
        tally[status, held[title]] += 1
        assert status in (201, 500, 503), (status, title)
        if status == 503:
            assert held[title] == 0, f"a 503 for a stored note {title}"
        if status == 201:
            assert held[title] == 1, f"a 201 for a note stored {held[title]} times"
    return tally


@pytest.mark.postgres
def test_over_gunicorn_a_503_is_never_stored_and_a_201_is_stored_once(
    pg_url: str, tmp_path: Path
) -> None:
    environ = production(pg_url)
    flask(environ, "db", "upgrade")
    flask(environ, "users", "create", "ann@example.test", "-p", PASSWORD)
    token = flask(environ, "users", "token", "ann@example.test", "--name", "faults").split()[0]
    tally: collections.Counter[tuple[int, int]] = collections.Counter()
    with serve_example(tmp_path, environ) as (port, log), ThreadPoolExecutor(4) as clients:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        bearer = {"Authorization": f"Bearer {token}"}
        notebook = call(conn, "POST", "/api/notebooks", {"name": "Inbox"}, headers=bearer).json()
        conn.close()
        paths = {
            "notes": f"/api/notebooks/{notebook['id']}/notes",
            "readback": f"/api/readback/{notebook['id']}",
        }

        # 4 examples of 25 concurrent writes, each killed at the point drawn for it; no
        # shrinking, so that a failure costs no more requests.
        @settings(max_examples=4, deadline=None, database=None, phases=[Phase.generate])
        @given(WRITES)
        def killed_at_points(writes: list[tuple[str, str]]) -> None:
            answered = list(clients.map(lambda w: post(port, token, paths[w[0]], w[1]), writes))
            for write, (status, title) in zip(writes, answered, strict=True):
                assert status == EXPECTED[write], (write, status, title, log)
            tally.update(check(answered, pg_url))

        killed_at_points()

        # 100 writes from 4 clients while every backend of the database is killed after one
        # answer in 4 (drawn): the kills land wherever the writes in flight are.
        draw = random.Random(8)
        database = sa.make_url(pg_url).database
        killer = admin_engine("postgres")  # on another database: the kills spare it
        lock = threading.Lock()

        def write_and_maybe_kill(i: int) -> tuple[int, str]:
            answer = post(port, token, paths["notes" if i % 2 else "readback"])
            with lock:
                kill = draw.random() < 0.25
            if kill:
                with killer.connect() as conn:
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :d"
                        ),
                        {"d": database},
                    )
            return answer

        try:
            random_kills = check(list(clients.map(write_and_maybe_kill, range(100))), pg_url)
        finally:
            killer.dispose()
    print(f"\nkilled at points: {dict(tally)}\nkilled at random: {dict(random_kills)}")
    assert random_kills[201, 1] > 0

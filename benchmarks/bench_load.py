"""The example app under load on gunicorn and PostgreSQL: throughput, latency, errors, pool
timeouts, acknowledged writes against rows, and the connections the workers hold.

Run: ``python benchmarks/bench_load.py [--postgres URL] [--seconds 5] [--connections 16]``.

Creates a fresh database ``bench_load_<random>`` on the server (``--postgres``, default
``TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432``), migrates it with
``flask db upgrade``, creates a user with ``flask users create``, and drops the database at the
end. The example app runs in production (a random ``SECRET_KEY``, the settings' pool: per
worker at most ``DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW`` connections) on loopback, served by
gunicorn with 2 sync workers, then 2 gthread workers x 8 threads. Writes need a login: the script
logs in at ``/auth/login`` (JSON; a session cookie and its CSRF token), creates a bearer token at
``/auth/tokens`` with them, and writes with the token.

For each server: ``wrk --latency`` for ``--seconds`` on a read route (``GET /api/notebooks``,
three notebooks of five notes) and on a write route (``POST /api/notebooks/<id>/notes``):
req/s, p50/p99, non-2xx and socket errors. Then an exact-count client (Python threads, a
bounded time) POSTs notes and counts its 201s, which must equal the rows the database gained.
Also: pool timeouts in the gunicorn log (target 0), and the connections to the database
(``pg_stat_activity``) at their peak during the runs and held after them, against
``workers x (pool_size + max_overflow)``. The notes written are deleted after each server, so
every server reads the same rows. Without ``wrk``, says how to install it and runs only the
exact-count client.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from _serve import free_port, stop, wait_booted

REPO = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="fc-bench-load-"))
EMAIL = "bench@example.test"
PASSWORD = secrets.token_urlsafe(16)
SECRET_KEY = secrets.token_urlsafe(48)
SERVERS = {
    "2 sync workers": ["-w", "2", "-k", "sync"],
    "2 gthread workers x 8 threads": ["-w", "2", "-k", "gthread", "--threads", "8"],
}
WORKERS = 2
#: What a pool timeout looks like in the log (SQLAlchemy's TimeoutError, logged by the app).
POOL_TIMEOUT = re.compile(r"QueuePool limit of size \d+ overflow \d+ reached|pool.*timed out", re.I)
_AMBIENT = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "SQLALCHEMY_DATABASE_URI", "WEB_CONCURRENCY")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


# --- database and app set-up ---------------------------------------------------------------------


class Database:
    """A fresh database on the server at ``server_url``, dropped by :meth:`drop`."""

    def __init__(self, server_url: str) -> None:
        from flask_complete.database.urls import normalize_url

        self.name = f"bench_load_{uuid.uuid4().hex[:10]}"
        server = sa.make_url(normalize_url(server_url))
        self.admin = sa.create_engine(
            server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = server.set(database=self.name).render_as_string(hide_password=False)
        self.engine = sa.create_engine(self.url, poolclass=sa.NullPool)

    def scalar(self, sql: str, **params: t.Any) -> t.Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def connections(self) -> int:
        """Connections to this database, other than a query of this script's own."""
        with self.admin.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.name},
                ).scalar()
            )

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def app_env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_")) and k not in _AMBIENT
    }
    env.update(
        FLASK_APP="example_app",
        FLASK_ENV="production",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=url,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    )
    return env


def _bin(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [_bin("flask"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def pool_limits(env: dict[str, str]) -> tuple[int, int]:
    """``DATABASE_POOL_SIZE`` and ``DATABASE_MAX_OVERFLOW`` as the app resolves them."""
    code = (
        "from example_app import create_app; c = create_app().config; "
        "print(c['DATABASE_POOL_SIZE'], c['DATABASE_MAX_OVERFLOW'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[-2]), int(out[-1])


# --- gunicorn ------------------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn(env: dict[str, str], args: list[str], log: Path) -> Iterator[int]:
    port = free_port()
    command = [
        _bin("gunicorn"),
        *("--no-control-socket", *args, "-b", f"127.0.0.1:{port}", "--chdir", str(REPO)),
        *("--graceful-timeout", "5", "--timeout", "30", "example_app:create_app()"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_booted(proc, port, log, WORKERS, 60, "gunicorn")
        yield port
    finally:
        stop(proc, 15)


# --- HTTP ----------------------------------------------------------------------------------------


class Answer(t.NamedTuple):
    status: int
    body: t.Any
    cookies: dict[str, str]


def call(
    port: int, method: str, path: str, body: t.Any = None, headers: dict[str, str] | None = None
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body)
        sent = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers={**sent, **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        cookies = {}
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            cookies[name.strip()] = rest.split(";", 1)[0]
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return Answer(response.status, parsed, cookies)
    finally:
        conn.close()


def _expect(answer: Answer, status: int, what: str) -> t.Any:
    if answer.status != status:
        raise SystemExit(f"{what}: expected {status}, got {answer.status}: {answer.body!r}")
    return answer.body


def bearer_token(port: int) -> str:
    """Log in (session cookie + CSRF token), then mint a bearer token with that session."""
    login = call(port, "POST", "/auth/login", {"email": EMAIL, "password": PASSWORD})
    body = _expect(login, 200, "POST /auth/login")
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    headers = {"Cookie": cookie, "X-CSRF-Token": body["csrf_token"]}
    made = call(port, "POST", "/auth/tokens", {"name": "bench"}, headers)
    return str(_expect(made, 201, "POST /auth/tokens")["token"])


def seed(port: int, auth: dict[str, str]) -> int:
    """Three notebooks of five notes to read, and an empty one to write into (its id)."""
    for i in range(3):
        notebook = _expect(
            call(port, "POST", "/api/notebooks", {"name": f"read {i}"}, auth), 201, "notebook"
        )
        for j in range(5):
            path = f"/api/notebooks/{notebook['id']}/notes"
            _expect(
                call(port, "POST", path, {"title": f"note {j}", "body": "x" * 200}, auth),
                201,
                "note",
            )
    writes = call(port, "POST", "/api/notebooks", {"name": "writes"}, auth)
    return int(_expect(writes, 201, "notebook")["id"])


# --- wrk -----------------------------------------------------------------------------------------


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict[str, t.Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    found: dict[str, t.Any] = {"raw": out}
    found["rps"] = float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1])  # type: ignore[index]
    found["requests"] = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        found[f"p{pct}"] = _ms(match[1]) if match else float("nan")
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    found["non2xx"] = int(match[1]) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    found["socket_errors"] = sum(int(g) for g in match.groups()) if match else 0
    return found


def write_script(token: str, path: Path) -> Path:
    script = WORK / "write.lua"
    body = json.dumps({"title": "load", "body": "written under load"})
    script.write_text(
        f'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f'wrk.path = "{path}"\n'
    )
    return script


# --- exact-count client --------------------------------------------------------------------------


def exact_writes(
    port: int, path: str, auth: dict[str, str], seconds: float, threads: int
) -> Counter:
    """Threads POSTing notes for ``seconds``; each answer's status counted (0: no answer)."""
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < deadline:
            try:
                status = call(port, "POST", path, {"title": "exact"}, auth).status
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                counts[status] += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 60)
    return counts


def settled(count: t.Callable[[], int], quiet: float = 1.0, timeout: float = 20.0) -> int:
    """``count()`` once it has not changed for ``quiet`` seconds: the server has drained the
    requests a stopped client left behind (at most ``timeout`` seconds)."""
    last, since, deadline = count(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


class PeakSampler:
    """The most connections to the database seen while running (sampled every 0.2 s)."""

    def __init__(self, db: Database) -> None:
        self.db, self.peak, self.stop = db, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self.db.connections())

    def __enter__(self) -> PeakSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


# --- the run -------------------------------------------------------------------------------------


def run_server(
    label: str,
    args: list[str],
    env: dict[str, str],
    db: Database,
    limits: tuple[int, int],
    opts: argparse.Namespace,
    setup: dict[str, t.Any],
) -> list[str]:
    missed: list[str] = []
    log = WORK / f"gunicorn-{len(setup.get('done', []))}.log"
    print(f"\n== {label} (gunicorn {' '.join(args)}), {opts.seconds} s per wrk run")
    with gunicorn(env, args, log) as port, PeakSampler(db) as peak:
        if "auth" not in setup:
            setup["auth"] = {"Authorization": f"Bearer {bearer_token(port)}"}
            setup["notebook"] = seed(port, setup["auth"])
        auth, notebook = setup["auth"], setup["notebook"]
        base = f"http://127.0.0.1:{port}"
        write_path = f"/api/notebooks/{notebook}/notes"
        count_rows = "SELECT count(*) FROM note WHERE notebook_id = :n"
        for _ in range(20):  # warm both workers
            _expect(call(port, "GET", "/api/notebooks"), 200, "GET /api/notebooks")

        if shutil.which("wrk"):
            print(
                f"{'route':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}"
                f"{'non-2xx':>9}{'sock err':>9}"
            )
            routes = [
                ("GET /api/notebooks", f"{base}/api/notebooks", None),
                (f"POST {write_path}", base, write_script(auth["Authorization"][7:], write_path)),
            ]
            for name, url, script in routes:
                before = db.scalar(count_rows, n=notebook)
                found = wrk(url, opts.seconds, opts.connections, script)
                print(
                    f"{name:<34}{found['rps']:>8.0f}{found['p50']:>9.2f}{found['p99']:>9.2f}"
                    f"{found['requests']:>10}{found['non2xx']:>9}{found['socket_errors']:>9}"
                )
                if found["non2xx"] or found["socket_errors"]:
                    missed.append(f"{label}: {name} errors")
                if script is not None:
                    rows = settled(lambda: db.scalar(count_rows, n=notebook)) - before
                    print(
                        f"  rows the wrk write run wrote: {rows}, {rows - found['requests']} "
                        f"more than wrk finished (requests in flight or queued in the listen "
                        f"backlog when wrk stopped still run); the exact count is below"
                    )
        else:
            print("wrk is not installed (apt-get install wrk); running only the exact-count client")

        before = db.scalar(count_rows, n=notebook)
        counts = exact_writes(port, write_path, auth, opts.exact_seconds, opts.exact_threads)
        rows = db.scalar(count_rows, n=notebook) - before
        acknowledged = counts.get(201, 0)
        others = {k: v for k, v in counts.items() if k != 201}
        print(
            f"exact-count client ({opts.exact_threads} threads, {opts.exact_seconds:g} s): "
            f"{acknowledged} x 201, other answers {others or 'none'}; rows written {rows}: "
            f"rows == 201s  {_verdict(rows == acknowledged)}"
        )
        if rows != acknowledged:
            missed.append(f"{label}: rows {rows} != 201s {acknowledged}")
        if others:
            missed.append(f"{label}: exact-count client got {others}")

        held = db.connections()
    cap = WORKERS * (limits[0] + limits[1])
    timeouts = len(POOL_TIMEOUT.findall(log.read_text()))
    errors = log.read_text().count("Traceback")
    print(
        f"pool timeouts in the gunicorn log: {timeouts}  target 0  {_verdict(timeouts == 0)}"
        f"  (tracebacks: {errors})"
    )
    print(
        f"connections to the database: peak {peak.peak}, held after the run {held}; "
        f"limit {WORKERS} workers x ({limits[0]} + {limits[1]}) = {cap}  "
        f"{_verdict(max(peak.peak, held) <= cap)}"
    )
    if timeouts:
        missed.append(f"{label}: {timeouts} pool timeouts")
    if max(peak.peak, held) > cap:
        missed.append(f"{label}: connections above the pool limit")
    # Every server reads the same rows.
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM note WHERE notebook_id = :n"), {"n": notebook})
    setup.setdefault("done", []).append(label)
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="a PostgreSQL server URL (a database is created there and dropped)",
    )
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--exact-seconds", type=float, default=3.0)
    parser.add_argument("--exact-threads", type=int, default=8)
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        print(
            "wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu) or "
            "`brew install wrk`; the wrk figures are skipped."
        )
    db = Database(opts.postgres)
    missed: list[str] = []
    try:
        env = app_env(db.url)
        flask(env, "db", "upgrade")
        flask(env, "users", "create", EMAIL, "--password", PASSWORD)
        limits = pool_limits(env)
        print(
            f"database {db.name}: migrated; pool per worker: DATABASE_POOL_SIZE {limits[0]}, "
            f"DATABASE_MAX_OVERFLOW {limits[1]}"
        )
        setup: dict[str, t.Any] = {}
        for label, args in SERVERS.items():
            missed += run_server(label, args, env, db, limits, opts, setup)
        after = db.connections()
        print(f"\nconnections left after the servers stopped: {after}  {_verdict(after == 0)}")
        if after:
            missed.append("connections left after stop")
        print("not met: " + ("; ".join(missed) if missed else "none"))
    finally:
        db.drop()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

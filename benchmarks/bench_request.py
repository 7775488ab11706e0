"""The request floor: what one request costs on bare Flask, the hand-wired stack and
``Complete(app)``, in-process and over HTTP, and what the example app's ``create_app()`` costs.

Run: ``python benchmarks/bench_request.py [--rounds 7] [--count 1000] [--http-rounds 5]
[--http-seconds 1] [--no-http]``.

Four apps, each with the same three routes: ``/plain`` (answers "hello"), ``/api/ping`` (the
same, under the bundle's default ``CORS_RESOURCES``; requested with a matching ``Origin``) and
``/whoami`` (reads ``current_user`` anonymously):

- ``bare``: Flask, no ``SECRET_KEY``;
- ``bare+key``: Flask with a ``SECRET_KEY`` whose routes read the session: the fair floor, as
  every stack with a login opens the session cookie on each request;
- ``hand-wired``: the stack of ``bench_overhead.py`` as the libraries' docs wire it
  (FlaskDynaconf, Flask-SQLAlchemy, Flask-Migrate, flask-cors, Flask-Login), with flask-cors
  limited to the bundle's default resources (``/api/*``, ``/auth/*``) so that both stacks do the
  same CORS work;
- ``flask_complete``: the one-call app with the bundle's login (a user model), in development
  (whose ``CORS_ORIGINS`` allow ``http://localhost:*``) and the default ``CORS_RESOURCES``.

In-process, each request is a raw WSGI call (no test client: its own cost would hide the
app's), timed in interleaved rounds so that a busy moment hits every case alike. Over HTTP, each
app is served by gunicorn (one sync worker, loopback) and driven by ``wrk`` for a bounded time
(a small Python client when ``wrk`` is missing). Figures are medians over the rounds; ratios are
the median of each round's ratio.

Targets (against ``bare+key`` on the same path, in the same run): ``/plain``, which touches no
piece, >= 0.9x; ``/api/ping`` answering a matching ``Origin`` >= 0.8x; ``/whoami`` over HTTP
>= 0.9x. Then the example app's ``create_app()``: the first call (fresh interpreters), the
repeated one (target <= 2 ms, auth on) and a profile of where the repeated one spends its time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

from _serve import free_port, stop, wait_booted

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(tempfile.mkdtemp(prefix="fc-bench-request-"))
KEY = secrets.token_urlsafe(48)
ORIGIN = "http://localhost:3000"
PATHS = ("/plain", "/api/ping", "/whoami")
#: Settings that would leak into the apps from this shell.
_AMBIENT = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "SQLALCHEMY_DATABASE_URI", "WEB_CONCURRENCY")

APPS = {
    "bare": """
        from flask import Flask

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            hello = lambda: "hello"
            app.add_url_rule("/plain", "plain", hello)
            app.add_url_rule("/api/ping", "ping", hello)
            app.add_url_rule("/whoami", "whoami", hello)
            return app
    """,
    "bare+key": """
        from flask import Flask, session

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            app.config["SECRET_KEY"] = KEY

            def touched():
                session.get("_user_id")  # opens the (absent) session cookie, as a login does
                return "hello"

            app.add_url_rule("/plain", "plain", touched)
            app.add_url_rule("/api/ping", "ping", touched)
            app.add_url_rule("/whoami", "whoami", touched)
            return app
    """,
    "hand-wired": """
        from dynaconf import FlaskDynaconf
        from flask import Flask
        from flask_cors import CORS
        from flask_login import LoginManager, current_user
        from flask_migrate import Migrate
        from flask_sqlalchemy import SQLAlchemy
        from sqlalchemy.orm import DeclarativeBase

        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            FlaskDynaconf(app, settings_files=[], environments=True)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + ROOT + "/hand.sqlite3"
            app.config["SECRET_KEY"] = KEY
            db.init_app(app)
            Migrate(app, db)
            CORS(
                app,
                resources=[r"/api/.*", r"/auth/.*"],
                origins=["http://localhost:3000"],
                supports_credentials=True,
            )
            login = LoginManager(app)
            login.user_loader(lambda user_id: None)
            hello = lambda: "hello"
            app.add_url_rule("/plain", "plain", hello)
            app.add_url_rule("/api/ping", "ping", hello)
            app.add_url_rule("/whoami", "whoami", lambda: str(current_user.is_authenticated))
            return app
    """,
    "flask_complete": """
        from flask import Flask
        from flask_login import current_user
        from flask_sqlalchemy import SQLAlchemy
        from sqlalchemy.orm import DeclarativeBase

        from flask_complete import Complete
        from flask_complete.auth import UserMixin

        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        class User(UserMixin, db.Model):
            pass

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            app.config.update(
                SECRET_KEY=KEY,
                SQLALCHEMY_DATABASE_URI="sqlite:///" + ROOT + "/complete.sqlite3",
                AUTH_SESSION_STORAGE="database",
            )
            Complete(app, db=db, user_model=User, env="development", root=ROOT)
            with app.app_context():
                db.create_all()
            hello = lambda: "hello"
            app.add_url_rule("/plain", "plain", hello)
            app.add_url_rule("/api/ping", "ping", hello)
            app.add_url_rule("/whoami", "whoami", lambda: str(current_user.is_authenticated))
            return app
    """,
}
FLOOR = "bare+key"
#: (path, target ratio to the floor, where it applies) for the flask_complete app.
TARGETS = [("/plain", 0.9, "both"), ("/api/ping", 0.8, "both"), ("/whoami", 0.9, "http")]


def _stem(name: str) -> str:
    return "bench_" + re.sub(r"\W", "_", name)


def write_apps() -> None:
    for name, source in APPS.items():
        header = f"ROOT = {str(ROOT)!r}\nKEY = {KEY!r}\n"
        (ROOT / f"{_stem(name)}.py").write_text(header + textwrap.dedent(source))
        (ROOT / f"serve_{_stem(name)}.py").write_text(
            f"from {_stem(name)} import create_app\n\napp = create_app()\n"
        )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _headers(path: str) -> dict[str, str]:
    return {"Origin": ORIGIN} if path.startswith("/api/") else {}


# --- in-process --------------------------------------------------------------------------------


def _load(name: str) -> t.Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return __import__(_stem(name))


def _check(name: str, app: t.Any) -> None:
    """Each route answers 200; the CORS route carries the CORS header on the CORS stacks."""
    client = app.test_client()
    for path in PATHS:
        response = client.get(path, headers=_headers(path))
        assert response.status_code == 200, (name, path, response.status_code, response.data)
        cors = response.headers.get("Access-Control-Allow-Origin")
        if name in ("hand-wired", "flask_complete"):
            expected = ORIGIN if path == "/api/ping" else None
            assert cors == expected, (name, path, cors)


def _environ(path: str) -> dict[str, t.Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path, base_url="http://localhost", headers=_headers(path))
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _start_response(status: str, headers: t.Any, exc_info: t.Any = None) -> None:
    return None


def wsgi_rate(app: t.Any, environ: dict[str, t.Any], count: int) -> float:
    """Requests per second of ``count`` raw WSGI calls of ``app`` with (a copy of) ``environ``."""
    call = app.wsgi_app
    start = time.perf_counter()
    for _ in range(count):
        body = call(environ.copy(), _start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return count / (time.perf_counter() - start)


def in_process(rounds: int, count: int) -> dict[tuple[str, str], list[float]]:
    apps = {}
    for name in APPS:
        app = _load(name).create_app()
        _check(name, app)
        apps[name] = app
    environs = {path: _environ(path) for path in PATHS}
    samples: dict[tuple[str, str], list[float]] = {(n, p): [] for n in APPS for p in PATHS}
    for app in apps.values():  # warm up
        for path in PATHS:
            wsgi_rate(app, environs[path], 200)
    for _ in range(rounds):
        for name, app in apps.items():
            for path in PATHS:
                samples[name, path].append(wsgi_rate(app, environs[path], count))
    return samples


# --- over HTTP ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_")) and k not in _AMBIENT
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def serve_all() -> Iterator[dict[str, int]]:
    """One gunicorn (one sync worker) per app on loopback; yields their ports."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    logs: dict[str, Path] = {}
    try:
        for name in APPS:
            ports[name], logs[name] = free_port(), ROOT / f"{_stem(name)}.log"
            with logs[name].open("wb") as out:
                procs[name] = subprocess.Popen(
                    [
                        gunicorn,
                        *("--no-control-socket", "-w", "1", "-k", "sync"),
                        *("-b", f"127.0.0.1:{ports[name]}", "--chdir", str(ROOT)),
                        *("--graceful-timeout", "2", f"serve_{_stem(name)}:app"),
                    ],
                    env=_env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        for name, proc in procs.items():
            wait_booted(proc, ports[name], logs[name], 1, 30, f"gunicorn for {name}")
        yield ports
    finally:
        for proc in procs.values():
            proc.terminate()  # all at once: they stop together
        for proc in procs.values():
            stop(proc)


def _wrk(port: int, path: str, seconds: float) -> float:
    header = ["-H", f"Origin: {ORIGIN}"] if path.startswith("/api/") else []
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    out = subprocess.run(
        ["wrk", "-t1", "-c2", f"-d{seconds}s", *header, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors on {path}:\n{out}")
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(match[1])


def _python_client(port: int, path: str, seconds: float) -> float:
    """Requests per second of one client thread (a new connection per request, as gunicorn's
    sync worker closes each) for ``seconds``."""
    import http.client

    done, deadline = 0, time.monotonic() + seconds
    start = time.perf_counter()
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers=_headers(path))
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}")
        done += 1
    return done / (time.perf_counter() - start)


def over_http(rounds: int, seconds: float) -> tuple[dict[tuple[str, str], list[float]], str]:
    client = "wrk -t1 -c2" if shutil.which("wrk") else "Python http.client, 1 thread"
    measure = _wrk if shutil.which("wrk") else _python_client
    samples: dict[tuple[str, str], list[float]] = {(n, p): [] for n in APPS for p in PATHS}
    with serve_all() as ports:
        for name in APPS:  # warm up every worker
            measure(ports[name], "/whoami", 1)
        for _ in range(rounds):
            for name in APPS:
                for path in PATHS:
                    samples[name, path].append(measure(ports[name], path, seconds))
    return samples, client


# --- report ------------------------------------------------------------------------------------


def _ratio(samples: dict[tuple[str, str], list[float]], name: str, path: str) -> float:
    pairs = zip(samples[name, path], samples[FLOOR, path], strict=True)
    return statistics.median(a / b for a, b in pairs)


def report(title: str, samples: dict[tuple[str, str], list[float]], where: str) -> list[str]:
    print(f"\n{title}: median req/s (x {FLOOR} on the same path)")
    print(f"{'app':<16}" + "".join(f"{p:>22}" for p in PATHS))
    for name in APPS:
        cells = []
        for path in PATHS:
            rps = statistics.median(samples[name, path])
            cells.append(f"{rps:>12.0f} ({_ratio(samples, name, path):5.2f}x)")
        print(f"{name:<16}" + "".join(f"{c:>22}" for c in cells))
    missed = []
    print(f"targets, flask_complete against {FLOOR} ({where}):")
    for path, target, applies in TARGETS:
        ratio = _ratio(samples, "flask_complete", path)
        floor = statistics.median(samples[FLOOR, path])
        own = statistics.median(samples["flask_complete", path])
        shown = applies in ("both", where)
        verdict = _verdict(ratio >= target) if shown else "(shown; target is over HTTP)"
        if shown and ratio < target:
            missed.append(f"{where} {path}")
        print(
            f"  {path:<11}{own:>9.0f} req/s vs floor {floor:>7.0f}: {ratio:5.2f}x  "
            f"target >= {target:.1f}x  {verdict}"
        )
    return missed


# --- create_app() of the example app -------------------------------------------------------------


def _example_config() -> dict[str, str]:
    return {"SECRET_KEY": KEY, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{ROOT / 'example.sqlite3'}"}


def first_call(runs: int = 3) -> tuple[float, float]:
    """Median import time of ``example_app`` and of its first ``create_app()``, in fresh
    interpreters (ms)."""
    code = (
        "import time, sys; t0 = time.perf_counter(); import example_app; "
        "t1 = time.perf_counter(); example_app.create_app(" + repr(_example_config()) + "); "
        "t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
    )
    env = _env()
    env["FLASK_ENV"] = "development"
    env["PYTHONPATH"] = str(REPO)
    imports, firsts = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        imports.append(float(out[-2]) * 1000)
        firsts.append(float(out[-1]) * 1000)
    return statistics.median(imports), statistics.median(firsts)


def repeated(batches: int = 7, count: int = 20) -> tuple[float, t.Any]:
    """Median ms of a repeated ``create_app()`` of the example app (batches of ``count``)."""
    os.environ["FLASK_ENV"] = "development"
    sys.path.insert(0, str(REPO))
    from example_app import create_app

    config = _example_config()
    app = create_app(config)
    assert "complete_auth" in app.blueprints, "the example app's auth piece is off"
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(count):
            create_app(config)
        times.append((time.perf_counter() - start) * 1000 / count)
    return statistics.median(times), lambda: create_app(config)


def routes_floor(batches: int = 7, count: int = 20) -> tuple[float, int]:
    """Median ms of building a bare Flask app with the example app's URL rules (the same rule
    strings, methods and converters): what Werkzeug's per-rule compilation costs by itself."""
    from flask import Flask
    from werkzeug.routing import Map

    from example_app import create_app

    app = create_app(_example_config())
    rules = [
        (rule.rule, rule.endpoint, sorted(rule.methods or ()))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    ]
    extra = {k: v for k, v in app.url_map.converters.items() if k not in Map.default_converters}

    def build() -> Flask:
        floor = Flask("bench_routes", root_path=str(ROOT))
        floor.url_map.converters.update(extra)
        for rule, endpoint, methods in rules:
            floor.add_url_rule(rule, endpoint, lambda **kw: "", methods=methods)
        return floor

    build()
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(count):
            build()
        times.append((time.perf_counter() - start) * 1000 / count)
    return statistics.median(times), len(rules)


def _where(filename: str) -> str:
    for marker in ("site-packages/", "lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    with contextlib.suppress(ValueError):
        return str(Path(filename).resolve().relative_to(REPO))
    return Path(filename).name if filename.startswith("/") else filename


def profile(call: t.Callable[[], t.Any], count: int = 50, top: int = 14) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in entries.values())
    rows = [
        (ct, tt, nc, f"{_where(file)}:{line}({func})")
        for (file, line, func), (_cc, nc, tt, ct, _callers) in entries.items()
    ]
    print(
        f"\nprofile of {count} repeated create_app() (cProfile; {total * 1000 / count:.1f} ms/call"
    )
    print("under the profiler). Cumulative, per call, the costliest calls below create_app:")
    print(f"  {'cum ms':>7}{'own ms':>8}{'calls':>7}  function")
    shown = 0
    for ct, tt, nc, where in sorted(rows, reverse=True):
        if where.startswith("benchmarks/") or "{method 'disable'" in where:
            continue
        print(f"  {ct * 1000 / count:>7.2f}{tt * 1000 / count:>8.2f}{nc // count:>7}  {where}")
        shown += 1
        if shown >= top:
            break

    def cumulative(pattern: str) -> float:
        found = [ct for ct, _tt, _nc, where in rows if re.fullmatch(pattern, where)]
        return sum(found) * 1000 / count

    print("  shares (cumulative ms per call, under the profiler):")
    for label, pattern in [
        ("Complete.init_app", r"flask_complete/extension\.py:\d+\(init_app\)"),
        ("  settings load", r"flask_complete/config\.py:\d+\(load\)"),
        ("  auth piece", r"flask_complete/auth/__init__\.py:\d+\(init_app\)"),
        (
            "register_blueprint (auth's and the app's)",
            r"flask/sansio/app\.py:\d+\(register_blueprint\)",
        ),
        ("Werkzeug Rule.compile (every route)", r"werkzeug/routing/rules\.py:\d+\(compile\)"),
        (
            "  URL builders compiled",
            r"werkzeug/routing/rules\.py:\d+\(_compile_builder\)",
        ),
    ]:
        print(f"  {cumulative(pattern):>7.2f}  {label}")
    print("  own time, the costliest functions:")
    for _ct, tt, nc, where in sorted(rows, key=lambda r: r[1], reverse=True)[:8]:
        print(f"  {'':>7}{tt * 1000 / count:>8.2f}{nc // count:>7}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="in-process rounds")
    parser.add_argument("--count", type=int, default=1000, help="requests per in-process cell")
    parser.add_argument("--http-rounds", type=int, default=5)
    parser.add_argument("--http-seconds", type=int, default=1, help="per wrk run")
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    for name in _AMBIENT:
        os.environ.pop(name, None)
    missed: list[str] = []
    try:
        write_apps()
        samples = in_process(args.rounds, args.count)
        missed += report(f"in-process, raw WSGI calls, {args.rounds} rounds", samples, "in-process")
        if not args.no_http:
            http, client = over_http(args.http_rounds, args.http_seconds)
            title = (
                f"over HTTP, gunicorn 1 sync worker, {client}, "
                f"{args.http_rounds} rounds x {args.http_seconds:g} s"
            )
            missed += report(title, http, "http")

        print("\nexample app create_app() (auth on: a user model)")
        imported, first = first_call()
        print(f"  import example_app (fresh interpreter)   {imported:8.1f} ms")
        print(f"  first create_app()                       {first:8.1f} ms")
        again, call = repeated()
        print(
            f"  repeated create_app()                    {again:8.2f} ms  target <= 2 ms  "
            f"{_verdict(again <= 2)}"
        )
        if again > 2:
            missed.append("repeated create_app()")
        floor, rules = routes_floor()
        print(
            f"  bare Flask with the same {rules} URL rules      {floor:8.2f} ms  "
            f"(create_app() {again / floor:.2f}x of it)"
        )
        print(
            "  (Werkzeug compiles two URL builders per rule as it is added; after Complete the\n"
            "  app's rules compile each on its first url_for: flask_complete.routing)"
        )
        profile(call)
        print("\nnot met: " + (", ".join(missed) if missed else "none"))
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()

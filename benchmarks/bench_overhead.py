"""Start-up and request-path cost of ``Complete(app)`` against the same stack wired by hand,
and the cost of an authenticated request.

Run: ``python benchmarks/bench_overhead.py [--auth-only] [--postgres URL]``. Prints, for bare
Flask, the hand-wired stack (as the libraries' docs wire it: FlaskDynaconf, Flask-SQLAlchemy,
Flask-Migrate, flask-cors, Flask-Login) and flask_complete: import time (fresh interpreters),
``create_app()`` time, and anonymous requests per second through the WSGI test client, with
ratios to bare Flask measured in the same run.

Then, on an app with the bundle's login (SQLite file; PostgreSQL with ``--postgres``, a server
URL whose ``test_bench_*`` database is created and dropped; Redis when one answers at
``REDIS_URL``, default ``redis://127.0.0.1:6379/0``, keys under a unique prefix, deleted after):
requests per second of an anonymous route, of a logged-in route with the session in the cookie
only (``AUTH_SESSIONS = false``: what a login was before server-side sessions) and with the
login's server-side record (the default). Target: the record costs at most 10 %, i.e. the
authenticated ratio after/before is >= 0.90.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
import uuid
from pathlib import Path

ROOT = Path(tempfile.mkdtemp(prefix="fc-bench-"))

APPS = {
    "bare": """
        from flask import Flask

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            app.add_url_rule("/", "hello", lambda: "hello")
            return app
    """,
    "hand-wired": """
        from dynaconf import FlaskDynaconf
        from flask import Flask
        from flask_cors import CORS
        from flask_login import LoginManager
        from flask_migrate import Migrate
        from flask_sqlalchemy import SQLAlchemy
        from sqlalchemy.orm import DeclarativeBase

        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            FlaskDynaconf(app, settings_files=[], environments=True)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///bench.sqlite3"
            app.config["SECRET_KEY"] = "x" * 40
            db.init_app(app)
            Migrate(app, db)
            CORS(app, origins=["http://localhost:3000"], supports_credentials=True)
            login = LoginManager(app)
            login.user_loader(lambda user_id: None)
            app.add_url_rule("/", "hello", lambda: "hello")
            return app
    """,
    "flask_complete": """
        from flask import Flask
        from flask_complete import Complete

        def create_app():
            app = Flask("bench", root_path=ROOT, instance_path=ROOT + "/instance")
            app.config["SECRET_KEY"] = "x" * 40
            Complete(app, env="development", root=ROOT)
            app.add_url_rule("/", "hello", lambda: "hello")
            return app
    """,
}


def _module(name: str) -> Path:
    path = ROOT / f"bench_{name.replace('-', '_')}.py"
    path.write_text(f"ROOT = {str(ROOT)!r}\n" + textwrap.dedent(APPS[name]))
    return path


def import_ms(name: str, runs: int = 5) -> float:
    """Median wall time of a fresh interpreter importing the app module and building one app."""
    path = _module(name)
    code = (
        "import sys, time; t0 = time.perf_counter(); "
        f"sys.path.insert(0, {str(ROOT)!r}); import {path.stem} as m; m.create_app(); "
        "print(time.perf_counter() - t0)"
    )
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        samples.append(float(out) * 1000)
    return statistics.median(samples)


def _load(name: str) -> t.Any:
    sys.path.insert(0, str(ROOT))
    return __import__(_module(name).stem)


def create_ms(name: str, count: int = 200) -> float:
    module = _load(name)
    module.create_app()
    start = time.perf_counter()
    for _ in range(count):
        module.create_app()
    return (time.perf_counter() - start) * 1000 / count


def requests_per_s(name: str, count: int = 3000) -> float:
    app = _load(name).create_app()
    client = app.test_client()
    for _ in range(100):
        client.get("/")
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            client.get("/")
        best = max(best, count / (time.perf_counter() - start))
    return best


AUTH_APP = """
    from flask import Flask
    from flask_login import current_user
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import DeclarativeBase

    from flask_complete import Complete
    from flask_complete.auth import UserMixin, login_required

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class User(UserMixin, db.Model):
        pass

    def create_app(url, **config):
        app = Flask("benchauth", root_path=ROOT, instance_path=ROOT + "/instance")
        app.config.update(SECRET_KEY=KEY, SQLALCHEMY_DATABASE_URI=url, **config)
        app.config.setdefault("AUTH_PASSWORD_METHOD", "scrypt:1024:8:1")
        Complete(app, db=db, user_model=User, env="development", root=ROOT)
        app.add_url_rule("/", "hello", lambda: "hello")
        app.add_url_rule("/me", "me", login_required(lambda: str(current_user.id)))
        with app.app_context():
            db.drop_all()
            db.create_all()
            user = User(email="bench@example.test")
            user.set_password("a benchmark password")
            db.session.add(user)
            db.session.commit()
        return app
"""


def _auth_module() -> t.Any:
    path = ROOT / "bench_auth_app.py"
    key = secrets.token_urlsafe(48)
    path.write_text(f"ROOT = {str(ROOT)!r}\nKEY = {key!r}\n" + textwrap.dedent(AUTH_APP))
    sys.path.insert(0, str(ROOT))
    return __import__(path.stem)


def _timed(client: t.Any, path: str, count: int) -> tuple[float, float]:
    """Requests per second by the wall clock and by this process's CPU time (steadier on a
    busy machine; it leaves out the database server's own time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        client.get(path)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


class AuthRun:
    """One app built with ``config``: an anonymous client and a logged-in one."""

    def __init__(self, module: t.Any, url: str, **config: t.Any) -> None:
        self.module = module
        self.app = module.create_app(url, **config)
        self.anonymous = self.app.test_client()
        self.client = self.app.test_client()
        login = self.client.post(
            "/auth/login", json={"email": "bench@example.test", "password": "a benchmark password"}
        )
        assert login.status_code == 200, login.data
        for _ in range(100):
            assert self.client.get("/me").status_code == 200
            assert self.anonymous.get("/").status_code == 200
        self.best = {"anonymous": (0.0, 0.0), "me": (0.0, 0.0)}

    def round(self, count: int) -> None:
        for key, client, path in (("anonymous", self.anonymous, "/"), ("me", self.client, "/me")):
            wall, cpu = _timed(client, path, count)
            self.best[key] = (max(self.best[key][0], wall), max(self.best[key][1], cpu))
        assert self.client.get("/me").status_code == 200, "the benchmark's login ended"

    def close(self) -> None:
        with self.app.app_context():
            self.module.db.engine.dispose()


def auth_requests_per_s(
    urls: list[str], variants: dict[str, dict[str, t.Any]], rounds: int = 9, count: int = 1000
) -> dict[str, dict[str, tuple[float, float]]]:
    """Best requests per second of each variant, each on its own database of ``urls``, measured
    in alternating rounds (so that a busy moment of the machine hits every variant alike)."""
    module = _auth_module()
    runs = {
        name: AuthRun(module, url, **config)
        for url, (name, config) in zip(urls, variants.items(), strict=False)
    }
    try:
        for _ in range(rounds):
            for run in runs.values():
                run.round(count)
        return {name: run.best for name, run in runs.items()}
    finally:
        for run in runs.values():
            run.close()


def _redis_prefix() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception:
        return None
    return f"fc-bench-{uuid.uuid4().hex[:10]}:"


def _drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def auth_table(postgres: str | None) -> None:
    """The authenticated-request cost, before (cookie only) and after (server-side record)."""
    prefix = _redis_prefix()
    variants: dict[str, dict[str, t.Any]] = {
        "cookie only": {"AUTH_SESSIONS": False},
        "db record": {"AUTH_SESSION_STORAGE": "database"},
    }
    if prefix is not None:
        variants["redis record"] = {
            "AUTH_SESSION_STORAGE": REDIS_URL,
            "AUTH_SESSION_PREFIX": prefix,
        }
    databases = [("sqlite", [f"sqlite:///{ROOT / f'auth-{i}.sqlite3'}" for i in range(3)])]
    created: list[str] = []
    admin = None
    if postgres:
        import sqlalchemy as sa

        from flask_complete.database.urls import normalize_url

        server = sa.make_url(normalize_url(postgres))
        admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for _ in variants:
                created.append(f"test_bench_{uuid.uuid4().hex[:8]}")
                conn.execute(sa.text(f'CREATE DATABASE "{created[-1]}"'))
        urls = [server.set(database=name).render_as_string(False) for name in created]
        databases.append(("postgres", urls))
    print()
    print("req/s by the wall clock (and by CPU time); x before = logged-in after / before")
    print(f"{'login on':<22}{'anonymous':>16}{'logged in':>16}{'x before':>14}")
    try:
        for label, urls in databases:
            figures = auth_requests_per_s(urls, variants)
            before = figures["cookie only"]["me"]
            for name, best in figures.items():
                ratio = ""
                if name != "cookie only":
                    ratio = f"{best['me'][0] / before[0]:.2f} ({best['me'][1] / before[1]:.2f})"
                anonymous = f"{best['anonymous'][0]:.0f} ({best['anonymous'][1]:.0f})"
                me = f"{best['me'][0]:.0f} ({best['me'][1]:.0f})"
                print(f"{label + ', ' + name:<22}{anonymous:>16}{me:>16}{ratio:>14}")
    finally:
        if prefix is not None:
            _drop_redis_keys(prefix)
        if admin is not None:
            import sqlalchemy as sa

            with admin.connect() as conn:
                for name in created:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth-only", action="store_true", help="only the authenticated table")
    parser.add_argument("--postgres", metavar="URL", help="also on this PostgreSQL server")
    args = parser.parse_args()
    if not args.auth_only:
        print(f"{'stack':<16}{'import+app ms':>15}{'create_app ms':>15}{'req/s':>10}{'x bare':>8}")
        base_rps = None
        for name in APPS:
            imp = import_ms(name)
            create = create_ms(name)
            rps = requests_per_s(name)
            base_rps = base_rps or rps
            print(f"{name:<16}{imp:>15.1f}{create:>15.2f}{rps:>10.0f}{rps / base_rps:>8.2f}")
    auth_table(args.postgres)


if __name__ == "__main__":
    main()

"""Start-up and request-path cost of ``Complete(app)`` against the same stack wired by hand.

Run: ``python benchmarks/bench_overhead.py``. Prints, for bare Flask, the hand-wired stack (as
the libraries' docs wire it: FlaskDynaconf, Flask-SQLAlchemy, Flask-Migrate, flask-cors,
Flask-Login) and flask_complete: import time (fresh interpreters), ``create_app()`` time, and
anonymous requests per second through the WSGI test client, with ratios to bare Flask measured in
the same run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
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


def main() -> None:
    print(f"{'stack':<16}{'import+app ms':>15}{'create_app ms':>15}{'req/s':>10}{'x bare':>8}")
    base_rps = None
    for name in APPS:
        imp = import_ms(name)
        create = create_ms(name)
        rps = requests_per_s(name)
        base_rps = base_rps or rps
        print(f"{name:<16}{imp:>15.1f}{create:>15.2f}{rps:>10.0f}{rps / base_rps:>8.2f}")


if __name__ == "__main__":
    main()

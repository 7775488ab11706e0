"""Per-test cost of the pytest plugin's isolation against what users write today.

Generates suites of 200 and 1,000 tests on the example app's models (each test makes a notebook
and 3 notes with the factories, commits and queries them) and runs each as a whole pytest
process, on SQLite and PostgreSQL. Per-test cost = (wall(1000) - wall(200)) / 800, so start-up
is excluded. Variants:

* ``plugin``: flask_complete's ``db`` fixture (outer transaction + SAVEPOINTs);
* ``none``: no isolation at all (one app, ``create_all`` once): the floor;
* ``rollback``: a hand-written outer-transaction/SAVEPOINT conftest (the recipe that works on
  Flask-SQLAlchemy 3);
* ``create_drop``: ``create_all``/``drop_all`` around every test;
* ``template``: a new app plus ``create_all``/``drop_all`` per test, as project templates ship it.

Run: ``python benchmarks/bench_isolation.py [--sizes 200 1000] [--no-postgres] [--repeat 1]``.
PostgreSQL: ``TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
QUIET = [
    "-p",
    "no:randomly",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:faker",
    "-p",
    "no:cacheprovider",
]

TESTS = """
import pytest
from sqlalchemy import func, select

from example_app.factories import NoteFactory, NotebookFactory
from example_app.models import Note


@pytest.mark.parametrize("n", range({size}))
def test_notes(db, n):
    notebook = NotebookFactory(name=f"notebook {{n}}")
    NoteFactory.create_batch(3, notebook=notebook)
    db.session.commit()
    query = select(func.count()).select_from(Note).where(Note.notebook_id == notebook.id)
    assert db.session.scalar(query) == 3
"""

APP = """
import pytest
from sqlalchemy import event

from example_app import create_app
from flask_complete import db as _db


def sqlite_savepoints(app):
    # The pysqlite SAVEPOINT workaround a hand-written recipe needs.
    with app.app_context():
        engine = _db.engine
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")


@pytest.fixture(scope="session")
def app():
    app = create_app({"TESTING": True, "SECRET_KEY": "x" * 32})
    sqlite_savepoints(app)
    with app.app_context():
        _db.drop_all()
        _db.create_all()
    yield app
    with app.app_context():
        _db.drop_all()
        _db.engine.dispose()
"""

CONFTESTS = {
    "plugin": "",
    "none": APP
    + """
@pytest.fixture
def db(app):
    with app.app_context():
        yield _db
        _db.session.remove()
""",
    "rollback": APP
    + """
@pytest.fixture
def db(app):
    with app.app_context():
        engines = _db.engines
        saved = dict(engines)
        opened = []
        for key, engine in saved.items():
            conn = engine.connect()
            opened.append((conn, conn.begin()))
            engines[key] = conn
        session = _db.session
        _db.session = _db._make_scoped_session({"join_transaction_mode": "create_savepoint"})
        try:
            yield _db
        finally:
            _db.session.remove()
            _db.session = session
            engines.update(saved)
            for conn, outer in opened:
                outer.rollback()
                conn.close()
""",
    "create_drop": APP
    + """
@pytest.fixture
def db(app):
    with app.app_context():
        _db.create_all()
        yield _db
        _db.session.remove()
        _db.drop_all()
""",
    "template": """
import pytest

from example_app import create_app
from flask_complete import db as _db


@pytest.fixture
def db():
    app = create_app({"TESTING": True, "SECRET_KEY": "x" * 32})
    with app.app_context():
        _db.create_all()
        yield _db
        _db.session.remove()
        _db.drop_all()
        _db.engine.dispose()
""",
}


def run_suite(workdir: Path, variant: str, size: int, base_url: str, extra: list[str]) -> float:
    """Wall seconds of one whole pytest process running ``size`` tests of ``variant``."""
    suite = workdir / f"{variant}_{size}"
    suite.mkdir(exist_ok=True)
    (suite / "conftest.py").write_text(textwrap.dedent(CONFTESTS[variant]))
    (suite / "test_generated.py").write_text(TESTS.format(size=size))
    ini = "[pytest]\n" + ("flask_app = example_app\n" if variant == "plugin" else "")
    (suite / "pytest.ini").write_text(ini)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=base_url)
    args = [sys.executable, "-m", "pytest", "-q", *QUIET, *extra]
    if variant != "plugin":
        env["FLASK_ENV"] = "testing"  # without the plugin, nothing pins the run to testing
        args += ["-p", "no:flask_complete"]
        ensure_test_database(base_url)  # the plugin creates its own; hand-written ones do not
    start = time.perf_counter()
    result = subprocess.run(args, cwd=suite, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0 or f"{size} passed" not in result.stdout:
        raise SystemExit(
            f"{variant} ({size} tests) failed:\n{result.stdout[-3000:]}{result.stderr}"
        )
    return wall


def xdist_cost(workdir: Path, size: int, repeat: int) -> tuple[float, float]:
    """Wall seconds of ``size`` empty tests with ``-n 0`` and ``-n 2``: pytest-xdist's own cost."""
    suite = workdir / f"empty_{size}"
    suite.mkdir(exist_ok=True)
    (suite / "test_empty.py").write_text(
        f"import pytest\n\n\n@pytest.mark.parametrize('n', range({size}))\n"
        "def test_empty(n):\n    pass\n"
    )
    (suite / "pytest.ini").write_text("[pytest]\n")
    walls = []
    for extra in ([], ["-n", "2"]):
        args = [sys.executable, "-m", "pytest", "-q", *QUIET, "-p", "no:flask_complete", *extra]
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(args, cwd=suite, capture_output=True, check=True)
            best = min(best, time.perf_counter() - start)
        walls.append(best)
    return walls[0], walls[1]


def admin(url: str, statement: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


def ensure_test_database(base_url: str) -> None:
    url = sa.make_url(base_url)
    if url.get_backend_name() != "postgresql":
        return
    engine = sa.create_engine(url.set(database="postgres"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %(n)s"
        exists = conn.exec_driver_sql(query, {"n": f"test_{url.database}"}).first()
    engine.dispose()
    if not exists:
        admin(str(url.set(database="postgres")), f'CREATE DATABASE "test_{url.database}"')


def session_start(base_url: str) -> float:
    """Seconds to create the example app's test database and migrate it to head."""
    code = textwrap.dedent(
        """
        import time
        from flask_complete import testing
        from flask_complete.settings import config
        from flask_complete.testing import databases as testdb
        config.force_env("testing")
        app = testing.load_app("example_app", None)
        database = testdb.TestDatabase(app)
        start = time.perf_counter()
        database.setup()
        print(time.perf_counter() - start)
        database.teardown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=base_url)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"session start failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


def check(label: str, ok: bool) -> str:
    return f"  {'PASS' if ok else 'MISS'}  {label}"


def bench(name: str, base_url: str, sizes: tuple[int, int], repeat: int, workdir: Path) -> None:
    small, large = sizes
    per_test: dict[str, float] = {}
    print(f"\n== {name}: {small} and {large} tests per suite, best of {repeat} ==")
    print(f"  {'variant':<12} {'wall ' + str(small):>9} {'wall ' + str(large):>10} {'ms/test':>8}")
    for variant in CONFTESTS:
        walls = {}
        for size in sizes:
            walls[size] = min(
                run_suite(workdir, variant, size, base_url, []) for _ in range(repeat)
            )
        per_test[variant] = (walls[large] - walls[small]) / (large - small) * 1000
        print(
            f"  {variant:<12} {walls[small]:>8.2f}s {walls[large]:>9.2f}s {per_test[variant]:>8.2f}"
        )
    serial = min(run_suite(workdir, "plugin", large, base_url, []) for _ in range(repeat))
    parallel = min(
        run_suite(workdir, "plugin", large, base_url, ["-n", "2"]) for _ in range(repeat)
    )
    empty_serial, empty_parallel = xdist_cost(workdir, large, repeat)
    start = session_start(base_url)
    floor = per_test["none"]
    print("  isolation overhead (ms/test minus none's):")
    for variant in ("plugin", "rollback", "create_drop", "template"):
        print(f"    {variant:<12} {per_test[variant] - floor:>7.2f}")
    ours = per_test["plugin"]
    print(f"  plugin / rollback = {ours / per_test['rollback']:.2f} (target <= 1.1)")
    print(f"  template / plugin = {per_test['template'] / ours:.1f}x (target >= 3)")
    print(f"  create_drop / plugin = {per_test['create_drop'] / ours:.1f}x")
    print(f"  {large} tests: -n 0 {serial:.2f}s, -n 2 {parallel:.2f}s")
    print(
        f"  {large} empty tests (pytest-xdist's own cost): -n 0 {empty_serial:.2f}s, "
        f"-n 2 {empty_parallel:.2f}s"
    )
    print(f"  session start (create test database + migrate to head): {start:.2f}s")
    print(check("per-test cost <= 1.1x rollback", ours <= 1.1 * per_test["rollback"]))
    print(check("isolation overhead <= 2 ms", ours - floor <= 2.0))
    print(check(">= 3x cheaper than the template", per_test["template"] >= 3 * ours))
    print(check("-n 2 faster than -n 0", parallel < serial))
    print(check("session start < 2 s", start < 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(200, 1000))
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (best kept)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bench("SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}", args.sizes, args.repeat, workdir)
        if args.no_postgres:
            return
        name = f"bench_{uuid.uuid4().hex[:10]}"
        try:
            bench("PostgreSQL", f"{POSTGRES}/{name}", args.sizes, args.repeat, workdir)
        finally:
            for db in (f"test_{name}", f"test_{name}_gw0", f"test_{name}_gw1"):
                admin(f"{POSTGRES}/postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()

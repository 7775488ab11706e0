"""flask_complete's pytest plugin against pytest-django, on the same app and the same tests.

Run: ``python benchmarks/bench_vs_django.py [--rounds 5] [--quick] [--no-postgres] [--no-sqlite]
[--venvs DIR]``.

Builds two venvs: ``ours`` (this checkout with its ``pytest`` and ``postgres`` extras, and
pytest-xdist, pinned by ``constraints.txt``) and ``django`` (Django, pytest-django, factory-boy,
psycopg: the ``bench-vs-django`` dependency group, with the pytest and pytest-xdist versions of
``ours``). They are cached in a temporary folder named by a hash of what pins them (``--venvs
DIR`` keeps them there instead); this checkout is reinstalled into ``ours`` on every run.

The same blog (``vs_django/``: users, posts, comments, factory-boy factories, one JSON view) is
copied for each suite with its migrations (``flask db migrate``, ``makemigrations``) and N
generated tests: each makes a user, a post and three comments, commits (ours), counts the
comments back through a join, and every 10th GETs the user's posts through the test client.

Whole pytest processes, bytecode warmed first, in interleaved rounds (medians), on PostgreSQL
(``TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432``: every database
is named after the run and dropped at the end) and on a SQLite file: per test
``(wall(1000) - wall(200)) / 800`` with ``-n 0``; one test cold; one test with ``--reuse-db``
(and whether the database was really reused, with and without pytest's cache plugin); 1,000 tests
with ``-n 2`` and its speed-up over ``-n 0``; SQL statements per test (``BENCH_SQL_LOG``, read by
each side's ``conftest.py``); where the time goes on both sides, by package (cProfile of the
1,000-test and the one-test runs; ``BENCH_VS_DJANGO_PROFILE=0`` skips it). Targets: per test
<= 0.8x Django's, cold start <= 0.8x Django's, ``-n 2`` >= 1.7x faster than ``-n 0``. Exit status
1 when one is not met.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pstats
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = Path(__file__).resolve().parent / "vs_django"
CONSTRAINTS = ROOT / "constraints.txt"
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
GROUP = "bench-vs-django"
#: The group's packages, for a pip without ``--group`` or a pyproject.toml without the group.
GROUP_PACKAGES = [
    "django>=5.2,<6",
    "pytest-django",
    "factory-boy",
    "psycopg[binary]",
    "pytest-xdist",
]
NO_CACHE = ["-p", "no:cacheprovider"]
SIDES = ("django", "ours")
TARGET_PER_TEST = 0.8
TARGET_COLD = 0.8
TARGET_SPEEDUP = 1.7

TEST_HEAD = {
    "ours": """
import pytest
from sqlalchemy import func, select

from blog.factories import CommentFactory, PostFactory, UserFactory
from blog.models import Comment, Post


def make_post(db):
    user = UserFactory()
    post = PostFactory(author=user)
    CommentFactory.create_batch(3, post=post, author=user)
    db.session.commit()
    joined = select(func.count()).select_from(Comment).join(Post).where(Post.author_id == user.id)
    assert db.session.scalar(joined) == 3
    return user
""",
    "django": """
import pytest

from blog.factories import CommentFactory, PostFactory, UserFactory
from blog.models import Comment


def make_post(db):
    user = UserFactory()
    post = PostFactory(author=user)
    CommentFactory.create_batch(3, post=post, author=user)
    assert Comment.objects.filter(post__author=user).count() == 3
    return user
""",
}
TEST_PLAIN = """

@pytest.mark.parametrize("n", {numbers})
def test_post(db, n):
    make_post(db)
"""
TEST_VIEW = """

@pytest.mark.parametrize("n", {numbers})
def test_post_view(db, client, n):
    user = make_post(db)
    response = client.get(f"/users/{{user.id}}/posts")
    assert response.status_code == 200
    assert len(response.{json}["posts"]) == 1
"""


# -- venvs ----------------------------------------------------------------------------------------


def _group_in_pyproject() -> list[str] | None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = data.get("dependency-groups", {}).get(GROUP)
    return list(found) if found is not None else None


def _venv_key() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    pins = {
        "python": sys.version,
        "constraints": CONSTRAINTS.read_text(),
        "dependencies": project["dependencies"],
        "extras": [project["optional-dependencies"].get(k) for k in ("pytest", "postgres")],
        "group": _group_in_pyproject() or GROUP_PACKAGES,
    }
    return hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()[:12]


def _run(args: list[str], what: str, **kwargs: object) -> str:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return str(done.stdout)


def _pip(venv: Path, *args: str) -> str:
    return _run([str(venv / "bin" / "python"), "-m", "pip", *args], f"pip {' '.join(args)}")


def _freeze(venv: Path) -> dict[str, str]:
    """Installed distributions and their versions (what ``pip freeze`` pins)."""
    listed = json.loads(_pip(venv, "list", "--format=json"))
    return {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in listed}


def _new_venv(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating venv {venv} ...", flush=True)
    _run([sys.executable, "-m", "venv", "--upgrade-deps", str(venv)], "python -m venv")


def make_venvs(base: Path) -> dict[str, Path]:
    """The two venvs under ``base/<hash of the pins>``, built when missing."""
    folder = base / _venv_key()
    venvs = {side: folder / side for side in SIDES}
    ours, django = venvs["ours"], venvs["django"]
    if not (ours / ".ready").exists():
        _new_venv(ours)
        _pip(
            ours,
            "install",
            "-q",
            "-c",
            str(CONSTRAINTS),
            f"{ROOT}[pytest,postgres]",
            "pytest-xdist",
        )
        (ours / ".ready").touch()
    else:  # this checkout's code, built as any install is (byte-compiled)
        _pip(ours, "install", "-q", "--no-deps", "--force-reinstall", str(ROOT))
    if not (django / ".ready").exists():
        _new_venv(django)
        frozen = _freeze(ours)
        same = [f"pytest=={frozen['pytest']}", f"pytest-xdist=={frozen['pytest-xdist']}"]
        group = _group_in_pyproject()
        supports_group = "--group" in _pip(django, "install", "--help")
        if group is not None and supports_group:
            wanted = ["--group", f"{ROOT / 'pyproject.toml'}:{GROUP}"]
        else:
            wanted = list(group or GROUP_PACKAGES)
        _pip(django, "install", "-q", "-c", str(CONSTRAINTS), *wanted, *same)
        (django / ".ready").touch()
    return venvs


def versions(venvs: dict[str, Path]) -> str:
    ours, django = _freeze(venvs["ours"]), _freeze(venvs["django"])
    names = ("pytest", "pytest-xdist", "factory-boy", "psycopg")
    common = ", ".join(f"{n} {ours.get(n, '?')}/{django.get(n, '?')}" for n in names)
    return (
        f"ours: flask-complete {ours.get('flask-complete', '?')}, Flask {ours.get('flask')}, "
        f"Flask-SQLAlchemy {ours.get('flask-sqlalchemy')}, SQLAlchemy {ours.get('sqlalchemy')}, "
        f"Alembic {ours.get('alembic')}\n"
        f"django: Django {django.get('django')}, pytest-django {django.get('pytest-django')}\n"
        f"both (ours/django): {common}"
    )


# -- projects and suites --------------------------------------------------------------------------


def side_env(side: str, venvs: dict[str, Path], url: str) -> dict[str, str]:
    """A clean environment for one side's processes, its database URL set."""
    dropped = ("FLASK_", "PYTHON", "PYTEST_", "DJANGO_", "BENCH_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PATH"] = f"{venvs[side] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if side == "ours":
        env.update(DATABASE_URL=url, FLASK_SKIP_DOTENV="1")
    else:
        env["BENCH_DATABASE_URL"] = url
    return env


def make_bases(work: Path, venvs: dict[str, Path]) -> dict[str, Path]:
    """One copy of each template with its migrations generated (on a scratch SQLite file)."""
    bases = {}
    for side in SIDES:
        base = work / f"base_{side}"
        shutil.copytree(TEMPLATES / side, base, ignore=shutil.ignore_patterns("__pycache__"))
        scratch = work / f"scratch_{side}.sqlite3"
        env = side_env(side, venvs, f"sqlite:///{scratch}")
        bin_ = venvs[side] / "bin"
        if side == "ours":
            env.update(FLASK_APP="blog", FLASK_ENV="development")
            _run([str(bin_ / "flask"), "db", "init"], "flask db init", cwd=base, env=env)
            _run(
                [str(bin_ / "flask"), "db", "migrate", "-m", "blog"],
                "flask db migrate",
                cwd=base,
                env=env,
            )
            if not list((base / "migrations" / "versions").glob("*.py")):
                raise SystemExit("flask db migrate wrote no migration: see the blog's models.")
        else:
            _run(
                [str(bin_ / "python"), "manage.py", "makemigrations", "blog"],
                "manage.py makemigrations",
                cwd=base,
                env=env,
            )
        scratch.unlink(missing_ok=True)
        bases[side] = base
    return bases


def test_source(side: str, size: int) -> str:
    numbers = range(1, size + 1)
    plain = [n for n in numbers if n % 10]
    view = [n for n in numbers if n % 10 == 0]
    source = TEST_HEAD[side]
    if plain:
        source += TEST_PLAIN.format(numbers=plain)
    if view:
        source += TEST_VIEW.format(numbers=view, json="get_json()" if side == "ours" else "json()")
    return source


@dataclass
class Suite:
    side: str
    folder: Path
    size: int
    url: str
    env: dict[str, str]
    python: Path

    def run(self, extra: list[str], env: dict[str, str] | None = None) -> float:
        """Wall seconds of one whole pytest process (which must pass every test)."""
        args = [str(self.python), "-m", "pytest", "-q", *extra]
        start = time.perf_counter()
        done = subprocess.run(
            args, cwd=self.folder, env=env or self.env, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if done.returncode or f"{self.size} passed" not in done.stdout:
            raise SystemExit(
                f"{self.side} suite {self.folder.name} ({' '.join(extra)}) failed:\n"
                f"{done.stdout[:3000]}\n...\n{done.stdout[-1500:]}{done.stderr[-2000:]}"
            )
        return wall

    def test_database(self) -> str:
        """The URL of this suite's test database (test_<name>, or test_<file> beside it)."""
        url = sa.make_url(self.url)
        path = Path(url.database or "")
        return str(url.set(database=str(path.with_name(f"test_{path.name}"))))


def admin(statement: str) -> None:
    engine = sa.create_engine(
        f"{POSTGRES}/postgres", poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


def postgres_databases(tag: str) -> list[str]:
    engine = sa.create_engine(f"{POSTGRES}/postgres", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT datname FROM pg_database WHERE datname LIKE %(p)s", {"p": f"%{tag}%"}
        )
        found = [r[0] for r in rows]
    engine.dispose()
    return found


def make_suites(
    work: Path,
    bases: dict[str, Path],
    venvs: dict[str, Path],
    backend: str,
    tag: str,
    sizes: tuple[int, int],
) -> dict[tuple[str, str], Suite]:
    """(side, name) -> suite: ``small``, ``large``, ``one`` and ``reuse`` (one test, its own
    database); each a copy of the side's project with its own development database (created
    empty, as a project has one)."""
    small, large = sizes
    suites = {}
    for side in SIDES:
        for name, size in (("small", small), ("large", large), ("one", 1), ("reuse", 1)):
            folder = work / backend / f"{side}_{name}"
            shutil.copytree(bases[side], folder)
            (folder / "test_blog.py").write_text(test_source(side, size))
            if backend == "sqlite":
                dev = folder / "blog.sqlite3"
                dev.touch()
                url = f"sqlite:///{dev}"
            else:
                group = "reuse" if name == "reuse" else "main"
                database = f"bvd_{tag}_{side}_{group}"
                if not postgres_databases(database):
                    admin(f'CREATE DATABASE "{database}"')
                url = f"{POSTGRES}/{database}"
            python = venvs[side] / "bin" / "python"
            env = side_env(side, venvs, url)
            suites[side, name] = Suite(side, folder, size, url, env, python)
            # Bytecode: the project's modules, then the rewritten test module and conftest.
            _run([str(python), "-m", "compileall", "-q", str(folder)], "compileall")
            _run(
                [str(python), "-m", "pytest", "-q", "--collect-only", *NO_CACHE],
                f"{side} {name}: collecting",
                cwd=folder,
                env=env,
            )
    return suites


# -- reuse ----------------------------------------------------------------------------------------


def _marker(url: str, action: str) -> bool:
    """Create (``put``) or look for (``has``) a table the schema does not have: a database kept
    by ``--reuse-db`` still holds it, a rebuilt one does not."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "")
        try:
            if action == "put":
                conn.execute("CREATE TABLE IF NOT EXISTS bench_reuse_marker (id INTEGER)")
                conn.commit()
                return True
            query = "SELECT 1 FROM sqlite_master WHERE name = 'bench_reuse_marker'"
            return conn.execute(query).fetchone() is not None
        finally:
            conn.close()
    engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        if action == "put":
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_reuse_marker (id int)")
            found = True
        else:
            found = sa.inspect(connection).has_table("bench_reuse_marker")
    engine.dispose()
    return found


def reuse_checks(suites: dict[tuple[str, str], Suite]) -> dict[str, tuple[bool, bool, float]]:
    """Per side: reused with pytest's cache plugin, reused with ``-p no:cacheprovider``, and
    the wall seconds of that second run."""
    found = {}
    for side in SIDES:
        suite = suites[side, "reuse"]
        _marker(suite.test_database(), "put")
        suite.run(["--reuse-db"])
        with_cache = _marker(suite.test_database(), "has")
        _marker(suite.test_database(), "put")
        wall = suite.run(["--reuse-db", *NO_CACHE])
        without_cache = _marker(suite.test_database(), "has")
        found[side] = (with_cache, without_cache, wall)
    return found


# -- SQL statements and the profile ---------------------------------------------------------------


@dataclass
class Statements:
    plain: float = 0.0
    view: float = 0.0
    mean: float = 0.0
    round_trips: float = 0.0
    listing: list[list[str]] = field(default_factory=list)
    listed: str = ""


def count_statements(suite: Suite, work: Path) -> Statements:
    """Statements per test, from the side's conftest (``BENCH_SQL_LOG``): the median of the
    tests without and with the request, the mean, and the listing of one test with it. The
    first and last tests are left out: they carry the session's set-up and teardown."""
    log = work / f"sql_{suite.side}_{suite.folder.parent.name}.json"
    suite.run(NO_CACHE, env={**suite.env, "BENCH_SQL_LOG": str(log)})
    tests: dict[str, list[list[str]]] = json.loads(log.read_text())
    middle = list(tests.items())[1:-1]

    def sql(entries: list[list[str]]) -> int:
        return sum(1 for kind, _ in entries if kind == "sql")

    plain = [sql(e) for name, e in middle if "test_post[" in name]
    view = [(name, e) for name, e in middle if "test_post_view[" in name]
    found = Statements(
        plain=statistics.median(plain),
        view=statistics.median(sql(e) for _, e in view) if view else 0.0,
        mean=statistics.fmean(sql(e) for _, e in middle),
        round_trips=statistics.fmean(len(e) for _, e in middle),
    )
    if view:
        found.listed, found.listing = view[len(view) // 2]
    return found


def _where(path: str) -> str:
    for marker in ("site-packages/", "/base_ours/", "/ours_large/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _cprofile(suite: Suite, work: Path, name: str) -> dict[t.Any, t.Any]:
    out = work / f"{suite.side}_{name}.prof"
    args = [str(suite.python), "-m", "cProfile", "-o", str(out), "-m", "pytest", "-q", *NO_CACHE]
    done = subprocess.run(args, cwd=suite.folder, env=suite.env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the profiled run failed:\n{done.stdout[-3000:]}{done.stderr}")
    return t.cast(dict[t.Any, t.Any], pstats.Stats(str(out)).stats)  # type: ignore[attr-defined]


def _part(path: str, function: str) -> str:
    """Where a function's own time goes: its distribution's top package, the drivers' C code,
    the standard library, or the suite's own code."""
    if path == "~":
        for driver in ("sqlite3", "psycopg"):
            if driver in function:
                return f"{driver} (C)"
        return "builtins (C)"
    if "site-packages/" in path:
        top = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return top.removesuffix(".py")
    if "/lib/python3" in path or path.startswith("<frozen"):
        return "stdlib"
    return "the suite's own code"


def _by_part(stats: dict[t.Any, t.Any]) -> dict[str, float]:
    parts: dict[str, float] = {}
    for (path, _line, function), (_cc, _calls, own, _cum, _callers) in stats.items():
        key = _part(path, function)
        parts[key] = parts.get(key, 0.0) + own
    return parts


def _parts_table(title: str, runs: dict[str, dict[str, float]], scale: float) -> list[str]:
    names = sorted(
        {k for parts in runs.values() for k in parts},
        key=lambda k: -max(parts.get(k, 0.0) for parts in runs.values()),
    )
    width = max(24, *(len(k) for parts in runs.values() for k in parts))
    lines = [title, f"  {'':<{width}} {'Django':>9} {'ours':>9} {'ours - Django':>14}"]
    for name in names:
        django, ours = (runs[side].get(name, 0.0) * scale for side in SIDES)
        if max(django, ours) >= 0.01:
            lines.append(f"  {name:<{width}} {django:>9.2f} {ours:>9.2f} {ours - django:>+14.2f}")
    django, ours = (sum(runs[side].values()) * scale for side in SIDES)
    lines.append(f"  {'total':<{width}} {django:>9.2f} {ours:>9.2f} {ours - django:>+14.2f}")
    return lines


#: Phases of a pytest process, by the function whose cumulative time is the phase.
PHASES = (
    ("start: plugins, conftest.py, ini", "_pytest/config/__init__.py", "_prepareconfig"),
    ("collection: the test module's imports", "_pytest/main.py", "pytest_collection"),
    ("tests, the database build included", "_pytest/main.py", "pytest_runtestloop"),
)


def _phases(stats: dict[t.Any, t.Any]) -> dict[str, float]:
    found = {}
    for label, file, function in PHASES:
        found[label] = max(
            (
                v[3]
                for (path, _, name), v in stats.items()
                if path.endswith(file) and name == function
            ),
            default=0.0,
        )
    total = max(v[3] for v in stats.values())
    found["the rest: interpreter, session finish (drops)"] = total - sum(found.values())
    return found


def profile(suites: dict[tuple[str, str], Suite], work: Path, size: int) -> list[str]:
    """Where the time goes on both sides (cProfile, which inflates Python code): per test, own
    time by package over the large suite less the one-test run; the one-test cold run by phase;
    then flask_complete's own functions in our large suite."""
    large = {side: _cprofile(suites[side, "large"], work, "large") for side in SIDES}
    cold = {side: _cprofile(suites[side, "one"], work, "one") for side in SIDES}
    per_test = {}
    for side in SIDES:
        whole, once = _by_part(large[side]), _by_part(cold[side])
        per_test[side] = {k: whole[k] - once.get(k, 0.0) for k in whole}
    lines = _parts_table(
        f"per test: own time by package, {size} tests less one (ms, profiled):",
        per_test,
        1000 / (size - 1),
    )
    lines += _parts_table(
        "one test, cold, by phase (s, profiled):",
        {side: _phases(stats) for side, stats in cold.items()},
        1.0,
    )
    rows = sorted(large["ours"].items(), key=lambda item: item[1][3], reverse=True)
    ours = [(k, v) for k, v in rows if "flask_complete/" in k[0]]
    lines += [f"flask_complete's functions in our {size} tests, top 12 by cumulative time:"]
    lines += [f"  {'cum s':>8} {'own s':>8} {'calls':>9}  function"]
    for (path, number, name), (_, calls, own, cumulative, _) in ours[:12]:
        lines.append(f"  {cumulative:8.3f} {own:8.3f} {calls:>9}  {_where(path)}:{number}({name})")
    return lines


# -- the benchmark --------------------------------------------------------------------------------


@dataclass
class Figures:
    walls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    reuse: dict[str, tuple[bool, bool, float]] = field(default_factory=dict)
    statements: dict[str, Statements] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)

    def median(self, side: str, case: str) -> float:
        return statistics.median(self.walls[side, case])


CASES = (
    ("small", "small", NO_CACHE),
    ("large", "large", NO_CACHE),
    ("cold", "one", NO_CACHE),
    ("reuse", "reuse", ["--reuse-db"]),
    ("large -n 2", "large", ["-n", "2", *NO_CACHE]),
)


def bench(label: str, suites: dict[tuple[str, str], Suite], rounds: int, work: Path) -> Figures:
    figures = Figures()
    for side in SIDES:  # the database --reuse-db keeps, and a first run of each side
        suites[side, "reuse"].run(["--reuse-db"])
        suites[side, "one"].run(NO_CACHE)
    for round_ in range(rounds):
        print(f"  {label}: round {round_ + 1} of {rounds} ...", flush=True)
        for case, suite_name, extra in CASES:
            order = SIDES if round_ % 2 == 0 else tuple(reversed(SIDES))
            for side in order:
                wall = suites[side, suite_name].run(list(extra))
                figures.walls.setdefault((side, case), []).append(wall)
    figures.reuse = reuse_checks(suites)
    for side in SIDES:
        figures.statements[side] = count_statements(suites[side, "small"], work)
    return figures


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(label: str, figures: Figures, sizes: tuple[int, int], rounds: int) -> list[bool]:
    """Print one backend's table; the targets met."""
    small, large = sizes
    per_test = {
        s: (figures.median(s, "large") - figures.median(s, "small")) / (large - small) * 1000
        for s in SIDES
    }
    speedup = {s: figures.median(s, "large") / figures.median(s, "large -n 2") for s in SIDES}
    rows: list[tuple[str, str, str, str, str]] = []
    met = []

    def row(
        name: str, django: float, ours: float, unit: str, target: str = "", ok: bool | None = None
    ) -> None:
        ratio = ours / django if django else float("nan")
        if ok is not None:
            met.append(ok)
            target = f"{target}: {_verdict(ok)}"
        rows.append((name, f"{django:.2f}{unit}", f"{ours:.2f}{unit}", f"{ratio:.2f}", target))

    row(
        f"per test, -n 0 (ms; {small} -> {large} tests)",
        per_test["django"],
        per_test["ours"],
        "",
        f"<= {TARGET_PER_TEST}x Django",
        per_test["ours"] <= TARGET_PER_TEST * per_test["django"],
    )
    cold = {s: figures.median(s, "cold") for s in SIDES}
    row(
        "one test, cold: create + migrate + drop (s)",
        cold["django"],
        cold["ours"],
        "",
        f"<= {TARGET_COLD}x Django",
        cold["ours"] <= TARGET_COLD * cold["django"],
    )
    reuse = {s: figures.median(s, "reuse") for s in SIDES}
    row("one test, --reuse-db, second run (s)", reuse["django"], reuse["ours"], "")
    n2 = {s: figures.median(s, "large -n 2") for s in SIDES}
    row(f"{large} tests, -n 2, cold (s)", n2["django"], n2["ours"], "")
    large_walls = {s: figures.median(s, "large") for s in SIDES}
    row(f"{large} tests, -n 0, cold (s)", large_walls["django"], large_walls["ours"], "")
    row(
        f"-n 2 speed-up over -n 0 at {large} tests",
        speedup["django"],
        speedup["ours"],
        "x",
        f">= {TARGET_SPEEDUP}x",
        speedup["ours"] >= TARGET_SPEEDUP,
    )
    st = figures.statements
    rows.append(
        (
            "SQL statements per test (plain / with GET)",
            f"{st['django'].plain:.0f} / {st['django'].view:.0f}",
            f"{st['ours'].plain:.0f} / {st['ours'].view:.0f}",
            f"{st['ours'].mean / st['django'].mean:.2f}",
            "",
        )
    )
    rows.append(
        (
            "round trips per test (statements + *)",
            f"{st['django'].round_trips:.1f}",
            f"{st['ours'].round_trips:.1f}",
            f"{st['ours'].round_trips / st['django'].round_trips:.2f}",
            "",
        )
    )
    print(f"\n== {label}: medians of {rounds} round(s) ==")
    width = max(len(r[0]) for r in rows)
    print(f"  {'':<{width}}  {'Django':>10}  {'ours':>10}  {'ours/Dj':>7}  target")
    for name, django, ours, ratio_text, target in rows:
        print(f"  {name:<{width}}  {django:>10}  {ours:>10}  {ratio_text:>7}  {target}")
    for side in SIDES:
        with_cache, without_cache, wall = figures.reuse[side]
        print(
            f"  --reuse-db reused the database ({side}): with the cache plugin "
            f"{'yes' if with_cache else 'NO'}; with -p no:cacheprovider "
            f"{'yes' if without_cache else 'NO (rebuilt)'}, {wall:.2f} s"
        )
    return met


def print_statements(label: str, figures: Figures) -> None:
    for side in SIDES:
        found = figures.statements[side]
        print(f"\n  {label}, {side}: statements of {found.listed.split('::')[-1]}")
        for kind, text in found.listing:
            shown = text if len(text) <= 110 else text[:107] + "..."
            print(f"    {'  ' if kind == 'sql' else '* '}{shown}")
    print(
        "    (* a round trip that is no statement: a DBAPI commit or rollback, the pool's "
        "pre-ping;\n     the BEGIN psycopg sends before a transaction's first statement is not "
        "listed on either side)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round, 50 and 250 tests")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--venvs", type=Path, help="keep the venvs in this folder")
    args = parser.parse_args()
    rounds, sizes = (1, (50, 250)) if args.quick else (args.rounds, (200, 1000))
    base = args.venvs or Path(tempfile.gettempdir()) / "flask-complete-bench-vs-django"
    venvs = make_venvs(base.resolve())
    print(versions(venvs))
    backends = [] if args.no_postgres else ["postgresql"]
    backends += [] if args.no_sqlite else ["sqlite"]
    if not backends:
        raise SystemExit("Nothing to measure: drop --no-postgres or --no-sqlite.")
    tag = uuid.uuid4().hex[:8]
    met: list[bool] = []
    results: dict[str, Figures] = {}
    skip_profile = os.environ.get("BENCH_VS_DJANGO_PROFILE") == "0"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="fc-bench-vs-django-") as tmp:
        work = Path(tmp)
        bases = make_bases(work, venvs)
        try:
            for backend in backends:
                suites = make_suites(work, bases, venvs, backend, tag, sizes)
                label = "PostgreSQL" if backend == "postgresql" else "SQLite file"
                results[label] = figures = bench(label, suites, rounds, work)
                if not skip_profile:
                    figures.profile = profile(suites, work, sizes[1])
        finally:
            if "postgresql" in backends:
                for name in postgres_databases(tag):
                    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                left = postgres_databases(tag)
                print(f"\ndatabases left on the server: {', '.join(left) or 'none'}")
    for label, figures in results.items():
        met += report(label, figures, sizes, rounds)
    for label, figures in results.items():
        print_statements(label, figures)
    for label, figures in results.items():
        if figures.profile:
            print(f"\nWhere the time goes on {label} (cProfile, -n 0):")
            print("\n".join(figures.profile))
    print(
        f"\nload average {os.getloadavg()[0]:.1f} at the end; {sum(met)} of {len(met)} targets met"
    )
    sys.exit(0 if all(met) else 1)


if __name__ == "__main__":
    main()

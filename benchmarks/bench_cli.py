"""The ``flask`` command's start-up with flask_complete installed, against a venv without it.

Run: ``python benchmarks/bench_cli.py [--runs 30] [--venvs DIR]``. Builds two venvs with the
same packages pinned by ``constraints.txt`` (flask_complete's runtime dependencies): ``without``,
and ``with``, which adds flask_complete built from this checkout (``pip install --no-deps``, so
its modules are compiled as any installed package's are). ``--venvs DIR`` keeps them there for
the next run (flask_complete is reinstalled each time); by default they are temporary.

Then times ``flask --help`` (fresh processes, interleaved so that drift hits every case alike)
for a bare app in both venvs, the floor (Flask and Flask-SQLAlchemy imported; and bound to
SQLite) in the venv without flask_complete, the one-call app ``Complete(app)`` and the same stack
wired by hand; and lists what importing the entry point and building the one-call app import.
Targets: bare with / bare without <= 1.03; one-call / floor <= 1.1; the entry point imports no
Dynaconf, SQLAlchemy or flask_complete module beyond itself; the one-call app imports no Dynaconf.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

APPS = {
    "bare": """
        from flask import Flask

        app = Flask(__name__)
    """,
    "floor": """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        app = Flask(__name__)
    """,
    "floor+db": """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///floor.sqlite3"
        db = SQLAlchemy(app)
    """,
    "one-call": """
        from flask import Flask
        from flask_complete import Complete

        app = Flask(__name__)
        Complete(app)
    """,
    "hand-wired": """
        from dynaconf import FlaskDynaconf
        from flask import Flask
        from flask_cors import CORS
        from flask_migrate import Migrate
        from flask_sqlalchemy import SQLAlchemy

        app = Flask(__name__)
        FlaskDynaconf(app, settings_files=[], environments=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///hand.sqlite3"
        db = SQLAlchemy(app)
        Migrate(app, db)
        CORS(app, origins=["http://localhost:3000"], resources=["/api/*"])
    """,
}

#: (label, venv, app): what is timed.
CASES = [
    ("bare, without flask_complete", "without", "bare"),
    ("bare, with flask_complete", "with", "bare"),
    ("floor: Flask + Flask-SQLAlchemy", "without", "floor"),
    ("floor + SQLAlchemy(app) on SQLite", "without", "floor+db"),
    ("one-call Complete(app)", "with", "one-call"),
    ("hand-wired (FlaskDynaconf ...)", "without", "hand-wired"),
]


def _dependencies() -> list[str]:
    """flask_complete's runtime dependencies, by name (``constraints.txt`` pins them)."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in data["project"]["dependencies"]]


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"pip install {' '.join(args)} failed:\n{done.stderr}")


def make_venvs(folder: Path) -> dict[str, Path]:
    venvs = {"without": folder / "without", "with": folder / "with"}
    for venv in venvs.values():
        if not (venv / "bin" / "flask").exists():
            print(f"creating venv {venv.name} ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            _pip(venv, "-c", str(REPO / "constraints.txt"), *_dependencies())
    # Always this checkout's code; built like any install, so its modules are byte-compiled.
    _pip(venvs["with"], "--no-deps", "--force-reinstall", str(REPO))
    listed = subprocess.run(
        [str(venvs["without"] / "bin" / "python"), "-m", "pip", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "flask-complete" in listed.lower() or "flask_complete" in listed.lower():
        raise SystemExit("the 'without' venv has flask_complete installed")
    return venvs


def make_apps(folder: Path) -> dict[str, Path]:
    found = {}
    for name, source in APPS.items():
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "app.py").write_text(textwrap.dedent(source).lstrip())
        found[name] = path
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTHON"))}
    env.update(FLASK_APP="app", FLASK_SKIP_DOTENV="1")
    for name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL"):
        env.pop(name, None)
    return env


def time_help(venvs: dict[str, Path], apps: dict[str, Path], runs: int) -> dict[str, list[float]]:
    """Wall time of ``flask --help`` per case, interleaved, after two warm-up rounds."""
    env = _env()
    samples: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
    for round_ in range(runs + 2):
        for label, venv, app in CASES:
            start = time.perf_counter()
            subprocess.run(
                [str(venvs[venv] / "bin" / "flask"), "--help"],
                cwd=apps[app],
                env=env,
                stdout=subprocess.DEVNULL,
                check=True,
            )
            if round_ >= 2:
                samples[label].append((time.perf_counter() - start) * 1000)
    return samples


def imported(venv: Path, cwd: Path, code: str) -> list[str]:
    """The modules ``code`` imports beyond those imported by ``import flask.cli, flask``."""
    probe = (
        "import sys, flask.cli, flask; before = set(sys.modules); "
        f"{code}; print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def _top(modules: list[str]) -> str:
    tops = sorted({m.split(".")[0] for m in modules})
    return ", ".join(tops) or "nothing"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--venvs", type=Path, help="keep the venvs in this folder")
    args = parser.parse_args()
    folder = args.venvs or Path(tempfile.mkdtemp(prefix="fc-cli-venvs-"))
    work = Path(tempfile.mkdtemp(prefix="fc-cli-apps-"))
    try:
        venvs = make_venvs(folder)
        apps = make_apps(work)
        samples = time_help(venvs, apps, args.runs)
        entry = imported(venvs["with"], apps["bare"], "import flask_complete.cli")
        one_call = imported(venvs["with"], apps["one-call"], "import app")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.venvs is None:
            shutil.rmtree(folder, ignore_errors=True)

    median = {label: statistics.median(s) for label, s in samples.items()}
    print(f"\n`flask --help`, {args.runs} runs each (ms)")
    print(f"{'case':<36}{'median':>9}{'min':>9}{'stdev':>8}")
    for label, values in samples.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{label:<36}{median[label]:>9.1f}{min(values):>9.1f}{spread:>8.1f}")

    print("\nratios: the median of the ratios of each round's runs (run back to back)")
    rows = [
        (
            "bare app, with / without flask_complete",
            "bare, with flask_complete",
            "bare, without flask_complete",
            1.03,
        ),
        (
            "one-call / floor (imported)",
            "one-call Complete(app)",
            "floor: Flask + Flask-SQLAlchemy",
            1.10,
        ),
        (
            "one-call / floor + SQLAlchemy(app)",
            "one-call Complete(app)",
            "floor + SQLAlchemy(app) on SQLite",
            None,
        ),
        ("one-call / hand-wired", "one-call Complete(app)", "hand-wired (FlaskDynaconf ...)", None),
        (
            "bare without / floor",
            "bare, without flask_complete",
            "floor: Flask + Flask-SQLAlchemy",
            None,
        ),
    ]
    for title, top, bottom, target in rows:
        ratio = statistics.median(a / b for a, b in zip(samples[top], samples[bottom], strict=True))
        verdict = f"target <= {target:.2f}  {_verdict(ratio <= target)}" if target else "(shown)"
        print(f"  {title:<42}{ratio:6.3f}  {verdict}")

    heavy = [m for m in entry if m.split(".")[0] in ("dynaconf", "sqlalchemy", "flask_sqlalchemy")]
    own = [m for m in entry if m.startswith("flask_complete") and m != "flask_complete.cli"]
    print("\nimports")
    print(
        f"  the entry point (flask_complete.cli) adds {len(entry)} modules, of the packages "
        f"{_top(entry)}: "
        f"{_verdict(not heavy and own == ['flask_complete'])}"
    )
    dynaconf = [m for m in one_call if m.split(".")[0] == "dynaconf"]
    print(f"  the one-call app adds the packages: {_top(one_call)}")
    print(
        f"  Dynaconf modules imported by the one-call app: {len(dynaconf)}  "
        f"{_verdict(not dynaconf)}"
    )


if __name__ == "__main__":
    main()

"""Sessions: tests (pinned newest), tests_lowest (each range's floor), tests_newest (the canary:
the newest release of everything, beyond our upper bounds), style, typing, docs, release (build,
check and test the wheel alone), demo."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import nox
import nox.command
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.options.sessions = ["tests", "style", "typing"]
nox.options.default_venv_backend = "venv"

PYPROJECT = tomllib.loads(Path("pyproject.toml").read_text())


def _bundled() -> list[Requirement]:
    """Every bundled requirement: the dependencies and the extras' drivers."""
    lines = list(PYPROJECT["project"]["dependencies"])
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items():
        if extra != "pytest":  # the test run brings its own pytest
            lines += requirements
    return [Requirement(line) for line in lines]


def _lowest() -> list[str]:
    """Each bundled package, the extras' drivers included, pinned to its range's floor."""
    pins = []
    for requirement in _bundled():
        floors = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        if floors:
            # "3.2" written out as "3.2.0": pip may otherwise settle on a pre-release of it.
            release = floors[0].split(".")
            floor = ".".join(release + ["0"] * (3 - len(release)))
            pins.append(f"{requirement.name}{extras}=={floor}")
    return pins


def _pinned() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    pins = {}
    for line in Path("constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _install(session: nox.Session, *args: str) -> None:
    """pip install ``args`` with a pip that knows dependency groups (``--group``, pip 25.1)."""
    session.install("--upgrade", "pip>=25.1")
    session.install(*args)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the suite on the versions in constraints.txt (the newest tested)."""
    _install(session, "-c", "constraints.txt", "-e", ".", "--group", "tests")
    session.run("pytest", *session.posargs)


@nox.session
def tests_lowest(session: nox.Session) -> None:
    """Run the suite on the lowest version of every tested range."""
    _install(session, "-e", ".", "--group", "tests", *_lowest())
    session.run("pytest", *session.posargs)


#: A pytest plugin (loaded with -p) that writes the node ids of failed tests to a file.
_FAILURES_PLUGIN = """
import os

def pytest_runtest_logreport(report):
    if report.failed:
        with open(os.environ["NEWEST_FAILURES"], "a") as f:
            f.write(report.nodeid + "\\n")
"""


def _failing(
    session: nox.Session, tests: list[str], env: dict[str, str], failures_file: Path
) -> set[str]:
    """Which of ``tests`` fail (run again, serially), as the newest_failures plugin records."""
    failures_file.write_text("")
    session.run(
        "pytest",
        "-p",
        "newest_failures",
        "-p",
        "no:xdist",
        "-q",
        *tests,
        env=env,
        success_codes=[0, 1],
    )
    return set(failures_file.read_text().split())


@nox.session
def tests_newest(session: nox.Session) -> None:
    """The canary: install the newest release of every bundled package, ignoring our upper
    bounds, run the suite (posargs go to pytest) and print which packages' newer releases break
    which tests. Fails only when a release inside a tested range breaks a test (or a failure
    belongs to no newer release); a break beyond a range is reported, not failed.
    NEWEST_PRE=1 includes pre-releases."""
    requirements = _bundled()
    names = [r.name + (f"[{','.join(sorted(r.extras))}]" if r.extras else "") for r in requirements]
    _install(session, "-c", "constraints.txt", "--group", "tests")
    # Our own package without its requirements, so that pip does not hold them to our ranges.
    session.install("--no-deps", "-e", ".")
    pre = ["--pre"] if os.environ.get("NEWEST_PRE") else []
    try:
        session.install("--upgrade", "--upgrade-strategy", "only-if-needed", *pre, *names)
    except nox.command.CommandFailed:
        # Newest releases that cannot be installed together say nothing of our ranges.
        session.log("tests_newest: the newest releases do not install together (see above).")
        return
    found = json.loads(
        session.run(
            "python",
            "-c",
            "import json, sys; from importlib import metadata; "
            "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))",
            *[r.name for r in requirements],
            silent=True,
        )
        .strip()
        .splitlines()[-1]
    )
    pinned = _pinned()
    newer = []  # (requirement, pinned version, newest version)
    for requirement in requirements:
        version = found[requirement.name]
        if version != pinned.get(canonicalize_name(requirement.name)):
            newer.append((requirement, pinned.get(canonicalize_name(requirement.name)), version))
    if not newer:
        session.log("tests_newest: every bundled package's newest release is the pinned one:")
        for requirement in requirements:
            session.log(f"  {requirement.name} {found[requirement.name]} ok (= constraints.txt)")
        session.log("tests_newest: nothing newer to try; the 'tests' session covers these.")
        return

    tmp = Path(session.create_tmp()).resolve()
    (tmp / "newest_failures.py").write_text(_FAILURES_PLUGIN)
    failures_file = tmp / "failures.txt"
    env = {
        "PYTHONPATH": str(tmp),
        "NEWEST_FAILURES": str(failures_file),
    }
    failures_file.write_text("")
    # 0: passed, 1: some failed (reported below); anything else (5: no test ran) fails the run.
    session.run("pytest", "-p", "newest_failures", *session.posargs, env=env, success_codes=[0, 1])
    failed = sorted(set(failures_file.read_text().split()))
    pinned_failures: list[str] = []

    # Who breaks what: each newer package put back to its pinned version alone; the failed tests
    # that then pass are that package's.
    blamed: dict[str, list[str]] = {}
    for requirement, old, new in newer:
        if not failed or old is None:
            continue
        session.install(f"{requirement.name}=={old}")
        still = _failing(session, failed[:200], env, failures_file)
        blamed[requirement.name] = [test for test in failed[:200] if test not in still]
        session.install(f"{requirement.name}=={new}")

    session.log("tests_newest: the newest release of each bundled package that moved:")
    broken_inside = False
    for requirement, old, new in newer:
        inside = requirement.specifier.contains(new, prereleases=True)
        where = "inside" if inside else f"BEYOND the tested range {requirement.specifier}"
        tests = blamed.get(requirement.name, [])
        verdict = f"breaks {len(tests)} test(s): {', '.join(tests[:10])}" if tests else "passes"
        session.log(f"  {requirement.name} {old} -> {new} ({where}): {verdict}")
        broken_inside |= inside and bool(tests)
    unexplained = sorted(set(failed) - {t for tests in blamed.values() for t in tests})
    if unexplained:
        # Every newer package back to its pin at once: what passes then needs several of them.
        session.install(*[f"{r.name}=={old}" for r, old, _ in newer if old is not None])
        pinned_failures = sorted(_failing(session, unexplained[:200], env, failures_file))
        combined = [test for test in unexplained if test not in pinned_failures]
        if combined:
            session.log(f"  broken by several newer releases together: {', '.join(combined[:10])}")
            any_beyond = any(not r.specifier.contains(new, prereleases=True) for r, _, new in newer)
            broken_inside |= not any_beyond
        if pinned_failures:
            session.log(f"  failing on the pinned versions too: {', '.join(pinned_failures[:10])}")
    if broken_inside:
        session.error("a release inside the tested ranges breaks the suite (see above)")
    if unexplained and pinned_failures:
        session.error("tests fail on the pinned versions too: not the newer releases (see above)")
    session.log(f"tests_newest: {len(failed)} test(s) fail only beyond the tested ranges.")


@nox.session
def style(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    _install(session, "-c", "constraints.txt", "--group", "style")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """Type-check the package with mypy --strict."""
    _install(session, "-c", "constraints.txt", "-e", ".", "--group", "typing", "--group", "tests")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors (docs/_build/html)."""
    _install(session, "-c", "constraints.txt", "-e", ".", "--group", "docs")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session
def release(session: nox.Session) -> None:
    """Build the sdist and wheel, check them with twine, then install the wheel alone into a
    fresh venv and run the example app's tests and the pytest plugin against it."""
    _install(session, "build", "twine")
    dist = Path("dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    built = sorted(str(p) for p in dist.iterdir())
    session.run("twine", "check", "--strict", *built)
    (wheel,) = [p for p in built if p.endswith(".whl")]

    # A venv of its own and a folder holding only the example app: what is tested is the
    # wheel's flask_complete, never the checkout's.
    work = Path(session.create_tmp()).resolve() / "wheel"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree("example_app", work / "example_app", ignore=shutil.ignore_patterns("instance"))
    python = str(work / "venv" / "bin" / "python")
    session.run("python", "-m", "venv", str(work / "venv"))
    session.run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1", external=True)
    session.run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "-c",
        "constraints.txt",
        f"{Path(wheel).resolve()}[postgres,mysql,redis]",
        "--group",
        "tests",
        external=True,
    )
    (work / "pytest.ini").write_text(
        "[pytest]\nflask_app = example_app\ntestpaths = example_app/tests\n"
        "filterwarnings = error\naddopts = -rs -p no:cacheprovider\n"
    )
    with session.chdir(work):
        session.run(
            python,
            "-c",
            "import flask_complete, sys; p = flask_complete.__file__; print(p); "
            "sys.exit('site-packages' not in p)",
            external=True,
        )
        session.run(python, "-m", "pytest", *session.posargs, external=True)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the example app on its embedded SQLite database."""
    session.install("-c", "constraints.txt", "-e", ".")
    session.run("flask", "--app", "example_app", "db", "prepare")
    session.run("flask", "--app", "example_app", "run", "--host", "127.0.0.1")

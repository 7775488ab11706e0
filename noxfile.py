"""Sessions: tests (pinned newest), tests_lowest (each range's floor), style, typing, docs,
release (build, check and test the wheel alone), demo."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "style", "typing"]
nox.options.default_venv_backend = "venv"

PYPROJECT = tomllib.loads(Path("pyproject.toml").read_text())


def _lowest() -> list[str]:
    """Each bundled dependency pinned to the lower bound of its tested range."""
    pins = []
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, _, spec = requirement.partition(">=")
        if spec:
            pins.append(f"{name}=={spec.split(',')[0]}")
        else:
            pins.append(requirement)
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

"""pytest plugin: the app in testing, a real test database, per-test isolation and fixtures.

Loaded by every pytest run where flask_complete is installed, so it stays inert until asked:
importing it loads nothing heavy, and nothing is built unless a fixture needs the app. The
machinery lives in :mod:`flask_complete.testing`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if t.TYPE_CHECKING:
    from types import ModuleType

    from flask import Flask
    from flask.testing import FlaskClient, FlaskCliRunner
    from flask_sqlalchemy import SQLAlchemy

    from .testing import LiveServer, SettingsOverride
    from .testing.databases import TestDatabases

BUNDLED = (
    "flask",
    "flask-sqlalchemy",
    "sqlalchemy",
    "flask-migrate",
    "alembic",
    "dynaconf",
    "flask-cors",
    "flask-login",
    "factory-boy",
)


@dataclass
class _Run:
    """What the plugin knows about this run, on ``config.stash``."""

    spec: str | None = None
    source: str = ""
    import_name: str = ""
    app_name: str | None = None
    app: Flask | None = None
    error: str | None = None
    previous_env: str | None = None
    finder: _OnImport | None = None
    pinned: bool = False
    #: The pytest-xdist worker id ("gw0"), "" outside a worker.
    worker: str = ""
    databases: TestDatabases | None = None
    factories: dict[str, type[t.Any]] = field(default_factory=dict)
    #: On the pytest-xdist controller: the folder its workers share (the template's lock).
    shared: str | None = None
    #: What was done to each test database, for the terminal summary (the workers' too).
    summary: list[str] = field(default_factory=list)
    #: A test database could not be dropped (here or, on the controller, by a worker).
    drop_failed: bool = False


#: The ``workerinput`` key of the folder the controller shares with its workers.
_SHARED = "flask_complete_shared"
#: The ``workeroutput`` key of a worker's summary lines.
_SUMMARY = "flask_complete_summary"


_RUN = pytest.StashKey[_Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flask_complete", "flask_complete (app and test database)")
    group.addoption(
        "--flask-app",
        dest="flask_app",
        metavar="APP",
        help="The app to test, as for `flask --app`: module, module:app or module:create_app(). "
        "Default: FLASK_APP, then the flask_app ini key.",
    )
    parser.addini("flask_app", "The app to test (module, module:app, module:create_app()).")
    group.addoption(
        "--reuse-db",
        action="store_true",
        default=None,
        dest="flask_reuse_db",
        help="Keep the test database after the run and reuse it next time (rebuilt when the "
        "migrations, or the models without migrations, or the data fixtures change: the "
        "database records what it was built from). Ini: flask_reuse_db.",
    )
    parser.addini("flask_reuse_db", "Keep and reuse the test database.", type="bool", default=False)
    group.addoption(
        "--create-db",
        action="store_true",
        default=None,
        dest="flask_create_db",
        help="Rebuild the test database even when --reuse-db would keep it. Ini: flask_create_db.",
    )
    parser.addini(
        "flask_create_db", "Always rebuild the test database.", type="bool", default=False
    )
    group.addoption(
        "--no-migrations",
        action="store_false",
        default=None,
        dest="flask_migrations",
        help="Build the test schema with create_all instead of running the migrations. "
        "Ini: flask_migrations = false.",
    )
    parser.addini(
        "flask_migrations", "Build the test schema from the migrations.", type="bool", default=True
    )
    group.addoption(
        "--check-migrations",
        action="store_true",
        default=None,
        dest="flask_check_migrations",
        help="Fail the run when the models and the migrations differ. Ini: flask_check_migrations.",
    )
    parser.addini(
        "flask_check_migrations",
        "Fail the run when the models and the migrations differ.",
        type="bool",
        default=False,
    )
    parser.addini(
        "flask_factories",
        "Modules holding factory-boy factories to register as fixtures "
        "(default: <app package>.factories when it exists).",
        type="linelist",
        default=[],
    )
    group.addoption(
        "--load-fixtures",
        dest="flask_load_fixtures",
        metavar="NAMES",
        help="Data fixture files (or names under fixtures/testing/ and fixtures/) to load once "
        "into the test database, comma-separated. Ini: flask_load_fixtures.",
    )
    parser.addini(
        "flask_load_fixtures",
        "Data fixtures to load once into the test database.",
        type="linelist",
        default=[],
    )


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


class _OnImport(importlib.abc.MetaPathFinder):
    """Run a callback right after one module is first imported (and not before it is needed)."""

    def __init__(self, name: str, callback: t.Callable[[ModuleType], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: t.Any, target: t.Any = None) -> t.Any:
        if fullname != self.name:
            return None
        self.remove()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, callback = spec.loader, self.callback

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: t.Any) -> t.Any:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                callback(module)

        spec.loader = _Loader()
        return spec

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before the first conftest.py is imported: one that builds its app at import (a module
    # app, `from myapp import app`) must find the app's folder and be in testing too.
    _start(early_config, getattr(early_config.known_args_namespace, "flask_app", None))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fixtures(*names): load data fixture files into the test's transaction, rolled back "
        "with it (needs the db fixture)",
    )
    run = config.stash.get(_RUN, None)
    if run is None:  # loaded after the initial conftests (``-p flask_complete`` late)
        run = _start(config, config.getoption("flask_app"))
    if run.worker and not hasattr(config, "workerinput"):
        # PYTEST_XDIST_WORKER inherited from a parent run: this process is no xdist worker.
        run.worker = ""
        if run.pinned:
            from .settings import config as settings

            settings.force_env("testing")


def _start(config: pytest.Config, option: str | None) -> _Run:
    """Name the app (``--flask-app`` > ``FLASK_APP`` > ini), put its folder on ``sys.path``,
    and pin the run to the testing environment once flask_complete is imported."""
    run = _Run(worker=os.environ.get("PYTEST_XDIST_WORKER", ""))
    config.stash[_RUN] = run
    if option:
        run.spec, run.source = option, "--flask-app"
    elif os.environ.get("FLASK_APP"):
        run.spec, run.source = os.environ["FLASK_APP"], "FLASK_APP"
    elif config.getini("flask_app"):
        run.spec, run.source = str(config.getini("flask_app")), "ini flask_app"
    if run.spec is not None:
        # As `flask --app` does: the app's folder on sys.path, so that conftest files and test
        # modules can import it too. Relative to the working directory, as for `flask`; the
        # ini key is relative to the root folder.
        base = Path(config.rootpath) if run.source == "ini flask_app" else Path.cwd()
        run.import_name, run.app_name = _prepare_import(run.spec, base)

    def pin_testing(module: ModuleType) -> None:
        # The whole run is in testing: no app built here resolves a development or production
        # database. Apps pinned with Complete(app, env=...) keep their environment.
        from flask import appcontext_pushed

        from .settings import config as settings

        global _pinned
        _pinned = config

        run.previous_env = settings._forced_env
        settings.force_env("testing", run.worker)
        appcontext_pushed.connect(_guard)
        run.pinned = True

    # Nothing to pin until flask_complete itself is imported: a plain project pays nothing.
    if "flask_complete.extension" in sys.modules:
        pin_testing(sys.modules["flask_complete.extension"])
    else:
        run.finder = _OnImport("flask_complete.extension", pin_testing)
        sys.meta_path.insert(0, run.finder)
    return run


def _prepare_import(spec: str, base: Path) -> tuple[str, str | None]:
    """The module and app names of ``spec`` (``module:create_app()``), with the module's folder
    put on ``sys.path`` as ``flask.cli.prepare_import`` does; nothing is imported."""
    drive = re.match(r"^[A-Za-z]:[\\/]", spec)
    path, _, name = (spec, "", "") if drive else spec.partition(":")
    full = os.path.realpath(base / path)
    stem, ext = os.path.splitext(full)
    if ext == ".py":
        full = stem
    if os.path.basename(full) == "__init__":
        full = os.path.dirname(full)
    parts = []
    while True:
        full, part = os.path.split(full)
        parts.append(part)
        if not os.path.exists(os.path.join(full, "__init__.py")):
            break
    if full not in sys.path:
        sys.path.insert(0, full)
    return ".".join(reversed(parts)), name or None


#: The run whose apps are guarded (apps a suite builds itself included).
_pinned: pytest.Config | None = None


def _guard(app: Flask, **extra: t.Any) -> None:
    if "complete" in app.extensions:
        from .testing.databases import guard_app

        guard_app(app, _databases(_pinned) if _pinned is not None else None)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    if run.finder is not None:
        run.finder.remove()
    if run.shared is not None:
        import shutil

        shutil.rmtree(run.shared, ignore_errors=True)
    if run.pinned:
        from flask import appcontext_pushed

        from .settings import config as settings

        global _pinned
        _pinned = None
        appcontext_pushed.disconnect(_guard)
        settings.force_env(run.previous_env)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: t.Any) -> None:
    """pytest-xdist's controller, for each worker: the folder where the workers agree on who
    builds the template database (made here, removed when the run ends)."""
    run = node.config.stash.get(_RUN, None)
    if run is None:
        return
    if run.shared is None:
        import tempfile

        run.shared = tempfile.mkdtemp(prefix="flask_complete-")
    node.workerinput[_SHARED] = run.shared


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: t.Any, error: object) -> None:
    run = node.config.stash.get(_RUN, None)
    output = getattr(node, "workeroutput", None) or {}
    if run is not None:
        summary = output.get(_SUMMARY) or {}
        run.summary.extend(summary.get("lines", ()))
        run.drop_failed = run.drop_failed or bool(summary.get("drop_failed"))


def pytest_terminal_summary(terminalreporter: t.Any) -> None:
    run = terminalreporter.config.stash.get(_RUN, None)
    for line in run.summary if run is not None else ():
        terminalreporter.write_line(f"flask_complete: {line}")


def _app(config: pytest.Config) -> Flask:
    """The app under test, built on first use and kept for the session."""
    run = config.stash[_RUN]
    if run.app is not None:
        return run.app
    if run.error is not None:
        pytest.fail(run.error, pytrace=False)
    if run.spec is None:
        pytest.fail(
            "flask_complete does not know which app to test. Name it with --flask-app, FLASK_APP "
            'or the ini key (pyproject.toml: [tool.pytest.ini_options] flask_app = "myapp"), '
            "or define your own `app` fixture in conftest.py.",
            pytrace=False,
        )
    from .testing import load_app
    from .testing.databases import block, engines_of

    try:
        app = load_app(run.import_name, run.app_name)
        if "sqlalchemy" in app.extensions:
            for engine in engines_of(app).values():
                block(engine)
    except Exception as e:
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        run.error = f"flask_complete could not build the app {run.spec!r} ({run.source}): {message}"
        pytest.fail(run.error, pytrace=False)
    run.app = app
    return app


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = config.stash.get(_RUN, None)
    # FLASK_APP alone may name an app that does not use flask_complete (set for `flask run`):
    # it is built only when a fixture asks for it, never just to print this header.
    if run is None or run.spec is None or run.source == "FLASK_APP":
        return None
    lines = [f"flask_complete: app {run.spec} (from {run.source}), environment testing"]
    try:
        app = _app(config)
    except pytest.fail.Exception:
        lines.append(f"flask_complete: {run.error}")
    else:
        from .database.gate import origins
        from .settings import config as settings
        from .testing.databases import engines_of, sqla_of

        with contextlib.suppress(Exception):
            sqla_of(app)
            workers = (
                " (the template of the xdist workers' copies: _gw0, _gw1, ...)"
                if config.pluginmanager.hasplugin("xdist")
                and getattr(config.option, "numprocesses", None)
                else ""
            )
            found_origins = origins(app)
            for bind, engine in engines_of(app).items():
                name = "" if bind is None else f" (bind {bind!r})"
                origin = found_origins.get(bind)
                lines.append(
                    f"flask_complete: test database{name} {settings.redact_url(engine.url)}"
                    + (f", {origin}" if origin else "")
                    + workers
                )
    found = [f"{name} {version}" for name, version in _versions(("flask-complete", *BUNDLED))]
    lines.append("flask_complete: " + ", ".join(found))
    return lines


def _versions(names: t.Iterable[str]) -> Iterator[tuple[str, str]]:
    """The installed version of each of ``names`` (those not installed left out), read from the
    ``Version:`` line of its metadata: the email parser behind ``importlib.metadata.version``
    costs about a millisecond a package."""
    from importlib.metadata import Distribution, PackageNotFoundError

    for name in names:
        try:
            dist = Distribution.from_name(name)
        except PackageNotFoundError:
            continue
        # PKG-INFO: an egg-info or a source tree's metadata.
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        found = re.search(r"^Version:[ \t]*(\S+)", text, re.MULTILINE)
        if found is not None:
            yield name, found.group(1)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None:
        return
    modules = list(session.config.getini("flask_factories"))
    if not modules and run.spec and run.source != "FLASK_APP":
        package = run.spec.partition(":")[0].removesuffix(".py").replace("/", ".").split(".")[0]
        # A broken app module is reported by the fixtures that need the app, not here.
        with contextlib.suppress(Exception):
            if importlib.util.find_spec(f"{package}.factories") is not None:
                modules = [f"{package}.factories"]
    if modules:
        session.config.pluginmanager.register(
            _factory_fixtures(session.config, modules), "flask_complete_factories"
        )


def _snake(name: str) -> str:
    base = name.removesuffix("Factory") or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower() + "_factory"


def _factory_fixtures(config: pytest.Config, modules: list[str]) -> object:
    """A plugin module with one ``<model>_factory`` fixture per factory class in ``modules``.

    The modules are read, not imported: factory-boy pulls in Faker (about a second), which a
    run that uses no factory should not pay.
    """
    import ast
    import types

    # A module: pytest reads fixtures from a plugin module's attributes.
    holder = types.ModuleType("flask_complete_factories")
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise pytest.UsageError(
                f"flask_factories names {name!r}, which is not an importable module. Fix the "
                "module name in [tool.pytest.ini_options] flask_factories."
            )
        tree = ast.parse(Path(spec.origin).read_bytes())
        for node in tree.body:
            if not isinstance(node, ast.ClassDef) or not node.bases:
                continue
            meta = _meta(node)
            # ``db.session`` (the scoped session) follows the test's isolation; a session made
            # at import (``db.session()``, ``Session(...)``) does not.
            if isinstance(meta.get("sqlalchemy_session"), ast.Call):
                config.issue_config_time_warning(
                    pytest.PytestConfigWarning(
                        f"{name}.{node.name} sets Meta.sqlalchemy_session to a session made at "
                        "import, so its rows land outside the test's isolated session. Use "
                        "db.session (the scoped session), or derive the factory from "
                        "flask_complete.factories.ModelFactory."
                    ),
                    stacklevel=2,
                )
            if meta.get("abstract") is not True:
                setattr(holder, _snake(node.name), _factory_fixture(name, node.name))
    return holder


def _meta(node: t.Any) -> dict[str, t.Any]:
    """The names assigned in a class's ``Meta`` (literal values; other expressions as their
    syntax tree)."""
    import ast

    found: dict[str, t.Any] = {}
    for item in node.body:
        if isinstance(item, ast.ClassDef) and item.name == "Meta":
            for line in item.body:
                if isinstance(line, ast.Assign):
                    value = line.value
                    for target in line.targets:
                        found[getattr(target, "id", "")] = (
                            value.value if isinstance(value, ast.Constant) else value
                        )
    return found


def _factory_fixture(module: str, name: str) -> t.Any:
    def fixture(request: pytest.FixtureRequest) -> type[t.Any]:
        from factory.base import BaseFactory

        # Rows in the test's database: the rolled-back one, or real commits with
        # transactional_db when the test asked for that.
        transactional = "transactional_db" in request.fixturenames
        request.getfixturevalue("transactional_db" if transactional else "db")
        found = getattr(importlib.import_module(module), name)
        if not (isinstance(found, type) and issubclass(found, BaseFactory)):
            pytest.fail(f"{module}.{name} is not a factory-boy factory.", pytrace=False)
        return t.cast(type[t.Any], found)

    fixture.__doc__ = (
        f"{module}.{name}, creating rows in the test's database (rolled back with ``db``, "
        "committed and emptied after with ``transactional_db``)."
    )
    return pytest.fixture(name=_snake(name))(fixture)


@contextlib.contextmanager
def _clean_failures() -> Iterator[None]:
    # A refusal is a message for the user, not a traceback through the plugin.
    from click import ClickException

    from .testing.databases import DatabaseRefused

    try:
        yield
    except DatabaseRefused as e:
        pytest.fail(str(e), pytrace=False)
    except ClickException as e:  # a server that cannot be reached, a bad migration
        pytest.fail(f"flask_complete could not prepare the test database: {e}", pytrace=False)


@pytest.fixture(scope="session")
def _flask_complete_databases(request: pytest.FixtureRequest) -> TestDatabases:
    """The run's test databases, created (or reused) for whichever app asks first, schema
    built; dropped when the session finishes (after every fixture's teardown, so a conftest's
    session-scoped app can still clean up in its own)."""
    return _databases(request.config)


def _databases(config: pytest.Config) -> TestDatabases:
    from .testing.databases import TestDatabases

    run = config.stash[_RUN]
    if run.databases is None:
        option = config.getoption("flask_load_fixtures")
        value = option if option is not None else config.getini("flask_load_fixtures")
        names: list[str] = []
        if value:  # the data fixtures' modules only when there are some to load
            from .testing import fixtures as part

            names = part.names_of(value)
        shared = getattr(config, "workerinput", {}).get(_SHARED)
        run.databases = TestDatabases(
            reuse=_flag(config, "flask_reuse_db"),
            recreate=_flag(config, "flask_create_db"),
            migrations=_flag(config, "flask_migrations"),
            fixtures=names,
            shared=Path(shared) if shared and run.worker else None,
            worker=run.worker,
        )
    return run.databases


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None:
        return
    if run.databases is not None:
        _teardown(run)
    if run.drop_failed:  # here, or in a pytest-xdist worker (the controller fails the run)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # pytest-xdist sends it to the controller, which prints it.
        workeroutput[_SUMMARY] = {"lines": list(run.summary), "drop_failed": run.drop_failed}


def _teardown(run: _Run) -> None:
    """Drop the run's test databases (those kept for ``--reuse-db`` aside); say what was done
    with each, and what could not be dropped."""
    from click import ClickException

    from .testing.databases import DatabaseRefused

    databases, run.databases = run.databases, None
    assert databases is not None
    prefix = f"[{run.worker}] " if run.worker else ""
    run.summary.extend(prefix + line for line in databases.summary)
    try:
        databases.teardown()
    except (DatabaseRefused, ClickException) as e:
        # A database left behind is a failed run, said plainly.
        message = e.format_message() if isinstance(e, ClickException) else str(e)
        run.summary.append(f"{prefix}could not drop a test database: {message}")
        run.drop_failed = True


_checked_migrations = pytest.StashKey[bool]()


def _prepare(request: pytest.FixtureRequest, app: Flask, databases: TestDatabases) -> SQLAlchemy:
    """The gate, then the test database of ``app`` (built once, with the session's data
    fixtures), then ``--check-migrations``."""
    from .testing.databases import check_migrations, sqla_of

    with _clean_failures():
        sqla = sqla_of(app)
        databases.prepare(app)
    config = request.config
    if _flag(config, "flask_check_migrations") and not config.stash.get(_checked_migrations, False):
        config.stash[_checked_migrations] = True
        problem = check_migrations(app)
        if problem:
            pytest.exit(problem, returncode=1)
    return sqla


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app under test (``--flask-app``, ``FLASK_APP`` or the ``flask_app`` ini key), built
    once per session in the testing environment; an app context is pushed for the test."""
    from .testing import fresh_contexts

    application = _app(request.config)
    fresh_contexts(application)
    with application.app_context():
        yield application


@pytest.fixture
def _flask_complete_context(app: Flask) -> Iterator[None]:
    """``app``'s context for the whole test, also when a conftest's own ``app`` fixture (any
    scope) pushed none: ``db.session`` then works in the test body and in factories. Any
    client's requests (``app.test_client()`` too) each get their own app context."""
    from flask import current_app, has_app_context

    from .testing import fresh_contexts

    # The test's requests each get their own app context, whatever client makes them.
    fresh_contexts(app)
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        yield
        return
    with app.app_context():
        yield


@pytest.fixture
def client(app: Flask, _flask_complete_context: None) -> FlaskClient:
    """A test client for ``app``; each request gets its own app context, as in production."""
    from .testing import test_client

    return test_client(app)


@pytest.fixture
def runner(app: Flask, _flask_complete_context: None) -> FlaskCliRunner:
    """A CLI runner for ``app``'s commands: ``runner.invoke(args=["db", "upgrade"])``."""
    return app.test_cli_runner()


@pytest.fixture
def db(
    request: pytest.FixtureRequest,
    app: Flask,
    _flask_complete_context: None,
    _flask_complete_databases: TestDatabases,
) -> Iterator[SQLAlchemy]:
    """The database, isolated for this test: everything it (or a request it makes) writes is
    rolled back after it, commits included. Yields the ``SQLAlchemy`` instance."""
    from .testing import isolated

    sqla = _prepare(request, app, _flask_complete_databases)
    with _clean_failures(), isolated(app):
        marker = request.node.get_closest_marker("fixtures")
        if marker is not None:
            from .testing import fixtures as part

            part.for_marker(app, marker.args)
        yield sqla


@pytest.fixture
def load_fixtures(app: Flask, db: SQLAlchemy) -> t.Callable[..., t.Any]:
    """``load_fixtures("users", "notes")`` loads data fixture files (names under
    ``fixtures/testing/`` then ``fixtures/``, or a ``pathlib.Path`` for a file elsewhere) into the
    test's transaction, rolled back with it; returns what was loaded per model."""
    from .testing import fixtures as part

    return part.loader(app)


@pytest.fixture
def transactional_db(
    request: pytest.FixtureRequest,
    app: Flask,
    _flask_complete_context: None,
    _flask_complete_databases: TestDatabases,
) -> Iterator[SQLAlchemy]:
    """The database with real commits (for several connections or threads); every table is
    emptied after the test. Slower than ``db``: use it only when ``db`` cannot work."""
    from .testing import emptied_after

    if "db" in request.fixturenames:
        pytest.fail(
            "Use either the `db` or the `transactional_db` fixture, not both.", pytrace=False
        )
    sqla = _prepare(request, app, _flask_complete_databases)
    with _clean_failures(), emptied_after(app):
        yield sqla


@pytest.fixture
def settings(app: Flask, _flask_complete_context: None) -> Iterator[SettingsOverride]:
    """Override ``app.config`` keys for one test (``settings["KEY"] = value``); restored after.
    Keys read only when the app is built, such as the database URL, are refused."""
    from .testing import SettingsOverride

    override = SettingsOverride(app)
    try:
        yield override
    finally:
        override.restore()


@pytest.fixture
def assert_num_queries(app: Flask, _flask_complete_context: None) -> t.Callable[[int], t.Any]:
    """``with assert_num_queries(3): ...`` fails unless exactly 3 SQL statements run."""
    from .testing import query_assertion

    return lambda n: query_assertion(app, lambda count: count == n, f"exactly {n}")


@pytest.fixture
def assert_max_queries(app: Flask, _flask_complete_context: None) -> t.Callable[[int], t.Any]:
    """``with assert_max_queries(3): ...`` fails when more than 3 SQL statements run (N+1)."""
    from .testing import query_assertion

    return lambda n: query_assertion(app, lambda count: count <= n, f"at most {n}")


@pytest.fixture
def live_server(app: Flask, transactional_db: SQLAlchemy) -> Iterator[LiveServer]:
    """The app served over HTTP on a free loopback port (``live_server.url``), with the test
    database; rows are committed for real and emptied after the test."""
    from .testing import LiveServer

    server = LiveServer(app)
    try:
        yield server
    finally:
        server.stop()


def _auth_testing(app: Flask) -> t.Any:
    from .state import get_state

    state = get_state(app)
    if not app.config.get("COMPLETE_AUTH") or state.user_model is None:
        pytest.skip(
            "login/auth_client need flask_complete's auth: COMPLETE_AUTH on and a user model "
            "(Complete(app, user_model=User))."
        )
    from .auth import testing

    return testing


@pytest.fixture
def login(app: Flask, client: FlaskClient) -> t.Callable[..., FlaskClient]:
    """``login(user)`` logs ``client`` (or the client given) in as ``user`` and returns it;
    later requests carry the CSRF header."""
    auth_testing = _auth_testing(app)

    def log_in(user: t.Any, to: FlaskClient | None = None) -> FlaskClient:
        target = to if to is not None else client
        auth_testing.login(target, user)
        return target

    return log_in


@pytest.fixture
def auth_user(request: pytest.FixtureRequest, app: Flask, db: SQLAlchemy) -> t.Any:
    """A user of the app's user model in the test database (rolled back after the test), made
    by the model's factory when the factories have one (``UserFactory`` for ``User``)."""
    from .state import get_state

    auth_testing = _auth_testing(app)
    model = get_state(app).user_model
    assert model is not None  # _auth_testing skipped otherwise
    factory = None
    with contextlib.suppress(pytest.FixtureLookupError):
        factory = request.getfixturevalue(_snake(f"{model.__name__}Factory"))
    if factory is not None and getattr(factory._meta, "model", None) is not model:
        factory = None
    try:
        return auth_testing.create_user(factory=factory)
    except auth_testing.UserFieldsError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def auth_client(login: t.Callable[..., FlaskClient], auth_user: t.Any) -> FlaskClient:
    """A test client logged in as ``auth_user``."""
    return login(auth_user)

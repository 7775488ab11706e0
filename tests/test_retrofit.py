"""Retrofitting existing apps (principle 1, "Retrofit first").

``tests/shapes/`` holds four existing apps in layouts common in open-source Flask projects, each
with its own pytest suite (see ``tests/shapes/README.md``). For each one: its suite passes with
flask_complete installed, the retrofit is a patch of under 30 lines, the suite passes unchanged
after it, and tests using the plugin's fixtures run on the app of the suite's own ``app`` fixture,
rolled back, the development database untouched. Then the retrofit bugs, each reproduced alone.
"""

from __future__ import annotations

import difflib
import hashlib
import shutil
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

# pytester removes the modules a test imports when it ends; a dialect imported again re-registers
# its SQL functions (an SAWarning, so an error here). Import what these tests load up front.
import sqlalchemy.dialects.mysql.pymysql
import sqlalchemy.dialects.postgresql.psycopg
from conftest import SERVERS, drop_database, new_database, require_server, unique_name

pytest_plugins = ["pytester"]

SHAPES = Path(__file__).parent / "shapes"
#: Unrelated plugins installed here take seconds to import in every subprocess run.
QUIET = ("-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:faker")
#: Most lines a retrofit may change (added plus removed, as difflib counts them).
MAX_PATCH = 30
STORED_SUFFIX = ".txt"  # conftest.py and test_*.py of a shape are stored as *.py.txt

# -- copying a shape, retrofitting it ------------------------------------------------------------


def _copy_tree(source: Path, dest: Path) -> list[Path]:
    """Copy ``source`` into ``dest``; ``x.py.txt`` becomes ``x.py``. Returns the files written."""
    written = []
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source)
        if relative.name.endswith(".py" + STORED_SUFFIX):
            relative = relative.with_name(relative.name.removesuffix(STORED_SUFFIX))
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def flask_db_init(folder: Path) -> None:
    """Write Flask-Migrate's own ``flask`` template into ``folder`` (what ``flask db init``
    does), keeping the files already there (the shape's revisions)."""
    from alembic import command
    from flask_migrate import Config

    fresh = folder.parent / f".{folder.name}-init"
    config = Config()
    config.set_main_option("script_location", str(fresh))
    config.config_file_name = str(fresh / "alembic.ini")
    command.init(config, str(fresh), template="flask")
    for path in fresh.iterdir():
        if path.is_file() and not (folder / path.name).exists():
            shutil.copyfile(path, folder / path.name)
    shutil.rmtree(fresh)


def copy_shape(name: str, dest: Path) -> Path:
    """The shape's project as its users have it, in ``dest``."""
    _copy_tree(SHAPES / name / "project", dest)
    migrations = dest / "migrations"
    if migrations.is_dir() and not (migrations / "env.py").exists():
        flask_db_init(migrations)
    return dest


def retrofit(name: str, dest: Path) -> str:
    """Apply the shape's retrofit to ``dest``; return it as a unified diff."""
    overlay = SHAPES / name / "retrofit"
    patch = []
    for path in sorted(overlay.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(overlay)
        if relative.name.endswith(".py" + STORED_SUFFIX):
            relative = relative.with_name(relative.name.removesuffix(STORED_SUFFIX))
        target = dest / relative
        old = target.read_text().splitlines(keepends=True) if target.exists() else []
        new = path.read_text().splitlines(keepends=True)
        patch += difflib.unified_diff(old, new, f"a/{relative}", f"b/{relative}", n=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return "".join(patch)


def changed_lines(patch: str) -> int:
    """Lines a unified diff adds or removes (a changed line counts twice)."""
    return sum(
        1
        for line in patch.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    )


def add_plugin_tests(name: str, dest: Path) -> None:
    """The tests a user writes after the retrofit, with the plugin's fixtures."""
    _copy_tree(SHAPES / name / "plugin", dest)


# -- development databases ------------------------------------------------------------------------


@dataclass
class DevDatabase:
    """A real development database with a sentinel row, to prove no test run touched it."""

    url: str
    table: str
    columns: str
    row: str
    kind: str = "sqlite"
    name: str | None = None
    #: The environment variable that names it for the app, if any.
    env_var: str | None = None

    @classmethod
    def on_server(cls, kind: str, table: str, columns: str, row: str, env_var: str) -> DevDatabase:
        require_server(kind)
        name = unique_name("fcdev")
        return cls(f"{SERVERS[kind]}/{name}", table, columns, row, kind, name, env_var)

    def create(self) -> None:
        if self.kind == "sqlite":
            Path(sa.make_url(self.url).database or "").parent.mkdir(parents=True, exist_ok=True)
        elif self.name:
            new_database(self.kind, self.name)
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE TABLE {self.table} ({self.columns})")
                conn.exec_driver_sql(f"INSERT INTO {self.table} VALUES ({self.row})")
        finally:
            engine.dispose()

    def snapshot(self) -> t.Any:
        if self.kind == "sqlite":
            return hashlib.sha256(Path(sa.make_url(self.url).database or "").read_bytes()).digest()
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                tables = sorted(sa.inspect(conn).get_table_names())
                rows = conn.exec_driver_sql(f"SELECT * FROM {self.table}").all()
                return tables, [tuple(r) for r in rows]
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self.kind != "sqlite" and self.name:
            drop_database(self.kind, self.name)


def sqlite_files(root: Path) -> list[str]:
    """Every SQLite database file under ``root``, relative to it."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.read_bytes()[:16] == b"SQLite format 3\x00":
            found.append(str(path.relative_to(root)))
    return sorted(found)


# -- the shapes -----------------------------------------------------------------------------------


@dataclass
class ShapeRun:
    """What one shape's test needs: its suites' sizes and its development databases."""

    name: str
    own_tests: int
    plugin_tests: int
    #: The development databases in use before and after the retrofit (the URL may move).
    dev: t.Callable[[Path], tuple[list[DevDatabase], list[DevDatabase]]]
    env: dict[str, str] = field(default_factory=dict)
    #: A server for the suite's own test database, named by TEST_DATABASE_URL (as CI does).
    test_server: str | None = None


def _factory_config_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # Config's "sqlite:///app.db" (Flask-SQLAlchemy puts it in instance/); after the retrofit
    # the bundle's development default, instance/app-dev.sqlite3.
    def user_table(name: str) -> DevDatabase:
        return DevDatabase(
            f"sqlite:///{root / 'instance' / name}",
            "user",
            "id INTEGER PRIMARY KEY, username VARCHAR(64), email VARCHAR(120), "
            "password_hash VARCHAR(256)",
            "1, 'sentinel', 'sentinel@example.com', NULL",
        )

    return [user_table("app.db")], [user_table("app-dev.sqlite3")]


def _flaskr_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # instance/flaskr.sqlite, the tutorial's file; after the retrofit SQLAlchemy opens it too.
    dev = DevDatabase(
        f"sqlite:///{root / 'instance' / 'flaskr.sqlite'}",
        "user",
        "id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, "
        "password TEXT NOT NULL",
        "1, 'sentinel', 'x'",
    )
    return [dev], [dev]


def _project_template_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # DATABASE_URL (required by its settings.py) on PostgreSQL, as the template's docs set up.
    dev = DevDatabase.on_server(
        "postgres",
        "users",
        "id SERIAL PRIMARY KEY, username VARCHAR(80) UNIQUE NOT NULL",
        "1, 'sentinel'",
        "DATABASE_URL",
    )
    return [dev], [dev]


def _src_layout_dev(root: Path) -> tuple[list[DevDatabase], list[DevDatabase]]:
    # "sqlite:///tasktracker.sqlite" in code, in the instance folder; kept by the retrofit.
    dev = DevDatabase(
        f"sqlite:///{root / 'instance' / 'tasktracker.sqlite'}",
        "project",
        "id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE",
        "1, 'sentinel'",
    )
    return [dev], [dev]


SHAPE_RUNS = {
    "factory_config": ShapeRun("factory_config", 7, 4, _factory_config_dev),
    "flaskr": ShapeRun("flaskr", 24, 3, _flaskr_dev),
    "project_template": ShapeRun(
        "project_template", 15, 4, _project_template_dev, {"SECRET_KEY": "x" * 40}
    ),
    "src_layout": ShapeRun("src_layout", 9, 5, _src_layout_dev),
    "src_layout-mysql": ShapeRun("src_layout", 9, 5, _src_layout_dev, test_server="mysql"),
}


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("warning", "warnings")}


@pytest.mark.parametrize("shape", list(SHAPE_RUNS))
def test_shape_retrofit(
    shape: str, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    """The shape's own suite passes before and after its retrofit (< 30 lines); tests using
    the plugin's fixtures on its own ``app`` fixture pass, rolled back; the dev data untouched."""
    spec = SHAPE_RUNS[shape]
    root = pytester.path
    for key, value in spec.env.items():
        clean_env.setenv(key, value)
    test_database = None
    if spec.test_server:
        test_database = unique_name("test_fcshape")
        url = new_database(spec.test_server, test_database)
        clean_env.setenv("TEST_DATABASE_URL", url)
    copy_shape(spec.name, root)
    databases, after_dev = spec.dev(root)
    try:
        for database in databases:
            database.create()
            if database.env_var:
                clean_env.setenv(database.env_var, database.url)
        before = [d.snapshot() for d in databases]

        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": spec.own_tests}, result.stdout.str()

        patch = retrofit(spec.name, root)
        print(patch)
        assert 0 < changed_lines(patch) < MAX_PATCH, patch
        for database in after_dev:
            if database not in databases:
                database.create()
                databases.append(database)
                before.append(database.snapshot())

        result = pytester.runpytest_subprocess(*QUIET)
        assert _outcomes(result) == {"passed": spec.own_tests}, result.stdout.str()

        add_plugin_tests(spec.name, root)
        result = pytester.runpytest_subprocess(*QUIET, "-v", "tests/test_with_plugin.py")
        assert _outcomes(result) == {"passed": spec.plugin_tests}, result.stdout.str()
        assert [d.snapshot() for d in databases] == before, "a development database changed"
    finally:
        for database in databases + after_dev:
            database.drop()
        if spec.test_server and test_database:
            drop_database(spec.test_server, test_database)

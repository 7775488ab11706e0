"""The session start of the pytest plugin: ``--reuse-db`` without pytest's cache plugin, and
pytest-xdist workers given copies of one migrated template database, run with ``pytester``
against real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_pytest_plugin import Project

from flask_complete.database.stamp import read_values

# Whole processes (make test-slow): pytest runs of a generated project.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]


@pytest.fixture
def project(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A generated project (SQLite unless parametrized), its databases dropped after."""
    found = Project(pytester, getattr(request, "param", "sqlite"))
    try:
        yield found
    finally:
        found.drop_all()


NO_CACHE = ("-p", "no:cacheprovider")

#: A hand-written first revision; each upgrade appends a line to MIGRATIONS_LOG, so a test
#: counts how often the migrations ran.
REVISION = """
import os

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}


def upgrade():
    {body}
    with open(os.environ["MIGRATIONS_LOG"], "a") as log:
        log.write("{revision} " + str(op.get_bind().engine.url.database) + "\\n")


def downgrade():
    pass
"""
FIRST = REVISION.format(
    revision="0001",
    down=None,
    body='op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), '
    'sa.Column("name", sa.String(50), unique=True))',
)
SECOND = REVISION.format(
    revision="0002",
    down='"0001"',
    body='op.add_column("item", sa.Column("note", sa.String(20), nullable=True))',
)

COUNT_TEST = """
from sqlalchemy import func, select
from notes import Item


def test_count(db, request):
    expected = int(request.config.getoption("--expect"))
    assert db.session.scalar(select(func.count()).select_from(Item)) == expected
"""

WORKER_TEST = """
import os
from pathlib import Path

import pytest

from flask_complete.database.stamp import read_stamp


def database_name(db):
    name = db.session.connection().engine.url.database
    return Path(name).name


@pytest.mark.parametrize("n", range(8))
def test_own_copy(db, n):
    name = database_name(db)
    (Path(os.environ["SEEN_DIR"]) / name).touch()
    worker = os.environ["PYTEST_XDIST_WORKER"]
    assert name.split(".")[0].endswith("_" + worker)
    assert read_stamp(db.session.connection()) == "testing"
"""


def migrated_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``project`` with a migrations folder holding the first revision; returns the log that
    each run of a revision appends to."""
    from flask_complete.migrations.migrate import write_migrations

    project.write()
    (project.pytester.path / "instance").mkdir(exist_ok=True)
    folder = project.pytester.path / "migrations"
    write_migrations(folder)
    (folder / "versions" / "0001_item.py").write_text(FIRST)
    log = project.pytester.path / "migrations.log"
    log.touch()
    monkeypatch.setenv("MIGRATIONS_LOG", str(log))
    return log


def ran(log: Path) -> list[str]:
    """The revisions run so far (with the database each ran on)."""
    return log.read_text().splitlines()


def put_row(project: Project, name: str) -> None:
    """Insert a row into the kept test database ``name``, behind the plugin's back."""
    url = (
        f"sqlite:///{project.pytester.path / 'instance' / name}"
        if project.kind == "sqlite"
        else project.dev_url.rsplit("/", 1)[0] + "/" + name
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO item (name) VALUES ('kept')")
    finally:
        engine.dispose()


def read_metadata(project: Project, name: str) -> dict[str, str]:
    url = (
        f"sqlite:///{project.pytester.path / 'instance' / name}"
        if project.kind == "sqlite"
        else project.dev_url.rsplit("/", 1)[0] + "/" + name
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return read_values(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize("project", ["sqlite", "postgres", "mysql"], indirect=True)
def test_reuse_db_without_the_cache_plugin(project: Project, clean_env: pytest.MonkeyPatch) -> None:
    """The fingerprint of what the schema was built from is kept in the test database itself:
    a second ``--reuse-db`` run under ``-p no:cacheprovider`` reuses it (its rows survive, no
    migration runs), a new migration rebuilds it, and a run without the option drops it. The
    terminal summary says which happened."""
    log = migrated_project(project, clean_env)
    project.pytester.makepyfile(test_reuse=COUNT_TEST)
    project.pytester.makeconftest(
        'def pytest_addoption(parser):\n    parser.addoption("--expect", default="0")\n'
    )

    first = project.run("--reuse-db", *NO_CACHE)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        [
            "flask_complete: flask-complete *, flask *, flask-sqlalchemy *, sqlalchemy 2.*",
            "flask_complete: test database *created*kept for --reuse-db*",
        ]
    )
    assert len(ran(log)) == 1
    assert project.exists(project.test_name)
    assert read_metadata(project, project.test_name)["environment"] == "testing"

    put_row(project, project.test_name)
    second = project.run("--reuse-db", "--expect", "1", *NO_CACHE)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["flask_complete: test database *reused*"])
    assert len(ran(log)) == 1, "a reused database runs no migration"

    (project.pytester.path / "migrations" / "versions" / "0002_note.py").write_text(SECOND)
    third = project.run("--reuse-db", "--expect", "0", *NO_CACHE)
    third.assert_outcomes(passed=1)
    third.stdout.fnmatch_lines(["flask_complete: test database *rebuilt*the migrations changed*"])
    assert [line.split()[0] for line in ran(log)] == ["0001", "0001", "0002"]

    # With the cache plugin on, the same: the database decides, not the cache.
    put_row(project, project.test_name)
    project.run("--reuse-db", "--expect", "1").assert_outcomes(passed=1)
    assert len(ran(log)) == 3

    last = project.run(*NO_CACHE)
    last.assert_outcomes(passed=1)
    last.stdout.fnmatch_lines(["flask_complete: test database *dropped at the end*"])
    assert not project.exists(project.test_name)


@pytest.mark.parametrize("project", ["sqlite", "postgres", "mysql"], indirect=True)
def test_xdist_workers_get_copies_of_one_migrated_template(
    project: Project, clean_env: pytest.MonkeyPatch
) -> None:
    """``-n 2``: the migrations run once, on a template database; each worker gets a copy of
    it (a test database by name and by stamp); nothing is left behind. With ``--reuse-db`` the
    template and the copies are kept, and the next run migrates nothing."""
    log = migrated_project(project, clean_env)
    template = project.test_name
    stem, dot, suffix = template.partition(".")
    copies = [f"{stem}_{worker}{dot}{suffix}" for worker in ("gw0", "gw1")]
    project.cleanup += copies
    seen = project.pytester.path / "seen"
    seen.mkdir()
    clean_env.setenv("SEEN_DIR", str(seen))
    project.pytester.makepyfile(test_workers=WORKER_TEST)

    def left() -> list[str]:
        return [name for name in [template, *copies] if project.exists(name)]

    cold = project.run("-n", "2", *NO_CACHE)
    cold.assert_outcomes(passed=8)
    assert sorted(p.name for p in seen.iterdir()) == copies
    assert [line.split()[0] for line in ran(log)] == ["0001"], "the migrations ran once"
    assert Path(ran(log)[0].split()[1]).name == template, "on the template"
    cold.stdout.fnmatch_lines(
        [
            "flask_complete: test database *, derived from * (the template of the xdist "
            "workers' copies: _gw0, _gw1, ...)",
            "flask_complete: ?gw?? test database *copied from*",
        ]
    )
    assert left() == []

    project.run("-n", "2", "--reuse-db", *NO_CACHE).assert_outcomes(passed=8)
    assert len(ran(log)) == 2
    assert left() == [template, *copies]
    for name in copies:
        kept = read_metadata(project, name)
        assert kept["environment"] == "testing"
        assert kept["test_schema"] == read_metadata(project, template)["test_schema"]

    again = project.run("-n", "2", "--reuse-db", *NO_CACHE)
    again.assert_outcomes(passed=8)
    again.stdout.fnmatch_lines(["flask_complete: ?gw?? test database *reused*"])
    assert len(ran(log)) == 2, "kept copies run no migration"

    project.run("-n", "2", *NO_CACHE).assert_outcomes(passed=8)
    assert len(ran(log)) == 3
    assert left() == []


def test_a_template_stamped_development_is_refused(
    project: Project, clean_env: pytest.MonkeyPatch
) -> None:
    """The gate judges the template before any worker copies it: one stamped development (kept
    by --reuse-db, then re-stamped behind the plugin's back) is refused, and no copy is made."""
    log = migrated_project(project, clean_env)
    project.pytester.makepyfile(test_reuse=COUNT_TEST)
    project.pytester.makeconftest(
        'def pytest_addoption(parser):\n    parser.addoption("--expect", default="0")\n'
    )
    project.run("--reuse-db", *NO_CACHE).assert_outcomes(passed=1)
    path = project.pytester.path / "instance" / project.test_name
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE flask_complete_metadata SET value = 'development' WHERE key = 'environment'"
        )
    engine.dispose()
    result = project.run("-n", "2", "--reuse-db", *NO_CACHE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*stamped development*"])
    assert len(ran(log)) == 1
    stem = project.test_name.partition(".")[0]
    assert not list((project.pytester.path / "instance").glob(f"{stem}_gw*"))


def test_reuse_db_keeps_the_session_fixtures_and_a_changed_file_rebuilds(
    project: Project,
) -> None:
    """Rows that --load-fixtures committed are part of what a kept database was built from: a
    second run reuses them (and loads nothing twice); a changed fixture file rebuilds it."""
    project.write()
    fixtures = project.pytester.path / "fixtures"
    fixtures.mkdir()
    (fixtures / "more.json").write_text('[{"model": "Item", "pk": 9, "fields": {"name": "nine"}}]')
    project.pytester.makepyfile(test_reuse=COUNT_TEST)
    project.pytester.makeconftest(
        'def pytest_addoption(parser):\n    parser.addoption("--expect", default="0")\n'
    )
    args = ("--reuse-db", "--load-fixtures", "more", *NO_CACHE)
    project.run(*args, "--expect", "1").assert_outcomes(passed=1)
    put_row(project, project.test_name)
    again = project.run(*args, "--expect", "2")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["flask_complete: test database *reused*"])

    (fixtures / "more.json").write_text(
        '[{"model": "Item", "pk": 9, "fields": {"name": "nine"}},\n'
        ' {"model": "Item", "pk": 10, "fields": {"name": "ten"}}]'
    )
    changed = project.run(*args, "--expect", "2")
    changed.assert_outcomes(passed=1)
    changed.stdout.fnmatch_lines(["*rebuilt*the data fixtures changed*"])
    project.run("--load-fixtures", "more", "--expect", "2", *NO_CACHE).assert_outcomes(passed=1)
    assert not project.exists(project.test_name)


MYSQL_REVISION = REVISION.format(
    revision="0001",
    down=None,
    body='op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), '
    'sa.Column("name", sa.String(50), unique=True, comment="100% unique"))\n'
    '    op.execute("ALTER TABLE item ADD COLUMN shout VARCHAR(50) AS (UPPER(name)) VIRTUAL")\n'
    "    op.execute(\"INSERT INTO item (name) VALUES ('seed')\")\n"
    "    {more}",
)

SEED_TEST = """
import pytest
from sqlalchemy import text


@pytest.mark.parametrize("n", range(6))
def test_seeded(db, n):
    rows = db.session.execute(text("SELECT name, shout FROM item")).all()
    assert [tuple(row) for row in rows] == [("seed", "SEED")]
"""


@pytest.mark.parametrize("project", ["mysql"], indirect=True)
@pytest.mark.parametrize("view", [False, True], ids=["tables", "with-a-view"])
def test_mysql_copies_tables_and_rows_or_migrates_each_worker(
    project: Project, clean_env: pytest.MonkeyPatch, view: bool
) -> None:
    """A MySQL/MariaDB copy has the template's tables (a generated column, a comment with a
    ``%``) and the rows its migrations wrote; a template with a view is not copied, and each
    worker runs the migrations itself."""
    log = migrated_project(project, clean_env)
    more = 'op.execute("CREATE VIEW item_names AS SELECT name FROM item")' if view else "pass"
    revision = project.pytester.path / "migrations" / "versions" / "0001_item.py"
    revision.write_text(MYSQL_REVISION.replace("{more}", more))
    project.cleanup += [f"{project.test_name}_gw0", f"{project.test_name}_gw1"]
    project.pytester.makepyfile(test_seed=SEED_TEST)
    result = project.run("-n", "2", *NO_CACHE)
    result.assert_outcomes(passed=6)
    if view:
        assert len(ran(log)) >= 2, "the template, then each worker that could not copy it"
    else:
        assert len(ran(log)) == 1
    for name in (project.test_name, f"{project.test_name}_gw0", f"{project.test_name}_gw1"):
        assert not project.exists(name)


def test_a_worker_that_cannot_drop_its_copy_fails_the_run(project: Project) -> None:
    """A copy the gate refuses to drop at the end (a test stamped it production) is reported
    by the controller, and fails the run."""
    project.write()
    project.pytester.makepyfile(
        test_restamp="""
        from flask_complete.database import stamp

        def test_restamp(transactional_db):
            with transactional_db.engine.begin() as conn:
                stamp.stamp(conn, "production")
        """
    )
    result = project.run("-n", "2", *NO_CACHE)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["flask_complete: ?gw?? could not drop a test database*stamped production*"]
    )

"""Migrations: our template, the per-app ``db`` group, the helpers, SQLite batch changes, the
server-default comparator on three databases, the drop guard, enum downgrades and MODELS."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import typing as t
import uuid
from pathlib import Path

import click
import flask_migrate.cli
import pytest
import sqlalchemy as sa
from conftest import track
from dbapps import Apps, Models, apps, build_models, fresh_db, rows, run, seed_for
from flask import Flask
from flask_migrate import Migrate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Boolean, DateTime, Integer, Numeric, String, Text, func, text, true
from sqlalchemy.orm import Mapped, mapped_column

from flask_complete import Complete
from flask_complete.migrations import migrate as m

__all__ = ["apps"]  # fixture


def sqlite_url(tmp_path: Path, name: str = "app.sqlite3") -> str:
    return f"sqlite:///{tmp_path / name}"


def migrate(app: Flask, message: str, *extra: str) -> Path:
    """``flask db migrate`` and the revision file it wrote."""
    versions = app.extensions["complete"].migrations_dir / "versions"
    before = set(versions.glob("*.py")) if versions.exists() else set()
    result = run(app, "db", "migrate", "-m", message, *extra)
    assert result.exit_code == 0, result.output
    (written,) = set(versions.glob("*.py")) - before
    return written


# -- template and wiring ------------------------------------------------------------------------


def test_db_init_writes_our_template(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(sqlite_url(tmp_path))
    result = run(app, "db", "init")
    assert result.exit_code == 0, result.output
    env_py = (tmp_path / "migrations" / "env.py").read_text()
    assert "migrations.connect(db)" in env_py
    assert "get_engine" not in env_py
    assert "migrations.import_models(current_app)" in env_py
    assert (tmp_path / "migrations" / "alembic.ini").is_file()
    assert (tmp_path / "migrations" / "versions").is_dir()
    assert "kept" in run(app, "db", "init").output


def test_complete_init_writes_migrations_once(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(sqlite_url(tmp_path))
    result = run(app, "complete", "init")
    assert result.exit_code == 0, result.output
    assert "wrote   migrations/" in result.output
    assert "migration_env" in (tmp_path / "migrations" / "env.py").read_text()
    (tmp_path / "migrations" / "env.py").write_text("# mine\n")
    result = run(app, "complete", "init")
    assert "kept    migrations/: it exists" in result.output
    assert (tmp_path / "migrations" / "env.py").read_text() == "# mine\n"


def test_each_app_gets_its_own_group(apps: Apps, tmp_path: Path) -> None:
    one = apps.make(sqlite_url(tmp_path, "one.sqlite3"))
    two = apps.make(sqlite_url(tmp_path, "two.sqlite3"))
    assert isinstance(one.cli.commands["db"], m.DbGroup)
    assert one.cli.commands["db"] is not two.cli.commands["db"]
    # Flask-Migrate's shared group is left as it was.
    assert "prepare" not in flask_migrate.cli.db.commands
    names = one.cli.commands["db"].list_commands(click.Context(one.cli.commands["db"]))
    assert {"upgrade", "migrate", "downgrade", "prepare", "seed", "reset", "drop"} <= set(names)


def test_app_that_ran_migrate_gets_our_group(tmp_path: Path) -> None:
    models = build_models()
    app = Flask("retrofit", instance_path=str(tmp_path / "instance"))
    app.config.update(SQLALCHEMY_DATABASE_URI=sqlite_url(tmp_path), SEEDS=[])
    models.db.init_app(app)
    Migrate(app, models.db, directory=str(tmp_path / "mine"))
    assert app.cli.commands["db"] is flask_migrate.cli.db
    Complete(app, db=models.db, env="development", root=tmp_path)
    assert isinstance(app.cli.commands["db"], m.DbGroup)
    assert app.extensions["complete"].migrations_dir == tmp_path / "mine"
    assert "mine" in run(app, "db", "init").output
    assert (tmp_path / "mine" / "env.py").is_file()
    with app.app_context():
        models.db.engine.dispose()


def _migrate_before(app: Flask, models: Models, directory: str) -> Migrate:
    return Migrate(app, models.db, directory=directory)


def _init_app_before(app: Flask, models: Models, directory: str) -> Migrate:
    migrate = Migrate()
    migrate.init_app(app, models.db, directory=directory)
    return migrate


@pytest.mark.parametrize(
    "order", ["Migrate(app, db) after", "Migrate(app, db) before", "init_app before"]
)
def test_app_migrate_before_or_after_complete(order: str, tmp_path: Path) -> None:
    """Either way the app's `flask db` has our commands, on the app's database and its folder."""
    models = build_models()
    app = track(Flask("retrofit", instance_path=str(tmp_path / "instance")))
    app.config.update(SQLALCHEMY_DATABASE_URI=sqlite_url(tmp_path), SEEDS=seed_for(models))
    folder = str(tmp_path / "mine")
    if order == "Migrate(app, db) before":
        migrate = _migrate_before(app, models, folder)
    elif order == "init_app before":
        migrate = _init_app_before(app, models, folder)
    Complete(app, db=models.db, env="development", root=tmp_path)
    if order == "Migrate(app, db) after":
        migrate = Migrate(app, models.db, directory=folder)
        assert app.cli.commands["db"] is flask_migrate.cli.db  # Flask-Migrate registered it
    assert m.ensure_migrate(app) is migrate
    result = run(app, "db", "create")
    assert result.exit_code == 0, result.output
    assert "created database" in result.output
    assert f"wrote   {folder}" in run(app, "db", "init").output
    result = run(app, "db", "migrate", "-m", "first")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "mine" / "versions").glob("*.py"))) == 1
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "seeded (team +2, member +3)" in result.output
    assert run(app, "db", "check").exit_code == 0
    assert run(app, "db", "seed").exit_code == 0
    assert run(app, "db", "reset", "--yes").exit_code == 0
    assert rows(app, "member") == 3
    assert not (tmp_path / "migrations").exists()
    # Flask-Migrate's shared group is left as it was.
    assert "prepare" not in flask_migrate.cli.db.commands
    assert flask_migrate.cli.db.get_command(click.Context(flask_migrate.cli.db), "create") is None


@pytest.mark.slow
@pytest.mark.parametrize("order", ["after", "before"])
def test_app_migrate_from_another_working_directory(order: str, tmp_path: Path) -> None:
    """The real `flask`, run outside the project: Migrate's relative folder is the project's."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "settings.toml").write_text("[default]\n")
    before = "Migrate(app, db)" if order == "before" else ""
    after = "Migrate(app, db)" if order == "after" else ""
    (project / "retro.py").write_text(
        textwrap.dedent(
            f"""
            from flask import Flask
            from flask_migrate import Migrate
            from sqlalchemy.orm import Mapped, mapped_column
            from flask_complete import Complete, db

            app = Flask(__name__)
            {before}
            Complete(app)
            {after}

            class Item(db.Model):
                id: Mapped[int] = mapped_column(primary_key=True)
            """
        )
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k != "DATABASE_URL"
    }
    env.update(FLASK_APP="retro", PYTHONPATH=str(project))

    def flask(cwd: Path, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "db", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    flask(project, "init")
    flask(elsewhere, "migrate", "-m", "items")
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 1
    assert "upgraded from an empty schema" in flask(elsewhere, "prepare")
    assert "matches the models" in flask(elsewhere, "check")
    assert list(elsewhere.iterdir()) == []


# -- where the migrations folder is -------------------------------------------------------------

SRC_APP = """
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class Item(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(50))


def create_app():
    app = Flask(__name__)
    Complete(app, db=db)
    migrate.init_app(app, db{directory})
    return app
"""

SRC_TEST = """
import sqlalchemy as sa

from myapp import Item


def test_schema_from_the_migrations(db):
    assert sa.inspect(db.session.connection()).has_table("alembic_version")
    db.session.add(Item(name=None))
    db.session.flush()
"""

#: layout -> (the folder, Migrate's directory argument, settings.toml, where the app's own docs
#: run `flask db init`).
LAYOUTS = {
    "beside the package": ("src/migrations", "", "", "src"),
    "Migrate(directory=...)": ("src/migrations", ', directory="src/migrations"', "", "."),
    "MIGRATIONS_DIR": ("db/migrations", "", 'MIGRATIONS_DIR = "db/migrations"\n', "."),
}
#: Unrelated plugins installed here take seconds to import in every subprocess run.
QUIET = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:faker",
)


class SrcProject:
    """A `src/` layout project: `src/myapp`, pyproject.toml naming the app for the plugin,
    `tests/`; commands run with the real `flask` and `pytest` from any folder."""

    def __init__(self, root: Path, layout: str) -> None:
        self.root = root
        folder, directory, settings, home = LAYOUTS[layout]
        self.folder = root / folder
        self.home = root / home
        (root / "src" / "myapp").mkdir(parents=True)
        (root / "tests").mkdir()
        (root / "src" / "myapp" / "__init__.py").write_text(
            SRC_APP.replace("{directory}", directory)
        )
        (root / "tests" / "test_schema.py").write_text(SRC_TEST)
        (root / "settings.toml").write_text("[default]\n" + settings)
        (root / "pyproject.toml").write_text(
            '[project]\nname = "myapp"\nversion = "0"\n\n[tool.pytest.ini_options]\n'
            'pythonpath = ["src"]\nflask_app = "myapp:create_app()"\n'
        )
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FLASK_") and k != "DATABASE_URL"
        }
        path = os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))
        self.env.update(FLASK_APP="myapp:create_app", PYTHONPATH=path)

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=cwd, env=self.env, capture_output=True, text=True
        )

    def flask(self, cwd: Path, *args: str) -> str:
        done = self.run(cwd, "flask", "db", *args)
        assert done.returncode == 0, (cwd, args, done.stdout, done.stderr)
        return done.stdout + done.stderr

    def pytest(self, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.run(cwd, "pytest", str(self.root / "tests"), *QUIET)

    def env_files(self) -> list[Path]:
        return sorted(self.root.parent.rglob("env.py"))


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_apps_folder_from_any_working_directory(layout: str, tmp_path: Path) -> None:
    """`src/migrations` beside the package, `Migrate(directory=...)`, or MIGRATIONS_DIR: every
    command and the plugin use that folder, run from the project root or from elsewhere (the
    plugin built the test schema with create_all from the root; MIGRATIONS_DIR was ignored)."""
    project = SrcProject(tmp_path / "project", layout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project.flask(project.home, "init")
    project.flask(project.home, "migrate", "-m", "items")
    assert project.env_files() == [project.folder / "env.py"]
    (revision,) = (project.folder / "versions").glob("*.py")
    head = revision.name.partition("_")[0]
    for cwd in (project.root, elsewhere):
        done = project.pytest(cwd)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout
        assert f"-> {head}" in project.flask(cwd, "upgrade")
        assert "matches the models" in project.flask(cwd, "check")
        if cwd == project.root:
            project.flask(cwd, "downgrade", "base")
    assert project.env_files() == [project.folder / "env.py"]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_a_folder_without_env_py_stops_the_plugin_and_commands(tmp_path: Path) -> None:
    """The plugin and `flask db prepare` name the folder and the fix, never create_all."""
    project = SrcProject(tmp_path / "project", "beside the package")
    project.flask(project.home, "init")
    project.flask(project.home, "migrate", "-m", "items")
    (project.folder / "env.py").unlink()
    done = project.pytest(tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"The migrations folder {project.folder}" in done.stdout
    assert "has no env.py" in done.stdout
    assert "`flask db init`" in done.stdout
    done = project.run(tmp_path, "flask", "db", "prepare")
    assert done.returncode == 1
    assert f"The migrations folder {project.folder}" in done.stderr
    assert "create_all" not in done.stdout
    assert "Traceback" not in done.stderr
    # `flask db init` adds what is missing and keeps the revision.
    project.flask(project.home, "init")
    assert (project.folder / "env.py").is_file()
    assert "upgraded from an empty schema" in project.flask(tmp_path, "prepare")


FOLDER_FILES = ("env.py", "alembic.ini", "script.py.mako")


def _break(folder: Path, name: str, how: str) -> None:
    (folder / name).unlink()
    if how == "a link to nowhere":
        (folder / name).symlink_to(folder / "nowhere" / name)
    elif how == "a folder":
        (folder / name).mkdir()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lacking=st.sets(st.sampled_from(FOLDER_FILES), min_size=1),
    how=st.sampled_from(["missing", "a link to nowhere", "a folder"]),
)
def test_an_incomplete_folder_is_an_error(
    apps: Apps, tmp_path: Path, lacking: set[str], how: str
) -> None:
    """Whatever a folder lacks, or cannot read, of env.py, alembic.ini and script.py.mako: every
    command names the folder, what it lacks and the fix, and nothing is built with
    create_all."""
    app = apps.make(sqlite_url(tmp_path), seed_in_code=False)
    folder = tmp_path / "migrations"
    if folder.exists():
        shutil.rmtree(folder)
    run(app, "db", "drop", "--yes")
    run(app, "db", "init")
    for name in lacking:
        _break(folder, name, how)
    for command in (("db", "prepare"), ("db", "upgrade"), ("db", "current")):
        result = run(app, *command)
        assert result.exit_code == 1, (command, result.output)
        assert f"The migrations folder {folder}" in result.output
        assert all(name in result.output for name in lacking)
        assert "`flask db init`" in result.output
        assert "create_all" not in result.output.replace("nothing falls back to create_all", "")
    assert not (tmp_path / "app.sqlite3").exists() or sqlite_tables(tmp_path / "app.sqlite3") <= {
        "flask_complete_metadata"
    }
    result = run(app, "db", "init")
    assert result.exit_code == 0, result.output
    if how == "missing":
        result = run(app, "db", "prepare")
        assert result.exit_code == 0, result.output
        assert "create_all" not in result.output
        assert "alembic_version" in sqlite_tables(tmp_path / "app.sqlite3")


def test_migrate_directory_wins_over_migrations_dir_and_the_conflict_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "settings.toml").write_text('[default]\nMIGRATIONS_DIR = "theirs"\n')
    for directory, expected in (("mine", tmp_path / "mine"), (None, tmp_path / "theirs")):
        models = build_models()
        app = track(Flask("retrofit", instance_path=str(tmp_path / "instance")))
        app.config.update(SQLALCHEMY_DATABASE_URI=sqlite_url(tmp_path))
        if directory:
            Migrate(app, models.db, directory=str(tmp_path / directory))
        else:
            Migrate(app, models.db)  # Flask-Migrate's default: the setting wins
        caplog.clear()
        Complete(app, db=models.db, env="development", root=tmp_path)
        assert m.migrations_dir(app) == expected
        assert f"wrote   {expected}" in run(app, "db", "init").output
        conflict = [r.getMessage() for r in caplog.records if "is not used" in r.getMessage()]
        if directory:
            (message,) = conflict
            assert str(tmp_path / "mine") in message
            assert "MIGRATIONS_DIR, from settings.toml" in message
            assert str(tmp_path / "theirs") in message
            assert "Delete MIGRATIONS_DIR from settings.toml" in message
        else:
            assert conflict == []


def test_own_db_command_is_kept(tmp_path: Path) -> None:
    app = Flask("own", instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlite_url(tmp_path)

    @app.cli.command("db")
    def own() -> None:
        click.echo("mine")

    Complete(app, db=fresh_db(), env="development", root=tmp_path)
    assert app.cli.commands["db"] is own
    assert any("own `db` command" in note for note in app.extensions["complete"].notes)


def test_start_up_does_not_import_alembic(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from flask import Flask
        from flask_complete import Complete
        app = Flask("x", instance_path=sys.argv[1] + "/instance")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        Complete(app, env="development", root=sys.argv[1])
        assert "db" in app.cli.commands
        print(sorted(m for m in ("alembic", "flask_migrate", "mako") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# -- helpers ------------------------------------------------------------------------------------


def test_upgrade_and_revision_helpers(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(sqlite_url(tmp_path))
    assert m.head_revisions(app) == set()
    with pytest.raises(click.ClickException, match="flask complete init"):
        m.upgrade(app)
    run(app, "db", "init")
    first = migrate(app, "first")
    head = first.name.partition("_")[0]
    assert m.head_revisions(app) == {head}
    assert m.current_revisions(app) == set()
    m.upgrade(app)
    assert m.current_revisions(app) == {head}
    assert rows(app, "member") == 0
    with app.app_context():
        # As under the pytest plugin's isolation: a connection in place of the engine.
        engines = app.extensions["complete"].db.engines
        engine = engines[None]
        with engine.connect() as conn:
            engines[None] = conn
            try:
                assert m.current_revisions(app) == {head}
            finally:
                engines[None] = engine
    m.downgrade(app, "base")
    assert m.current_revisions(app) == set()


# -- SQLite batch mode --------------------------------------------------------------------------


def columns(app: Flask, table: str) -> dict[str, str]:
    with app.app_context():
        engine = app.extensions["complete"].db.engine
        return {c["name"]: str(c["type"]) for c in sa.inspect(engine).get_columns(table)}


def test_sqlite_drop_column_and_change_type(apps: Apps, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    app = apps.make(url)
    run(app, "db", "init")
    migrate(app, "first")
    assert run(app, "db", "prepare").exit_code == 0

    dropped = apps.make(url, build_models(with_note=False))
    script = migrate(dropped, "drop note").read_text()
    assert "batch_alter_table('member'" in script
    assert "drop_column('note')" in script
    assert run(dropped, "db", "upgrade").exit_code == 0
    assert "note" not in columns(dropped, "member")
    assert rows(dropped, "member") == 3
    assert run(dropped, "db", "downgrade").exit_code == 0
    assert "note" in columns(dropped, "member")
    assert run(dropped, "db", "upgrade").exit_code == 0

    retyped = apps.make(url, build_models(with_note=False, email_type=sa.Text()))
    script = migrate(retyped, "email as text").read_text()
    assert "type_=sa.Text()" in script
    assert run(retyped, "db", "upgrade").exit_code == 0
    assert columns(retyped, "member")["email"] == "TEXT"
    assert rows(retyped, "member") == 3
    assert run(retyped, "db", "check").exit_code == 0
    assert run(retyped, "db", "downgrade").exit_code == 0
    assert columns(retyped, "member")["email"] == "VARCHAR(100)"
    assert rows(retyped, "member") == 3


# -- server defaults on three databases ---------------------------------------------------------


def defaults_models(x_default: str = "x") -> Models:
    db = fresh_db()

    class Defaults(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "defaults"
        id: Mapped[int] = mapped_column(primary_key=True)
        empty: Mapped[str] = mapped_column(String(20), server_default="")
        x: Mapped[str] = mapped_column(String(20), server_default=x_default)
        quote: Mapped[str] = mapped_column(String(20), server_default="it's")
        zero: Mapped[int] = mapped_column(Integer, server_default="0")
        zero_sql: Mapped[int] = mapped_column(Integer, server_default=text("0"))
        flag: Mapped[bool] = mapped_column(Boolean, server_default=true())
        at: Mapped[str] = mapped_column(DateTime, server_default=func.now())
        at_sql: Mapped[str] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))
        price: Mapped[float] = mapped_column(Numeric(10, 2), server_default="1.50")
        plain: Mapped[str | None] = mapped_column(String(20))

    return Models(db)


def test_server_defaults_do_not_drift(database_url: str, apps: Apps) -> None:
    app = apps.make(database_url, defaults_models(), SEEDS=[])
    run(app, "db", "init")
    migrate(app, "defaults")
    assert run(app, "db", "upgrade").exit_code == 0
    result = run(app, "db", "check")
    assert result.exit_code == 0, result.output

    changed = apps.make(database_url, defaults_models(x_default="y"), SEEDS=[])
    result = run(changed, "db", "check")
    assert result.exit_code == 1
    assert "column defaults.x: default is 'x'" in result.output
    assert "y in the models" in result.output


@pytest.mark.parametrize(
    ("reflected", "rendered", "arg", "differs"),
    [
        ("('')", "", "", False),
        ("''::character varying", "", "", False),
        ("'it''s'", "it's", "it's", False),
        ("'x'::character varying", "y", "y", True),
        ("'0'", "0", "0", False),
        ("1.50", "1.5", "1.5", False),
        ("current_timestamp()", "now()", None, False),
        ("(CURRENT_TIMESTAMP)", "CURRENT_TIMESTAMP", None, False),
        ("1", "true", None, False),
        ("nextval('s'::regclass)", "nextval('t'::regclass)", None, None),
    ],
)
def test_compare_server_default(
    reflected: str, rendered: str, arg: str | None, differs: bool | None
) -> None:
    default = sa.DefaultClause(arg if arg is not None else sa.text(rendered))
    assert m.compare_server_default(None, None, None, reflected, default, rendered) is differs


# -- drop guard, enums, MODELS ------------------------------------------------------------------


def test_autogenerate_keeps_tables_no_model_declares(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(sqlite_url(tmp_path))
    run(app, "db", "init")
    migrate(app, "first")
    run(app, "db", "upgrade")
    with app.app_context(), app.extensions["complete"].db.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE legacy (id INTEGER PRIMARY KEY)"))
    result = run(app, "db", "migrate", "-m", "nothing")
    assert result.exit_code == 0
    assert len(list((tmp_path / "migrations" / "versions").glob("*.py"))) == 1
    assert run(app, "db", "check").exit_code == 0

    script = migrate(app, "drop legacy", "-x", "allow_drop=legacy").read_text()
    assert "op.drop_table('legacy')" in script


def account_models(*values: str) -> Models:
    db = fresh_db()

    class Account(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str] = mapped_column(sa.Enum(*values, name="account_status"))

    return Models(db)


def test_enum_type_dropped_on_downgrade(apps: Apps, pg_url: str) -> None:
    app = apps.make(pg_url, account_models("active", "gone"), SEEDS=[])
    run(app, "db", "init")
    script = migrate(app, "accounts").read_text()
    assert "sa.Enum(name='account_status').drop(op.get_bind(), checkfirst=True)" in script
    for command in (["upgrade"], ["downgrade", "base"], ["upgrade"]):
        result = run(app, "db", *command)
        assert result.exit_code == 0, result.output
    assert run(app, "db", "check").exit_code == 0


def test_new_enum_value_is_detected_and_migrated(database_url: str, apps: Apps) -> None:
    app = apps.make(database_url, account_models("active", "gone"), SEEDS=[])
    run(app, "db", "init")
    migrate(app, "accounts")
    assert run(app, "db", "upgrade").exit_code == 0
    grown = apps.make(database_url, account_models("active", "gone", "suspended"), SEEDS=[])
    result = run(grown, "db", "check")
    assert result.exit_code == 1
    assert "column account.status:" in result.output
    if database_url.startswith("postgresql"):
        assert "enum account_status lacks suspended in the database" in result.output
        script = migrate(grown, "suspended").read_text()
        assert "ALTER TYPE account_status ADD VALUE IF NOT EXISTS 'suspended'" in script
    else:
        migrate(grown, "suspended")
    result = run(grown, "db", "upgrade")
    assert result.exit_code == 0, result.output
    result = run(grown, "db", "check")
    assert result.exit_code == 0, result.output
    with grown.app_context(), grown.extensions["complete"].db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO account (status) VALUES ('suspended')"))


@pytest.fixture
def late_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Models, str]:
    """A database whose ``late`` table is declared only when the returned module is imported."""
    name = f"fc_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from sqlalchemy.orm import Mapped, mapped_column
            from dbapps import fresh_db

            db = fresh_db()

            def declare():
                class Late(db.Model):
                    __tablename__ = "late"
                    id: Mapped[int] = mapped_column(primary_key=True)
            """
        )
    )
    (tmp_path / f"{name}_late.py").write_text(f"from {name} import declare\ndeclare()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return Models(__import__(name).db), f"{name}_late"


def test_models_setting_is_imported(
    apps: Apps, tmp_path: Path, late_models: tuple[Models, str]
) -> None:
    models, module = late_models
    app = apps.make(sqlite_url(tmp_path), models, SEEDS=[], MODELS=[module])
    run(app, "db", "init")
    assert "op.create_table('late'" in migrate(app, "late").read_text()

    bad = apps.make(sqlite_url(tmp_path, "b.sqlite3"), SEEDS=[], MODELS=["no_such_models"])
    result = run(bad, "db", "migrate")
    assert result.exit_code == 1
    assert "MODELS lists 'no_such_models', which does not import" in result.output


def test_create_all_imports_models_first(
    apps: Apps, tmp_path: Path, late_models: tuple[Models, str]
) -> None:
    models, module = late_models
    app = apps.make(sqlite_url(tmp_path), models, SEEDS=[], MODELS=module)
    result = run(app, "db", "prepare")
    assert "create_all (no migrations folder)" in result.output
    assert rows(app, "late") == 0


def unique_models(unique: bool) -> Models:
    db = fresh_db()

    class Tag(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "tag"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40), unique=unique)

    return Models(db)


def test_dropped_unique_constraint_is_named(database_url: str, apps: Apps) -> None:
    app = apps.make(database_url, unique_models(unique=True), SEEDS=[])
    run(app, "db", "init")
    assert "name=op.f('uq_tag_name')" in migrate(app, "tags").read_text()
    assert run(app, "db", "upgrade").exit_code == 0
    assert run(app, "db", "check").exit_code == 0
    relaxed = apps.make(database_url, unique_models(unique=False), SEEDS=[])
    result = run(relaxed, "db", "check")
    assert result.exit_code == 1
    assert "uq_tag_name on tag: in the database, not the models" in result.output


def test_prepare_refuses_tables_without_a_revision(apps: Apps, tmp_path: Path) -> None:
    models = build_models()
    app = apps.make(sqlite_url(tmp_path), models)
    run(app, "db", "init")
    migrate(app, "first")
    with app.app_context():
        models.db.create_all()
    result = run(app, "db", "prepare")
    assert result.exit_code == 1
    assert "no migration revision (made with create_all?)" in result.output
    assert "flask db stamp" in result.output
    # Whose tables they are is said first: an unstamped database with tables is not re-stamped.
    assert "`flask db environment development`" in result.output
    assert run(app, "db", "stamp", "head").exit_code == 2
    assert run(app, "db", "environment", "development").exit_code == 0
    assert run(app, "db", "stamp", "head").exit_code == 0
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "seeded (team +2, member +3)" in result.output


def test_rename_looking_change_warns(
    apps: Apps, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqlite_url(tmp_path)
    app = apps.make(url, account_models("a"), SEEDS=[])
    run(app, "db", "init")
    migrate(app, "accounts")
    run(app, "db", "upgrade")
    db = fresh_db()

    class Account(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        state: Mapped[str] = mapped_column(sa.Enum("a", name="account_status"))

    renamed = apps.make(url, Models(db), SEEDS=[])
    migrate(renamed, "rename")
    assert "Table account loses status and gains state. If that is a rename" in caplog.text


# -- SQLite: one transaction, foreign keys off and checked ---------------------------------------


def write_revision(app: Flask, name: str, upgrade: str, downgrade: str = "pass") -> str:
    """A hand-written revision after the current head; its id."""
    (head,) = m.head_revisions(app)
    revision = uuid.uuid4().hex[:12]

    def indented(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), "    ")

    body = (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {head!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n{indented(upgrade)}\n\n\ndef downgrade():\n{indented(downgrade)}\n"
    )
    folder = app.extensions["complete"].migrations_dir / "versions"
    (folder / f"{revision}_{name}.py").write_text(body)
    return revision


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in found}


def version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture
def seeded(apps: Apps, tmp_path: Path) -> Flask:
    """A SQLite file at head with two teams and three members referencing them."""
    app = apps.make(sqlite_url(tmp_path))
    run(app, "db", "init")
    migrate(app, "first")
    assert run(app, "db", "prepare").exit_code == 0
    return app


def test_sqlite_alters_a_referenced_table_with_rows(seeded: Flask, tmp_path: Path) -> None:
    write_revision(
        seeded,
        "wider_team_name",
        """
        with op.batch_alter_table("team", recreate="always") as batch_op:
            batch_op.alter_column("name", type_=sa.String(80))
        """,
        """
        with op.batch_alter_table("team", recreate="always") as batch_op:
            batch_op.alter_column("name", type_=sa.String(50))
        """,
    )
    result = run(seeded, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert columns(seeded, "team")["name"] == "VARCHAR(80)"
    assert (rows(seeded, "team"), rows(seeded, "member")) == (2, 3)
    assert run(seeded, "db", "downgrade").exit_code == 0
    assert columns(seeded, "team")["name"] == "VARCHAR(50)"
    assert not any(
        name.startswith("_alembic_tmp") for name in sqlite_tables(tmp_path / "app.sqlite3")
    )
    # The app's connections still enforce foreign keys.
    with seeded.app_context(), seeded.extensions["complete"].db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            conn.exec_driver_sql("INSERT INTO member (team_id, email, note) VALUES (99, 'x', '')")


def test_sqlite_failed_migration_leaves_no_temporary_table(seeded: Flask, tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    before = version(path)
    write_revision(
        seeded,
        "one_member_per_team",
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        with op.batch_alter_table("member", recreate="always") as batch_op:
            batch_op.create_unique_constraint("uq_member_team_id", ["team_id"])
        """,
    )
    for _ in range(2):  # the retry fails for the same reason, not "already exists"
        result = run(seeded, "db", "upgrade")
        assert result.exit_code == 1
        assert "UNIQUE constraint failed: _alembic_tmp_member.team_id" in str(result.exception)
        assert sqlite_tables(path) == {
            "alembic_version",
            "flask_complete_metadata",
            "team",
            "member",
        }
        assert version(path) == before
        assert rows(seeded, "member") == 3
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM member WHERE email = 'b@x.test'")
    result = run(seeded, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "audit" in sqlite_tables(path)


def test_sqlite_foreign_keys_are_checked_before_the_commit(seeded: Flask, tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    before = version(path)
    write_revision(seeded, "lose_a_team", """op.execute("DELETE FROM team WHERE name = 'red'")""")
    result = run(seeded, "db", "upgrade")
    assert result.exit_code == 1
    assert "The migration leaves 2 row(s) whose foreign key points at no row:" in result.output
    assert "  - member row 1: no matching row in team" in result.output
    assert "Nothing was applied" in result.output
    assert (rows(seeded, "team"), version(path)) == (2, before)


def test_sqlite_migration_on_an_engine_that_emits_begin(seeded: Flask, tmp_path: Path) -> None:
    """The pytest plugin's test engines already BEGIN themselves: no second BEGIN."""
    with seeded.app_context():
        engine = seeded.extensions["complete"].db.engine

        @sa.event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection: t.Any, record: t.Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        engine.dispose()
    write_revision(
        seeded,
        "one_member_per_team",
        """
        with op.batch_alter_table("member", recreate="always") as batch_op:
            batch_op.create_unique_constraint("uq_member_team_id", ["team_id"])
        """,
    )
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE constraint failed"):
        m.upgrade(seeded)
    assert "_alembic_tmp_member" not in sqlite_tables(tmp_path / "app.sqlite3")
    with sqlite3.connect(tmp_path / "app.sqlite3") as conn:
        conn.execute("DELETE FROM member WHERE email = 'b@x.test'")
    m.upgrade(seeded)
    assert m.current_revisions(seeded) == m.head_revisions(seeded)


# -- a plain `str` without a length on MySQL ----------------------------------------------------


def unbounded_models() -> Models:
    """The quickstart's `title: Mapped[str]` on a base of the user's own, without the bundle's
    type map: a VARCHAR without a length."""
    db = fresh_db()

    class Note(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str] = mapped_column(Text)
        code: Mapped[str] = mapped_column(String(20))

    return Models(db, Note)


def test_a_string_without_a_length_is_named_before_mysql_refuses_it(
    apps: Apps, tmp_path: Path, mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`flask db migrate` names the column and the fix (a warning elsewhere, refused on MySQL);
    `flask db upgrade` of such a revision on MySQL says so in one paragraph, not a traceback."""
    models = unbounded_models()
    sqlite_app = apps.make(sqlite_url(tmp_path), models, seed_in_code=False)
    run(sqlite_app, "db", "init")
    assert "sa.String()" in migrate(sqlite_app, "notes").read_text()
    warned = [r.getMessage() for r in caplog.records if "note.title" in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert "MySQL and MariaDB refuse it" in warned[0]
    assert "String(200)" in warned[0]
    assert "note.body" not in caplog.text and "note.code" not in caplog.text

    mysql_app = apps.make(mysql_url, models, seed_in_code=False)
    result = run(mysql_app, "db", "upgrade")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "in table 'note', column 'title'" in result.output
    assert "String(200)" in result.output
    assert "sa.String(length=200)" in result.output  # the revision needs it too

    fresh = apps.make(mysql_url, models, seed_in_code=False, MIGRATIONS_DIR="fresh")
    run(fresh, "db", "init")
    result = run(fresh, "db", "migrate", "-m", "notes")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "note.title" in result.output
    assert "String(200)" in result.output
    assert list((tmp_path / "fresh" / "versions").glob("*.py")) == []

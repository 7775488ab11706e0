"""Apps with several databases (``SQLALCHEMY_BINDS``, with and without a default one) through
every ``flask db`` command, the migrations (one chain, a ``upgrade_<bind>()`` per database),
``flask complete check``, the health endpoint and the settings."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa

# pytester drops the modules a run imported; a dialect imported again warns (an error here).
import sqlalchemy.dialects.postgresql.psycopg
from conftest import SERVERS, database_exists, require_server, server_database, unique_name
from dbapps import Apps, fresh_db, run
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_complete import Complete
from flask_complete.database import environments
from flask_complete.database import stamp as dbenv
from flask_complete.migrations import migrate as m

pytest_plugins = ["pytester"]
STRONG = "vJ3lW9n0Qm2sX7yZp4rT8uK1eH6cB5aD0fG3hJ9kL2mN7oP4qR1sT8uV5wX2yZ0a"


class Models(t.NamedTuple):
    db: SQLAlchemy
    Account: t.Any
    Event: t.Any
    Team: t.Any


def bind_models(default: bool = False, extra: bool = False) -> Models:
    """``account`` and ``event`` on the ``main`` bind, ``team`` on the default database when
    ``default`` (else on ``main`` too), ``metric`` rows on the ``analytics`` bind."""
    db = fresh_db()

    class Account(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "main"
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)

    class Event(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "analytics"
        __tablename__ = "event"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(String(30))
        if extra:
            source: Mapped[str | None] = mapped_column(String(30))

    class Team(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = None if default else "main"
        __tablename__ = "team"
        id: Mapped[int] = mapped_column(primary_key=True)
        account_id: Mapped[int] = (
            mapped_column(ForeignKey("account.id")) if not default else (mapped_column(sa.Integer))
        )

    return Models(db, Account, Event, Team)


def seed_for(models: Models) -> t.Callable[[], None]:
    def seed() -> None:
        from flask_complete.seeds import get_or_create

        account = get_or_create(models.Account, name="acme")
        get_or_create(models.Team, account_id=account.id)
        get_or_create(models.Event, kind="signup")

    return seed


class BindApps(Apps):
    """Apps with binds (and maybe no default database), disposed after the test."""

    def make(
        self,
        binds: dict[str, str],
        default: str | None = None,
        models: Models | None = None,
        env: str = "development",
        **config: t.Any,
    ) -> Flask:
        models = models or bind_models(default=default is not None)
        app = Flask("binds_app", root_path=str(self.root))
        if default is not None:
            app.config["SQLALCHEMY_DATABASE_URI"] = default
        app.config["SQLALCHEMY_BINDS"] = dict(binds)
        app.config["SECRET_KEY"] = STRONG
        app.config["SEEDS"] = seed_for(models)
        app.config.update(config)
        Complete(app, db=models.db, env=env, root=self.root)
        self.built.append((app, models.db))
        return app


@pytest.fixture
def bind_apps(tmp_path: Path) -> t.Iterator[BindApps]:
    built = BindApps(tmp_path)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def two_binds(tmp_path: Path) -> t.Iterator[dict[str, str]]:
    """``main`` on PostgreSQL (not created yet), ``analytics`` on a SQLite file (neither)."""
    require_server("postgres")
    name = unique_name()
    try:
        yield {
            "main": f"{SERVERS['postgres']}/{name}",
            "analytics": f"sqlite:///{tmp_path / 'data' / 'analytics.sqlite3'}",
        }
    finally:
        from conftest import drop_database

        drop_database("postgres", name)


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# -- no default database: every command ----------------------------------------------------------


def test_no_default_database_through_every_command(
    two_binds: dict[str, str], bind_apps: BindApps, tmp_path: Path
) -> None:
    app = bind_apps.make(two_binds)
    pg_name = sa.make_url(two_binds["main"]).database
    sqlite_file = tmp_path / "data" / "analytics.sqlite3"

    result = run(app, "db", "create")
    assert result.exit_code == 0, result.output
    # A stable order, each database reported.
    lines = result.output.splitlines()
    assert lines[0].startswith("created database: sqlite:///") and "bind analytics" in lines[0]
    assert lines[1].startswith("created database: postgresql") and "bind main" in lines[1]
    assert database_exists("postgres", str(pg_name)) and sqlite_file.exists()
    assert dbenv.read_stamp(two_binds["main"]) == "development"
    assert dbenv.read_stamp(two_binds["analytics"]) == "development"

    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert result.output.count("created the tables with create_all") == 2
    assert "seeded (event +1)" in result.output and "seeded (account +1, team +1)" in result.output
    assert {"account", "team"} <= tables(two_binds["main"])
    assert tables(two_binds["analytics"]) >= {"event"} and "account" not in tables(
        two_binds["analytics"]
    )
    result = run(app, "db", "prepare")
    assert "not seeded: the database has data" in result.output
    assert count(two_binds["main"], "account") == 1

    result = run(app, "db", "seed")
    assert result.exit_code == 0, result.output
    assert "seeded (no new rows)" in result.output

    result = run(app, "db", "environment")
    assert result.exit_code == 0, result.output
    assert result.output.count("stamped development") == 2

    result = run(app, "complete", "check")
    assert result.exit_code == 0, result.output

    result = run(app, "db", "drop", "--yes", "--bind", "main")
    assert result.exit_code == 0, result.output
    assert "dropped database: postgresql" in result.output and "sqlite" not in result.output
    assert sqlite_file.exists() and not database_exists("postgres", str(pg_name))

    # A missing bind database is named, not the default one.
    result = run(app, "complete", "check", "--format", "json")
    assert result.exit_code == 1
    (finding,) = [f for f in json.loads(result.output)["findings"] if f["level"] == "error"]
    assert finding["id"] == "database.unreachable"
    assert finding["key"] == "SQLALCHEMY_BINDS.main"
    assert f'database "{pg_name}" does not exist' in finding["message"]

    result = run(app, "db", "reset", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.count("dropped database") == 1  # main was gone already
    assert count(two_binds["analytics"], "event") == 1 and count(two_binds["main"], "team") == 1

    result = run(app, "db", "drop", "--yes")
    assert result.exit_code == 0, result.output
    assert not sqlite_file.exists() and not database_exists("postgres", str(pg_name))


def test_unknown_bind_is_named(bind_apps: BindApps, tmp_path: Path) -> None:
    app = bind_apps.make({"main": f"sqlite:///{tmp_path / 'main.sqlite3'}"})
    result = run(app, "db", "create", "--bind", "nope")
    assert result.exit_code == 2
    assert "No database bind 'nope'. This app's databases: main" in result.output
    assert not (tmp_path / "main.sqlite3").exists()


def test_default_and_a_bind(bind_apps: BindApps, tmp_path: Path) -> None:
    default = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    binds = {
        "main": f"sqlite:///{tmp_path / 'main.sqlite3'}",
        "analytics": f"sqlite:///{tmp_path / 'analytics.sqlite3'}",
    }
    app = bind_apps.make(binds, default=default)
    result = run(app, "db", "create", "--bind", "default")
    assert result.exit_code == 0, result.output
    assert "bind default" in result.output
    assert (tmp_path / "app.sqlite3").exists() and not (tmp_path / "main.sqlite3").exists()
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "team" in tables(default) and "account" in tables(binds["main"])
    assert result.output.splitlines()[0].endswith("bind default)")


def test_prepare_names_the_bind_that_fails(bind_apps: BindApps, tmp_path: Path) -> None:
    name = unique_name()
    app = bind_apps.make(
        {"analytics": f"postgresql+psycopg://postgres@127.0.0.1:1/{name}"},
        default=f"sqlite:///{tmp_path / 'app.sqlite3'}",
    )
    result = run(app, "db", "prepare")
    assert result.exit_code == 1
    assert (
        f"Cannot reach the database server at 127.0.0.1:1 "
        f"(postgresql+psycopg://postgres@127.0.0.1:1/{name})"
    ) in result.output
    assert "app.sqlite3" not in result.output.split("Error:")[1]
    assert "Traceback" not in result.output


def test_production_bind_is_protected(bind_apps: BindApps, tmp_path: Path) -> None:
    binds = {
        "main": f"sqlite:///{tmp_path / 'main.sqlite3'}",
        "analytics": f"sqlite:///{tmp_path / 'analytics.sqlite3'}",
    }
    prod = bind_apps.make(binds, env="production")
    assert run(prod, "db", "create").exit_code == 0
    dev = bind_apps.make(binds)
    result = run(dev, "db", "drop", "--yes", "--bind", "main")
    assert result.exit_code == 2
    assert "stamped production" in result.output
    assert "--bind main" in result.output
    assert (tmp_path / "main.sqlite3").exists()
    # The gate passes every database before any is dropped.
    environments.set_stamp(dev, "development", "analytics")
    result = run(dev, "db", "drop", "--yes")
    assert result.exit_code == 2
    assert (tmp_path / "analytics.sqlite3").exists()


# -- migrations per bind --------------------------------------------------------------------------


def test_migrations_per_bind(two_binds: dict[str, str], bind_apps: BindApps) -> None:
    app = bind_apps.make(two_binds)
    assert run(app, "db", "create").exit_code == 0
    result = run(app, "db", "init")
    assert result.exit_code == 0, result.output
    assert "several databases" in result.output
    result = run(app, "db", "migrate", "-m", "initial")
    assert result.exit_code == 0, result.output
    (revision,) = (bind_apps.root / "migrations" / "versions").glob("*.py")
    text = revision.read_text()
    assert "def upgrade_main() -> None:" in text and "def upgrade_analytics() -> None:" in text
    # Each database gets its own tables: account in main, event in analytics.
    main_part = text.split("def upgrade_main")[1].split("def downgrade_main")[0]
    assert "'account'" in main_part and "'event'" not in main_part

    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert result.output.count("upgraded from an empty schema") == 2
    assert {"account", "team", "alembic_version"} <= tables(two_binds["main"])
    assert {"event", "alembic_version"} <= tables(two_binds["analytics"])
    head = m.head_revisions(app)
    assert m.current_revisions(app, "main") == head == m.current_revisions(app, "analytics")

    result = run(app, "db", "check")
    assert result.exit_code == 0, result.output
    assert result.output.count("matches the models") == 2

    changed = bind_apps.make(two_binds, models=bind_models(extra=True))
    result = run(changed, "db", "check")
    assert result.exit_code == 1
    assert "[analytics] column event.source (VARCHAR(30)): in the models" in result.output
    result = run(changed, "db", "migrate", "-m", "source")
    assert result.exit_code == 0, result.output
    result = run(changed, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert run(changed, "db", "check").exit_code == 0
    # SQLite in batch mode: the column can go again.
    result = run(changed, "db", "downgrade")
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(two_binds["analytics"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("event")}
    finally:
        engine.dispose()
    assert "source" not in columns

    result = run(app, "complete", "check", "--format", "json")
    behind = [f for f in json.loads(result.output)["findings"] if f["id"] == "migrations.not_head"]
    # The downgrade left both databases behind, each named.
    assert sorted(f["message"].split(":")[0] for f in behind) == [
        "SQLALCHEMY_BINDS.analytics",
        "SQLALCHEMY_BINDS.main",
    ]


def test_health_reports_every_bind(two_binds: dict[str, str], bind_apps: BindApps) -> None:
    app = bind_apps.make(two_binds, env="production", HEALTH_ENDPOINT="/-/health")
    assert run(app, "db", "create").exit_code == 0
    response = app.test_client().get("/-/health")
    assert response.status_code == 200, response.json
    assert response.json["databases"] == {
        "analytics": {"database": "ok", "migrations": "not used"},
        "main": {"database": "ok", "migrations": "not used"},
    }
    broken = bind_apps.make(
        {**two_binds, "main": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
        env="production",
        HEALTH_ENDPOINT="/-/health",
    )
    response = broken.test_client().get("/-/health")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"
    assert response.json["databases"]["main"]["database"] == "unreachable"
    assert response.json["databases"]["analytics"]["database"] == "ok"


def test_config_shows_every_bind_redacted(bind_apps: BindApps, tmp_path: Path) -> None:
    require_server("postgres")
    url = sa.make_url(SERVERS["postgres"]).set(password="pw-secret-1", database="x")
    app = bind_apps.make(
        {
            "main": url.render_as_string(hide_password=False),
            "analytics": f"sqlite:///{tmp_path / 'a.sqlite3'}",
        }
    )
    result = run(app, "complete", "config", "--format", "json")
    assert result.exit_code == 0, result.output
    binds = json.loads(result.output)["settings"]["SQLALCHEMY_BINDS"]["value"]
    assert binds["main"]["url"].startswith("postgresql+psycopg://postgres:***@")
    assert binds["analytics"]["url"].startswith("sqlite:///")
    assert "pw-secret-1" not in result.output


def test_pool_options_apply_per_bind(bind_apps: BindApps, tmp_path: Path) -> None:
    require_server("postgres")
    app = bind_apps.make(
        {"main": f"{SERVERS['postgres']}/x", "analytics": f"sqlite:///{tmp_path / 'a.sqlite3'}"},
        DATABASE_POOL_SIZE=3,
    )
    with app.app_context():
        engines = app.extensions["complete"].db.engines
        assert engines["main"].pool.size() == 3
        assert engines["main"].pool._pre_ping
        assert not engines["analytics"].pool._pre_ping


# -- settings per environment ---------------------------------------------------------------------


def test_binds_per_environment_and_from_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings.toml").write_text(
        "[default]\n"
        f'SQLALCHEMY_BINDS.analytics = "sqlite:///{tmp_path / "dev-analytics.sqlite3"}"\n'
        "[production]\n"
        f'SQLALCHEMY_BINDS.analytics = "sqlite:///{tmp_path / "prod-analytics.sqlite3"}"\n'
    )

    def built(env: str) -> dict[str, t.Any]:
        app = Flask("settings_binds", root_path=str(tmp_path))
        app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
        Complete(app, db=fresh_db(), env=env, root=tmp_path)
        return dict(app.config["SQLALCHEMY_BINDS"])

    assert built("development")["analytics"]["url"].endswith("/dev-analytics.sqlite3")
    assert built("production")["analytics"]["url"].endswith("/prod-analytics.sqlite3")
    # Test URLs are derived per bind: a test_ copy beside the development file.
    derived = built("testing")["analytics"]["url"]
    assert derived.endswith(f"/test_dev-analytics{_worker_suffix()}.sqlite3")
    clean_env.setenv("FLASK_SQLALCHEMY_BINDS__analytics", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    assert built("production")["analytics"]["url"].endswith("/env.sqlite3")


def test_upper_case_bind_variable_overrides_the_bind(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings.toml").write_text(
        f'[production]\nSQLALCHEMY_BINDS.analytics = "sqlite:///{tmp_path / "p.sqlite3"}"\n'
    )
    clean_env.setenv("FLASK_SQLALCHEMY_BINDS__ANALYTICS", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    app = Flask("settings_binds", root_path=str(tmp_path))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
    Complete(app, db=fresh_db(), env="production", root=tmp_path)
    assert list(app.config["SQLALCHEMY_BINDS"]) == ["analytics"]
    assert app.config["SQLALCHEMY_BINDS"]["analytics"]["url"].endswith("/env.sqlite3")


def test_server_bind_gets_a_test_database_name(tmp_path: Path) -> None:
    require_server("postgres")
    with server_database("postgres") as url:
        app = Flask("test_urls", root_path=str(tmp_path))
        name = unique_name("fc_dev")
        app.config.update(
            SECRET_KEY=STRONG,
            SQLALCHEMY_BINDS={"main": f"{SERVERS['postgres']}/{name}", "other": url},
        )
        Complete(app, db=fresh_db(), env="testing", root=tmp_path)
        binds = app.config["SQLALCHEMY_BINDS"]
        assert sa.make_url(binds["main"]["url"]).database == f"test_{name}{_worker_suffix()}"
        # Already a test database: used as it is.
        assert binds["other"]["url"] == url


# -- the pytest plugin ----------------------------------------------------------------------------

PLUGIN_APP = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Account(db.Model):
    __bind_key__ = "main"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Event(db.Model):
    __bind_key__ = "analytics"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))


def create_app():
    app = Flask(__name__)
    Complete(app, db=db)
    return app
"""

PLUGIN_TESTS = """
import pytest
from sqlalchemy import func, select

from bindsapp import Account, Event, db


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_empty(db_session, run):
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0
    db.session.add_all([Account(name="a"), Event(kind="e")])
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


@pytest.fixture
def db_session(db):
    return db
"""


def test_plugin_isolates_every_bind_of_an_app_without_default(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_server("postgres")
    name = unique_name("fc_binds")
    pytester.makepyfile(bindsapp=PLUGIN_APP, test_binds_run=PLUGIN_TESTS)
    (pytester.path / "settings.toml").write_text(
        "[default]\n"
        f'SQLALCHEMY_BINDS.main = "{SERVERS["postgres"]}/{name}"\n'
        f'SQLALCHEMY_BINDS.analytics = "sqlite:///{pytester.path / "analytics.sqlite3"}"\n'
    )
    pytester.makeini("[pytest]\nflask_app = bindsapp:create_app\nfilterwarnings = error\n")
    try:
        result = pytester.runpytest_subprocess(
            "-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:faker"
        )
        assert result.ret == 0, result.stdout.str()
        result.assert_outcomes(passed=2)
        # Test databases per bind: neither development database was made.
        assert not database_exists("postgres", name)
        assert not (pytester.path / "analytics.sqlite3").exists()
    finally:
        from conftest import drop_database

        drop_database("postgres", f"test_{name}")


def _worker_suffix() -> str:
    """What a derived test database name ends with in this process (under pytest-xdist each
    worker gets its own)."""
    from flask_complete.settings import config

    return f"_{config._forced_worker}" if config._forced_worker else ""


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_bind_declared_for_development_gets_a_test_copy(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, kind: str
) -> None:
    """The layout docs/database.rst shows: binds in [development] only. Testing derives each
    bind's test database, as it does the default one; the development bind is not touched."""
    from conftest import drop_database, new_database, unique_name

    from flask_complete.settings.config import force_env
    from flask_complete.testing import TestDatabases

    if kind == "sqlite":
        analytics = f"sqlite:///{tmp_path / 'instance' / 'analytics.sqlite3'}"
        name = None
    else:
        name = unique_name("fc_analytics")
        analytics = new_database("postgres", name)
    (tmp_path / "settings.toml").write_text(
        f'[development]\nSQLALCHEMY_BINDS.analytics = "{analytics}"\n'
    )
    from flask_complete.settings import config

    models = bind_models(default=True)
    saved = config._forced_env, config._forced_worker
    force_env("testing", saved[1])
    databases = TestDatabases()
    try:
        app = Flask("binds_app", root_path=str(tmp_path))
        Complete(app, db=models.db, root=tmp_path)
        url = app.config["SQLALCHEMY_BINDS"]["analytics"]["url"]
        assert "test_" in url and url != analytics
        databases.prepare(app)
        with app.app_context():
            models.db.session.add(models.Event(kind="e"))
            models.db.session.commit()
            assert models.db.session.query(models.Event).count() == 1
    finally:
        databases.teardown()
        config._forced_env, config._forced_worker = saved
        if name is not None:
            drop_database("postgres", name)
            drop_database("postgres", f"test_{name}")


def test_check_names_the_missing_bind(bind_apps: BindApps, tmp_path: Path) -> None:
    """`flask db check` with one database missing names that one, not the default."""
    app = bind_apps.make(
        {
            "main": f"sqlite:///{tmp_path / 'main.sqlite3'}",
            "analytics": f"sqlite:///{tmp_path / 'missing' / 'analytics.sqlite3'}",
        }
    )
    runner = app.test_cli_runner()
    for args in (["db", "init"], ["db", "create"], ["db", "migrate", "-m", "x"], ["db", "upgrade"]):
        assert runner.invoke(args=args).exit_code == 0, args
    analytics = tmp_path / "missing" / "analytics.sqlite3"
    bind_apps.close()
    analytics.unlink()
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 1, result.output
    assert "analytics.sqlite3 (bind analytics) does not exist" in result.output
    assert "main.sqlite3" not in result.output
    assert "flask db prepare --bind analytics" in result.output

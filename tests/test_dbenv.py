"""A database knows its environment: the stamp ``create``/``prepare``/``upgrade`` record, the one
gate every destructive command goes through, ``flask db environment`` and the check findings."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import server_database
from dbapps import Apps, Models, Target, apps, rows, run, target
from flask import Flask
from sqlalchemy.orm import Mapped, mapped_column

from flask_complete.database import environments
from flask_complete.database import stamp as dbenv
from flask_complete.migrations import migrate as m

__all__ = ["apps", "target"]  # fixtures


def prepared(apps: Apps, url: str, env: str) -> Flask:
    """An app in ``env`` whose database is created, migrated (one revision) and seeded."""
    app = apps.make(url, env=env)
    assert run(app, "db", "create").exit_code == 0
    if not (apps.root / "migrations").exists():
        assert run(app, "db", "init").exit_code == 0
        result = run(app, "db", "migrate", "-m", "teams and members")
        assert result.exit_code == 0, result.output
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    return app


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# -- the production stamp, whatever the environment says -----------------------------------------


def test_production_database_refused_from_development(target: Target, apps: Apps) -> None:
    """What FLASK_ENV unset selects (development) cannot destroy a production-stamped database."""
    prod = prepared(apps, target.url, "production")
    assert dbenv.read_stamp(target.url) == "production"
    head = m.current_revisions(prod)
    dev = apps.make(target.url, env="development")
    for command in (
        ["drop", "--yes"],
        ["drop", "--yes", "--i-know-this-is-production"],
        ["reset", "--yes"],
        ["downgrade", "base"],
        ["downgrade", "base", "--i-know-this-is-production"],
        ["stamp", "base"],
        ["seed"],
        ["upgrade"],
        ["migrate", "-m", "more"],
    ):
        result = run(dev, "db", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "stamped production" in result.output
        assert "this command runs in development" in result.output
        assert "FLASK_ENV=production" in result.output
        assert "flask db environment development --i-know-this-is-production" in result.output
        assert target.exists()
        assert (rows(prod, "team"), rows(prod, "member")) == (2, 3)
        assert m.current_revisions(prod) == head
    assert len(list((apps.root / "migrations" / "versions").glob("*.py"))) == 1


def test_production_stamp_needs_the_flag_in_production(target: Target, apps: Apps) -> None:
    prod = prepared(apps, target.url, "production")
    for command in (["downgrade", "base"], ["stamp", "base"], ["seed"], ["drop", "--yes"]):
        result = run(prod, "db", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "Refusing to" in result.output
        assert "the production database" in result.output
        assert "--i-know-this-is-production`" in result.output
    assert rows(prod, "member") == 3
    result = run(prod, "db", "downgrade", "base", "--i-know-this-is-production")
    assert result.exit_code == 0, result.output
    assert "member" not in tables(target.url)
    result = run(prod, "db", "upgrade")
    assert result.exit_code == 0, result.output
    result = run(prod, "db", "drop", "--yes", "--i-know-this-is-production")
    assert result.exit_code == 0, result.output
    assert not target.exists()


@pytest.mark.slow
def test_flask_env_unset_refuses_a_production_postgresql_database(tmp_path: Path) -> None:
    """The real `flask` command: stamped in production, then run with FLASK_ENV unset."""
    (tmp_path / "settings.toml").write_text("[default]\n")
    (tmp_path / "stampedapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from sqlalchemy import String
            from sqlalchemy.orm import Mapped, mapped_column
            from flask_complete import Complete, db

            app = Flask(__name__)
            Complete(app)

            class Ledger(db.Model):
                id: Mapped[int] = mapped_column(primary_key=True)
                entry: Mapped[str] = mapped_column(String(40))
            """
        )
    )
    with server_database("postgres") as url:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
        }
        env.update(FLASK_APP="stampedapp", DATABASE_URL=url, SECRET_KEY=secrets.token_urlsafe(48))

        def flask(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "flask", "db", *args],
                cwd=tmp_path,
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=120,
            )

        for args in (("init",), ("migrate", "-m", "ledger"), ("upgrade",)):
            done = flask(*args, FLASK_ENV="production")
            assert done.returncode == 0, done.stderr
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO ledger (entry) VALUES ('paid')"))
        for args in (("drop", "--yes"), ("reset", "--yes"), ("downgrade", "base")):
            done = flask(*args)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert "stamped production" in done.stderr
            assert "runs in development" in done.stderr
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT entry FROM ledger")).scalars().all() == ["paid"]
        engine.dispose()


# -- stamping -------------------------------------------------------------------------------------


def test_create_prepare_and_upgrade_stamp_the_environment(target: Target, apps: Apps) -> None:
    app = apps.make(target.url, env="development")
    assert run(app, "db", "create").exit_code == 0
    assert dbenv.read_stamp(target.url) == "development"
    assert "flask_complete_metadata" in tables(target.url)
    result = run(app, "db", "environment")
    assert result.exit_code == 0, result.output
    assert "stamped development" in result.output

    # A database stamped by nobody (made before flask_complete, or by hand) is stamped by
    # `flask db upgrade`, `prepare` and the upgrade helper.
    assert run(app, "db", "init").exit_code == 0
    assert run(app, "db", "migrate", "-m", "first").exit_code == 0
    for how in ("upgrade", "prepare", "helper"):
        with app.app_context(), app.extensions["complete"].db.engine.begin() as conn:
            conn.execute(dbenv.table.delete())
        assert dbenv.read_stamp(target.url) is None
        if how == "helper":
            m.upgrade(app)
        else:
            result = run(app, "db", how)
            assert result.exit_code == 0, result.output
        assert dbenv.read_stamp(target.url) == "development", how
    # Autogenerate ignores our table: no migration proposes to drop it, even with allow_drop=*.
    assert run(app, "db", "check").exit_code == 0
    result = run(app, "db", "migrate", "-m", "nothing", "-x", "allow_drop=*")
    assert result.exit_code == 0, result.output
    assert len(list((apps.root / "migrations" / "versions").glob("*.py"))) == 1


def test_environment_command(apps: Apps, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    app = apps.make(url, env="development")
    result = run(app, "db", "environment")
    assert result.exit_code == 1
    assert "does not exist: create it with `flask db create`" in result.output
    assert not (tmp_path / "app.sqlite3").exists()
    sa.create_engine(url, poolclass=sa.pool.NullPool).connect().close()
    result = run(app, "db", "environment")
    assert "not stamped (stamp it with `flask db environment development`)" in result.output
    # Stamping production only adds protection: no flag needed.
    result = run(app, "db", "environment", "production")
    assert result.exit_code == 0, result.output
    assert "stamped production" in result.output
    result = run(app, "db", "environment", "development")
    assert result.exit_code == 2
    assert "Refusing to re-stamp the production database" in result.output
    assert "flask db environment development --i-know-this-is-production" in result.output
    assert dbenv.read_stamp(url) == "production"
    result = run(app, "db", "environment", "development", "--i-know-this-is-production")
    assert result.exit_code == 0, result.output
    assert "stamped development (was production)" in result.output
    assert run(app, "db", "environment", "development").output.startswith("stamped development")
    result = run(app, "db", "environment", "staging")
    assert result.exit_code == 2
    assert "'staging' is not one of 'development', 'testing', 'production'" in result.output


def test_mismatch_stops_writing_commands_until_restamped(database_url: str, apps: Apps) -> None:
    dev = prepared(apps, database_url, "development")
    prod = apps.make(database_url, env="production")
    for command in (["upgrade"], ["prepare"], ["migrate", "-m", "x"]):
        result = run(prod, "db", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "stamped development, and this command runs in production" in result.output
        assert "`FLASK_ENV=development flask db" in result.output
        assert "re-stamp it first: `flask db environment production`" in result.output
    # Reading is never refused.
    assert run(prod, "db", "current").exit_code == 0
    assert run(prod, "db", "environment", "production").exit_code == 0
    assert run(prod, "db", "upgrade").exit_code == 0
    result = run(dev, "db", "seed")
    assert result.exit_code == 2
    assert "stamped production, and this command runs in development" in result.output


def test_unstamped_database_in_production_needs_the_flag(database_url: str, apps: Apps) -> None:
    """A database made before stamps existed: production keeps refusing what destroys data."""
    dev = prepared(apps, database_url, "development")
    with dev.app_context(), dev.extensions["complete"].db.engine.begin() as conn:
        dbenv.table.drop(conn)
    prod = apps.make(database_url, env="production")
    for command in (["downgrade", "base"], ["stamp", "base"], ["seed"], ["reset", "--yes"]):
        result = run(prod, "db", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "the production database" in result.output
        assert "(this command runs in production)" in result.output
    assert rows(prod, "member") == 3
    assert dbenv.read_stamp(database_url) is None
    result = run(prod, "db", "stamp", "head", "--i-know-this-is-production")
    assert result.exit_code == 0, result.output


def unstamp(app: Flask) -> None:
    with app.app_context(), app.extensions["complete"].db.engine.begin() as conn:
        dbenv.table.drop(conn)


def test_unstamped_database_with_tables_is_refused_until_stamped(
    database_url: str, apps: Apps, tmp_path: Path
) -> None:
    """Rails' NoEnvironmentInSchemaError: a database that holds tables and records no
    environment (every database an app had before stamps) is not dropped, reset, downgraded,
    re-stamped or loaded over with FLASK_ENV unset, until `flask db environment` says whose
    it is."""
    dev = prepared(apps, database_url, "development")
    dump = tmp_path / "members.json"
    result = run(dev, "db", "dump", "-o", str(dump))
    assert result.exit_code == 0, result.output
    unstamp(dev)
    for command in (
        ["drop", "--yes"],
        ["reset", "--yes"],
        ["downgrade", "base"],
        ["stamp", "base"],
        ["load", str(dump)],
    ):
        result = run(dev, "db", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "records no environment" in result.output, result.output
        assert "`flask db environment development`" in result.output
    assert rows(dev, "member") == 3
    assert dbenv.read_stamp(database_url) is None
    # Adding is not destroying: seeding an unstamped database still works.
    assert run(dev, "db", "seed").exit_code == 0
    assert run(dev, "db", "environment", "development").exit_code == 0
    result = run(dev, "db", "downgrade", "base")
    assert result.exit_code == 0, result.output


def test_unstamped_empty_database_is_not_refused(database_url: str, apps: Apps) -> None:
    """Nothing in it to lose: an unstamped database without tables is dropped as before."""
    app = apps.make(database_url, env="development")
    result = run(app, "db", "drop", "--yes")
    assert result.exit_code == 0, result.output


def test_every_bind_is_gated_before_any_is_touched(apps: Apps, tmp_path: Path) -> None:
    """The every-database default of downgrade: a second database stamped production stops the
    command before the first one is downgraded."""
    from dbapps import fresh_db

    sqla = fresh_db()

    class Main(sqla.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)

    class Audit(sqla.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "audit"
        id: Mapped[int] = mapped_column(primary_key=True)

    main_url = f"sqlite:///{tmp_path / 'main.sqlite3'}"
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    app = apps.make(
        main_url, models=Models(sqla), SQLALCHEMY_BINDS={"audit": audit_url}, seed_in_code=False
    )
    assert run(app, "db", "init").exit_code == 0
    result = run(app, "db", "migrate", "-m", "both")
    assert result.exit_code == 0, result.output
    assert run(app, "db", "upgrade").exit_code == 0
    assert tables(main_url) >= {"main"} and tables(audit_url) >= {"audit"}
    assert run(app, "db", "environment", "production", "--bind", "audit").exit_code == 0
    result = run(app, "db", "downgrade", "base")
    assert result.exit_code == 2, result.output
    assert "stamped production" in result.output
    assert "main" in tables(main_url) and "audit" in tables(audit_url)


def test_app_environment_disagreeing_with_the_stamp(
    database_url: str, apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that opens a database stamped for another environment says so at its first
    connection; in production it refuses to serve requests on it (commands still run, so
    that `flask db environment` can fix it)."""
    prod = prepared(apps, database_url, "production")
    dev = apps.make(database_url, env="development")
    with caplog.at_level("ERROR", logger="flask_complete"), dev.app_context():
        sqla = dev.extensions["complete"].db
        assert sqla.session.execute(sa.text("SELECT 1")).scalar() == 1
        sqla.session.execute(sa.text("SELECT 1"))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "stamped production" in errors[0] and "runs in development" in errors[0]

    assert (
        run(prod, "db", "environment", "development", "--i-know-this-is-production").exit_code == 0
    )
    served = apps.make(database_url, env="production")
    sqla = served.extensions["complete"].db

    @served.get("/count")
    def count() -> str:
        return str(sqla.session.execute(sa.text("SELECT COUNT(*) FROM member")).scalar())

    caplog.clear()
    with caplog.at_level("ERROR", logger="flask_complete"):
        response = served.test_client().get("/count")
    assert response.status_code == 500
    assert any("stamped development" in r.getMessage() for r in caplog.records)
    result = run(served, "db", "environment", "production")
    assert result.exit_code == 0, result.output
    assert dbenv.read_stamp(database_url) == "production"


# -- the gate without an app ----------------------------------------------------------------------


def test_authorize_reads_a_missing_database_as_unstamped(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite3"
    assert environments.authorize(f"sqlite:///{path}", env="testing", action="create") is None
    assert not path.exists()
    with server_database("postgres") as url:
        missing = sa.make_url(url).set(database="fc_no_such_database")
        assert dbenv.read_stamp(missing) is None
    with server_database("mysql") as url:
        missing = sa.make_url(url).set(database="fc_no_such_database")
        assert dbenv.read_stamp(missing) is None


def test_authorize_refuses_the_test_run_a_production_database(database_url: str) -> None:
    """As the pytest plugin asks before it creates or drops a test database."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="s3cret-pw")  # trust auth ignores it; the message must hide it
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert dbenv.read_stamp(conn) is None
            dbenv.stamp(conn, "production")
            assert dbenv.read_stamp(conn) == "production"
    finally:
        engine.dispose()
    for action in ("create", "drop"):
        with pytest.raises(environments.EnvironmentRefused) as refused:
            environments.authorize(url, env="testing", action=action, i_know=False)
        message = refused.value.message
        assert "stamped production, and this command runs in testing" in message
        assert redact(url) in message
        assert "s3cret-pw" not in message
    assert environments.authorize(url, env="production", action="upgrade") == "production"
    with pytest.raises(environments.EnvironmentRefused, match=r"\(stamped production\)"):
        environments.authorize(url, env="production", action="drop")
    assert environments.authorize(url, env="production", action="drop", i_know=True) == "production"


def redact(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


# -- check ----------------------------------------------------------------------------------------


def test_check_reports_unstamped_and_mismatched_databases(apps: Apps, tmp_path: Path) -> None:
    missing = apps.make(f"sqlite:///{tmp_path / 'missing.sqlite3'}", env="development")
    assert environments.check(missing) == []  # no database: the reachability check says so
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    dev = prepared(apps, url, "development")
    assert environments.check(dev) == []
    with dev.app_context(), dev.extensions["complete"].db.engine.begin() as conn:
        dbenv.table.drop(conn)
    (unstamped,) = environments.check(dev)
    assert (unstamped.id, unstamped.level) == ("database.unstamped", "warning")
    assert "records no environment" in unstamped.message
    assert "`flask db environment development`" in unstamped.fix
    result = run(dev, "db", "check")
    assert result.exit_code == 0, result.output
    assert "warning: The database" in result.output

    assert run(dev, "db", "environment", "production").exit_code == 0
    (mismatch,) = environments.check(dev)
    assert (mismatch.id, mismatch.level) == ("database.env_mismatch", "error")
    assert "is stamped production, but the app runs in development" in mismatch.message
    assert "FLASK_ENV=production" in mismatch.fix
    assert "`flask db environment development --i-know-this-is-production`" in mismatch.fix
    assert environments.check(apps.make(url, env="production")) == []
    result = run(dev, "db", "check")
    assert result.exit_code == 1
    assert "is stamped production, but the app runs in development" in result.output


# -- autogenerate with Flask-Migrate's own env.py -------------------------------------------------


def test_flask_migrate_env_py_ignores_our_table(tmp_path: Path) -> None:
    """An app with its own ``Migrate`` and the ``env.py`` Flask-Migrate generates."""
    from alembic import command
    from flask_migrate import Config

    folder = tmp_path / "migrations"
    config = Config()  # Flask-Migrate's template folder
    config.set_main_option("script_location", str(folder))
    config.config_file_name = str(folder / "alembic.ini")
    with contextlib.redirect_stdout(io.StringIO()):
        command.init(config, str(folder), template="flask")
    (tmp_path / "settings.toml").write_text("[default]\n")
    (tmp_path / "stockapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_migrate import Migrate
            from sqlalchemy.orm import Mapped, mapped_column
            from flask_complete import Complete, db

            def include_object(obj, name, type_, reflected, compare_to):
                return name != "legacy"  # the app's own hook keeps working

            app = Flask(__name__)
            Migrate(app, db, include_object=include_object)
            Complete(app)

            class Item(db.Model):
                id: Mapped[int] = mapped_column(primary_key=True)
            """
        )
    )
    database = tmp_path / "stock.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(FLASK_APP="stockapp", DATABASE_URL=f"sqlite:///{database}")

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "flask", "db", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done

    flask("migrate", "-m", "items")
    flask("upgrade")
    assert dbenv.read_stamp(f"sqlite:///{database}") == "development"
    with sa.create_engine(f"sqlite:///{database}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE legacy (id INTEGER PRIMARY KEY)"))
    done = flask("migrate", "-m", "nothing")
    assert "No changes in schema detected" in done.stderr
    assert len(list((tmp_path / "migrations" / "versions").glob("*.py"))) == 1

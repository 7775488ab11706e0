"""The database lifecycle on SQLite, PostgreSQL and MariaDB: create, prepare, check, migrate,
reset and drop through ``flask db``, production refusals and clear connection errors."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import (
    SERVERS,
    database_exists,
    drop_database,
    new_database,
    require_server,
    unique_name,
)
from dbapps import Apps, Target, apps, build_models, rows, run, target
from sqlalchemy.exc import NoSuchModuleError

from flask_complete import ConfigError
from flask_complete.database.errors import explain

__all__ = ["apps", "target"]  # fixtures


def test_lifecycle(target: Target, apps: Apps) -> None:
    app = apps.make(target.url)
    result = run(app, "db", "create")
    assert result.exit_code == 0, result.output
    assert "created database" in result.output
    assert "(development)" in result.output
    assert target.exists()
    assert "database exists already" in run(app, "db", "create").output

    assert run(app, "db", "init").exit_code == 0
    result = run(app, "db", "migrate", "-m", "teams and members")
    assert result.exit_code == 0, result.output

    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "upgraded from an empty schema" in result.output
    assert "seeded (team +2, member +3)" in result.output
    assert (rows(app, "team"), rows(app, "member")) == (2, 3)

    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "already at head" in result.output
    assert "not seeded: the database has data" in result.output
    assert (rows(app, "team"), rows(app, "member")) == (2, 3)

    result = run(app, "db", "check")
    assert result.exit_code == 0, result.output
    assert "matches the models" in result.output

    # A column added to a model without a migration.
    changed = apps.make(target.url, build_models(extra=True))
    result = run(changed, "db", "check")
    assert result.exit_code == 1
    assert "column member.nickname (VARCHAR(30)): in the models, not the database" in (
        result.output
    )
    assert "flask db migrate" in result.output

    assert run(changed, "db", "migrate", "-m", "nickname").exit_code == 0
    assert run(changed, "db", "upgrade").exit_code == 0
    result = run(changed, "db", "check")
    assert result.exit_code == 0, result.output

    result = run(changed, "db", "reset", "--yes")
    assert result.exit_code == 0, result.output
    assert "dropped database" in result.output
    assert "seeded (team +2, member +3)" in result.output
    assert (rows(changed, "team"), rows(changed, "member")) == (2, 3)

    result = run(changed, "db", "drop", "--yes")
    assert result.exit_code == 0, result.output
    assert "dropped database" in result.output
    assert not target.exists()
    assert "no database to drop" in run(changed, "db", "drop", "--yes").output


def test_prepare_without_migrations_uses_create_all(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    result = run(app, "db", "prepare")
    assert result.exit_code == 0, result.output
    assert "create_all (no migrations folder)" in result.output
    assert rows(app, "member") == 3


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_drop_and_reset_refused_in_production(kind: str, apps: Apps, tmp_path: Path) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'prod.sqlite3'}"
        still_there = (tmp_path / "prod.sqlite3").exists
    else:
        name = unique_name()
        url = new_database(kind, name)
        still_there = lambda: database_exists(kind, name)  # noqa: E731
    app = apps.make(url, env="production")
    assert run(app, "db", "create").exit_code == 0
    for command in (["drop", "--yes"], ["reset", "--yes"], ["drop", "--i-know-this-is-production"]):
        result = run(app, "db", *command)
        assert result.exit_code == 2, result.output
        assert "Refusing to" in result.output
        assert "--yes --i-know-this-is-production" in result.output
        assert still_there()
    result = run(app, "db", "drop", "--yes", "--i-know-this-is-production")
    assert result.exit_code == 0, result.output
    assert "(production)" in result.output
    assert not still_there()


def test_drop_asks_for_confirmation(apps: Apps, tmp_path: Path) -> None:
    path = tmp_path / "dev.sqlite3"
    app = apps.make(f"sqlite:///{path}")
    run(app, "db", "create")
    result = run(app, "db", "drop", input="n\n")
    assert result.exit_code == 1
    assert path.exists()
    assert run(app, "db", "drop", input="y\n").exit_code == 0
    assert not path.exists()


def test_flask_env_production_drop_is_refused(tmp_path: Path) -> None:
    """The real `flask` command, with FLASK_ENV=production in the environment."""
    (tmp_path / "settings.toml").write_text("[default]\n")
    (tmp_path / "prodapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_complete import Complete

            app = Flask(__name__)
            Complete(app)
            """
        )
    )
    db_file = tmp_path / "prod.sqlite3"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k != "DATABASE_URL"
    }
    env.update(
        FLASK_APP="prodapp",
        FLASK_ENV="production",
        DATABASE_URL=f"sqlite:///{db_file}",
        SECRET_KEY=secrets.token_urlsafe(48),
    )
    sqlite3.connect(db_file).close()
    result = subprocess.run(
        [sys.executable, "-m", "flask", "db", "drop", "--yes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Refusing to drop the production database" in result.stderr
    assert db_file.exists()


def test_upgrade_without_migrations_folder(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    result = run(app, "db", "upgrade")
    assert result.exit_code == 1
    assert f"No migrations folder at {tmp_path / 'migrations'}" in result.output
    assert "flask complete init" in result.output
    assert "flask db init" in result.output


def test_unreachable_server_is_named(apps: Apps) -> None:
    app = apps.make("postgresql+psycopg://app:s3cret@127.0.0.1:1/app")
    result = run(app, "db", "create")
    assert result.exit_code == 1
    assert "Cannot reach the database server at 127.0.0.1:1" in result.output
    assert "s3cret" not in result.output
    assert "app:***@127.0.0.1:1/app" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_authentication_failure(kind: str, apps: Apps) -> None:
    require_server(kind)
    server = sa.engine.make_url(SERVERS[kind])
    url = server.set(username="nobody_fc", password="wrong-pw", database="whatever")
    app = apps.make(url.render_as_string(hide_password=False))
    result = run(app, "db", "prepare")
    assert result.exit_code == 1
    assert "refused the login of user 'nobody_fc'" in result.output
    assert "wrong-pw" not in result.output


def test_missing_database_is_named(apps: Apps) -> None:
    require_server("postgres")
    name = unique_name()
    app = apps.make(f"{SERVERS['postgres']}/{name}")
    result = run(app, "db", "seed")
    assert result.exit_code == 1
    assert f"The database '{name}' does not exist" in result.output
    assert "flask db create" in result.output


def test_unknown_driver_names_the_extra() -> None:
    url = sa.engine.make_url("postgresql+psycopg://u:pw@db.invalid/app")
    missing = ModuleNotFoundError("No module named 'psycopg'", name="psycopg")
    assert "pip install flask-complete[postgres]" in str(explain(missing, url))
    missing = ModuleNotFoundError("No module named 'pymysql'", name="pymysql")
    assert "pip install flask-complete[mysql]" in str(
        explain(missing, sa.engine.make_url("mysql+pymysql://u@h/app"))
    )
    # A backend we bundle no driver for: only the package to install, no extra of ours.
    missing = ModuleNotFoundError("No module named 'cx_Oracle'", name="cx_Oracle")
    message = str(explain(missing, sa.engine.make_url("oracle://u@h/app")))
    assert message.endswith("is not installed. Install it (`pip install cx_Oracle`).")
    assert "flask-complete[" not in message
    try:
        sa.create_engine("nosuchdb://u:pw@h/app")
    except NoSuchModuleError as e:
        message = str(explain(e, sa.engine.make_url("nosuchdb://u:pw@h/app")))
    assert "Unknown database driver 'nosuchdb'" in message
    assert "pw" not in message.replace("pip", "")


def test_missing_driver_at_init(apps: Apps) -> None:
    with pytest.raises(ConfigError) as caught:
        apps.make("postgresql+psycopg2://u:pw@127.0.0.1/app")
    message = str(caught.value)
    assert "[database.driver]" in message
    assert "The database driver 'psycopg2'" in message
    assert "pip install flask-complete[postgres]" in message
    assert ":pw@" not in message


def test_bad_seed_path(apps: Apps, tmp_path: Path) -> None:
    app = apps.make(f"sqlite:///{tmp_path / 'x.sqlite3'}", SEEDS="no_such_module.seeds:run")
    result = run(app, "db", "prepare")
    assert result.exit_code == 1
    assert "SEEDS = 'no_such_module.seeds:run' does not import" in result.output
    assert "Traceback" not in result.output


def test_output_hides_the_password(apps: Apps) -> None:
    require_server("postgres")
    name = unique_name()
    server = sa.engine.make_url(SERVERS["postgres"]).set(password="hunter2-secret")
    url = server.set(database=name).render_as_string(hide_password=False)
    app = apps.make(url, SEEDS=[])
    try:
        for command in (["create"], ["prepare"], ["drop", "--yes"]):
            result = run(app, "db", *command)
            assert result.exit_code == 0, result.output
            assert ":***@" in result.output
            assert "hunter2" not in result.output
    finally:
        drop_database("postgres", name)

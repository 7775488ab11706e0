"""Commands answer a database problem in one line with the fix, never with a traceback: a
database that does not exist, a server that cannot be reached, a database whose tables were never
made (SQLite, PostgreSQL, MariaDB). ``flask users``, ``flask db seed``/``load``/``dump`` and
``flask complete check`` are run through the CLI runner against real servers."""

from __future__ import annotations

import json
import sqlite3
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, STRONG, User, authdb
from conftest import (
    SERVERS,
    database_exists,
    drop_database,
    free_port,
    require_server,
    track,
    unique_name,
)
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_complete import Complete
from flask_complete.database.errors import explain

pytest_plugins = ["authapps"]
EMAIL = "ann@example.test"


def seed() -> None:
    from flask_complete.seeds import get_or_create

    get_or_create(User, email="seeded@example.test")


#: Every command that reads or writes the user's tables, with the input it asks for.
COMMANDS: list[tuple[list[str], str | None]] = [
    (["users", "list"], None),
    (["users", "create", EMAIL, "-p", PASSWORD], None),
    (["users", "set-password", EMAIL, "-p", PASSWORD], None),
    (["users", "deactivate", EMAIL], None),
    (["users", "activate", EMAIL], None),
    (["users", "delete", EMAIL, "--yes"], None),
    (["users", "token", EMAIL, "-n", "ci"], None),
    (["users", "tokens", EMAIL], None),
    (["users", "revoke-token", "1"], None),
    (["users", "sessions", EMAIL], None),
    (["users", "sessions", EMAIL, "--revoke-all"], None),
    (["db", "seed"], None),
    (["db", "load", "users"], None),
    (["db", "dump"], None),
]


def app_on(url: str, root: Path) -> Flask:
    """A development app on ``url`` whose tables were never made, with a seed and a fixture."""
    fixtures = root / "fixtures"
    fixtures.mkdir(exist_ok=True)
    (fixtures / "users.json").write_text(
        json.dumps([{"model": "User", "pk": 7, "fields": {"email": "x@example.test"}}])
    )
    app = Flask("dberrors")
    app.config.update(
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI=url,
        AUTH_THROTTLE_STORAGE="database",
        SEEDS=[seed],
    )
    Complete(app, db=authdb, user_model=User, env="development", root=root)
    return track(app)


def assert_one_line(result: t.Any, *needles: str) -> str:
    """The command failed with exit code 1 and one line on standard error naming the problem
    and the fix."""
    output = result.stderr.strip()
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.output  # not a traceback
    assert "Traceback" not in result.output and len(output.splitlines()) == 1, result.output
    for needle in needles:
        assert needle in output, (needle, output)
    return output


@pytest.fixture(params=["postgres", "mysql"])
def missing_database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The URL of a database that does not exist on a real server (dropped if a command made it)."""
    kind = str(request.param)
    require_server(kind)
    name = unique_name("fc_missing")
    yield kind, f"{SERVERS[kind]}/{name}"
    exists = database_exists(kind, name)
    drop_database(kind, name)
    assert not exists, f"a command created {name}"


@pytest.mark.parametrize(("args", "answer"), COMMANDS, ids=lambda v: " ".join(v or []))
def test_a_missing_database_is_one_line(
    missing_database: tuple[str, str], tmp_path: Path, args: list[str], answer: str | None
) -> None:
    _, url = missing_database
    app = app_on(url, tmp_path)
    result = app.test_cli_runner().invoke(args=args, input=answer)
    assert_one_line(result, "does not exist", "flask db prepare")


@pytest.mark.parametrize(("args", "answer"), COMMANDS, ids=lambda v: " ".join(v or []))
def test_an_unreachable_server_is_one_line(
    tmp_path: Path, args: list[str], answer: str | None
) -> None:
    # A port nothing listens on: the server is down.
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/app"
    app = app_on(url, tmp_path)
    result = app.test_cli_runner().invoke(args=args, input=answer)
    assert_one_line(result, "Cannot reach the database server", "DATABASE_URL")


@pytest.mark.parametrize(("args", "answer"), COMMANDS, ids=lambda v: " ".join(v or []))
def test_an_unmigrated_database_is_one_line(
    database_url: str, tmp_path: Path, args: list[str], answer: str | None
) -> None:
    app = app_on(database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=args, input=answer)
    assert_one_line(result, "no table", "flask db prepare")


def test_check_reports_a_missing_database_without_a_traceback(
    missing_database: tuple[str, str], tmp_path: Path
) -> None:
    _, url = missing_database
    app = app_on(url, tmp_path)
    result = app.test_cli_runner().invoke(args=["complete", "check"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "database.unreachable" in result.output and "Traceback" not in result.output


def test_check_reports_an_unmigrated_database_without_a_traceback(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        sqlite3.connect(sa.make_url(database_url).database or "").close()  # an empty database
    app = app_on(database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=["complete", "check"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "auth.tables_missing" in result.output and "Traceback" not in result.output


_NAME = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_0123456789"), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, sa.Engine]]:
    """One engine per server, on its maintenance database (nothing is created)."""
    made = {}
    for kind in ("postgres", "mysql"):
        require_server(kind)
        base = SERVERS[kind] + ("/postgres" if kind == "postgres" else "/mysql")
        made[kind] = sa.create_engine(base, poolclass=sa.pool.NullPool)
    made["sqlite"] = sa.create_engine("sqlite://")
    yield made
    for engine in made.values():
        engine.dispose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=_NAME)
def test_any_missing_table_is_explained_by_what_the_server_says(
    engines: dict[str, sa.Engine], name: str
) -> None:
    """Whatever the table is called, the server's own answer (SQLite's message, PostgreSQL's
    SQLSTATE 42P01, MariaDB's error 1146) is read as a missing table, naming it."""
    table = f"fc_{name}"
    for kind, engine in engines.items():
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
            conn.execute(
                sa.text(f"SELECT * FROM {engine.dialect.identifier_preparer.quote(table)}")
            )
        message = explain(caught.value, engine.url)
        assert message is not None, (kind, str(caught.value))
        assert "has no table" in message and table in message and "flask db prepare" in message


def test_a_question_the_server_answers_otherwise_is_not_a_missing_table(
    engines: dict[str, sa.Engine],
) -> None:
    for engine in engines.values():
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 FROM"))  # a syntax error
        assert explain(caught.value, engine.url) is None

"""The database commands inside a test, the way an app's own tests use them: the test database
is at the migrations' head, seeds run through `flask db seed` are rolled back after, and every
migration changes the schema and its downgrade undoes exactly that."""

from __future__ import annotations

import typing as t

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskCliRunner

from example_app.factories import NoteFactory
from example_app.models import Note, Notebook
from flask_complete.migrations import binds as migration_binds
from flask_complete.migrations import migrate as migrations


def count(db: t.Any, model: type[t.Any]) -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)))


def test_test_database_is_at_head(app: Flask, runner: FlaskCliRunner, db: t.Any) -> None:
    assert migrations.current_revisions(app) == migrations.head_revisions(app)
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert "(testing)" in result.output


def test_seed_command_inside_a_test(app: Flask, runner: FlaskCliRunner, db: t.Any) -> None:
    app.config["SEEDS"] = "example_app.seeds:development"
    result = runner.invoke(args=["db", "seed"])
    assert result.exit_code == 0, result.output
    assert "seeded (user +1, notebook +3, note +10)" in result.output
    assert count(db, Note) == 10
    assert runner.invoke(args=["db", "seed"]).output.startswith("seeded (no new rows)")


def test_seeded_rows_were_rolled_back(db: t.Any) -> None:
    assert count(db, Note) == 0
    assert count(db, Notebook) == 0


def test_factories_in_a_test(db: t.Any) -> None:
    notes = NoteFactory.create_batch(3, notebook__name="Work")
    assert {n.notebook.name for n in notes} == {"Work"}
    assert count(db, Notebook) == 1


#: Bookkeeping tables no migration declares.
OURS = {"alembic_version", "flask_complete_metadata"}


def schema(db: t.Any) -> dict[str, tuple[set[str], set[str]]]:
    """Each table of the test database with its column and index names."""
    inspector = sa.inspect(db.engine)
    return {
        table: (
            {c["name"] for c in inspector.get_columns(table)},
            {str(i["name"]) for i in inspector.get_indexes(table)},
        )
        for table in inspector.get_table_names()
        if table not in OURS
    }


def test_each_migration_and_its_downgrade(app: Flask, transactional_db: t.Any) -> None:
    """Up one revision at a time from an empty schema, then down: every upgrade changes the
    schema, every downgrade gives back exactly the schema before its upgrade."""
    db = transactional_db
    db.session.remove()
    script = ScriptDirectory.from_config(migrations.alembic_config(app))
    revisions = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    migrations.downgrade(app, "base")
    at = {"base": schema(db)}
    assert at["base"] == {}
    steps = list(zip(["base", *revisions], revisions, strict=False))
    for down, up in steps:
        migrations.upgrade(app, up)
        at[up] = schema(db)
        assert at[up] != at[down], f"revision {up} changes nothing"
    first, second, third, fourth = revisions
    assert set(at[first]) == {"notebook", "note"}
    assert at[first]["note"] == (
        {"id", "notebook_id", "title", "body", "created_at"},
        {"ix_note_notebook_id"},
    )
    assert set(at[second]) == {"notebook", "note", "user", "api_token", "auth_throttle"}
    assert at[second]["api_token"][1] == {"ix_api_token_user_id"}
    assert set(at[third]) - set(at[second]) == {"auth_session"}
    assert at[third]["auth_session"][1] == {"ix_auth_session_user_id"}
    assert at[fourth]["notebook"][0] - at[third]["notebook"][0] == {"owner_id"}
    assert "ix_notebook_owner_id" in at[fourth]["notebook"][1]
    assert migration_binds.check(app) is None  # at head the schema is the models'
    for down, up in reversed(steps):
        migrations.downgrade(app, down)
        assert schema(db) == at[down], f"the downgrade of {up} does not undo its upgrade"
    for _, up in steps:
        migrations.upgrade(app, up)
        assert schema(db) == at[up], f"revision {up} upgrades differently the second time"


def test_notebooks_from_before_owners_go_to_the_first_user(
    app: Flask, transactional_db: t.Any
) -> None:
    """The ownership migration on a database with notebooks: refused, with the fix and nothing
    changed, while there is no user; given to the first user once there is one."""
    db = transactional_db
    db.session.remove()
    migrations.downgrade(app, "-1")
    try:
        with db.engine.begin() as conn:
            conn.execute(sa.insert(sa.table("notebook", sa.column("name"))).values(name="Old"))
        with pytest.raises(RuntimeError, match="flask users create"):
            migrations.upgrade(app)
        assert "owner_id" not in schema(db)["notebook"][0]
        users = sa.table(
            "user",
            *(sa.column(c) for c in ("email", "active", "is_admin", "session_token", "created_at")),
        )
        with db.engine.begin() as conn:
            for email in ("first@example.test", "second@example.test"):
                row = {"email": email, "active": True, "is_admin": False, "session_token": "x"}
                conn.execute(sa.insert(users).values(created_at=sa.func.current_timestamp(), **row))
        migrations.upgrade(app)
        owner = db.session.scalar(sa.select(Notebook.owner_id).where(Notebook.name == "Old"))
        first = db.session.scalar(sa.select(sa.func.min(sa.table("user", sa.column("id")).c.id)))
        assert owner == first
    finally:
        migrations.upgrade(app)  # the next tests' schema, whatever failed

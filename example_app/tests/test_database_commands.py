"""The database commands inside a test, the way an app's own tests use them: the test database
is at the migrations' head, and seeds run through `flask db seed` are rolled back after."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from example_app.factories import NoteFactory
from example_app.models import Note, Notebook
from flask_complete import migrations


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
    assert "seeded (notebook +3, note +10)" in result.output
    assert count(db, Note) == 10
    assert runner.invoke(args=["db", "seed"]).output.startswith("seeded (no new rows)")


def test_seeded_rows_were_rolled_back(db: t.Any) -> None:
    assert count(db, Note) == 0
    assert count(db, Notebook) == 0


def test_factories_in_a_test(db: t.Any) -> None:
    notes = NoteFactory.create_batch(3, notebook__name="Work")
    assert {n.notebook.name for n in notes} == {"Work"}
    assert count(db, Notebook) == 1

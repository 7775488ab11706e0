"""JSON API under /api and one HTML page.

Reads are public; writes need a login (a session cookie with its CSRF token, or a bearer
token). Every error under /api/ is JSON: bad input a 4xx naming the field, ids beyond the
column a 404, a lost database a 503 with Retry-After (``flask_complete.api``).

A write commits last: its answer is built before the commit, from the flushed row, so that
nothing is read after it. A read after the commit is a new query; if the connection is lost
then, the write is stored but the request fails, and a client cannot tell it from a write that
was not (``flask_complete.api`` answers 500 then, never 503).
"""

from __future__ import annotations

import typing as t

from flask import Blueprint, abort, jsonify, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from flask_complete import api, db
from flask_complete.auth import login_required

from .models import Note, Notebook

bp = Blueprint("notes", __name__)


@bp.get("/")
def index() -> str:
    # The notes of every notebook in one more query, not one per notebook.
    query = select(Notebook).options(selectinload(Notebook.notes)).order_by(Notebook.name)
    return render_template("index.html", notebooks=db.session.scalars(query).all())


@bp.get("/api/notebooks")
def list_notebooks() -> t.Any:
    # Counted by the database in the same query; len(notebook.notes) would load every list.
    count = select(func.count(Note.id)).where(Note.notebook_id == Notebook.id).scalar_subquery()
    rows = db.session.execute(select(Notebook, count).order_by(Notebook.name)).all()
    return jsonify([notebook.to_dict(notes=notes) for notebook, notes in rows])


@bp.post("/api/notebooks")
@login_required
def create_notebook() -> t.Any:
    name = api.text(api.json_body(), "name", column=Notebook.name)
    if db.session.scalar(select(Notebook).filter_by(name=name)) is not None:
        abort(409, description=f"A notebook named {name!r} exists.")
    notebook = Notebook(name=name)
    db.session.add(notebook)
    db.session.flush()  # its id, in this transaction
    body = notebook.to_dict(notes=0)  # a new notebook has none: no query for them
    db.session.commit()
    return jsonify(body), 201


# <id:...> matches 1 to 2**31 - 1 only (the Integer column's range): a larger id is a 404, never
# an "integer out of range" from the database.
@bp.get("/api/notebooks/<id:notebook_id>/notes")
def list_notes(notebook_id: int) -> t.Any:
    notebook = db.get_or_404(Notebook, notebook_id, description="No such notebook.")
    return jsonify([n.to_dict() for n in notebook.notes])


@bp.post("/api/notebooks/<id:notebook_id>/notes")
@login_required
def create_note(notebook_id: int) -> t.Any:
    notebook = db.get_or_404(Notebook, notebook_id, description="No such notebook.")
    data = api.json_body()
    title = api.text(data, "title", column=Note.title)
    body = api.text(data, "body", required=False, multiline=True, strip=False) or ""
    note = Note(notebook=notebook, title=title, body=body)
    db.session.add(note)
    db.session.flush()  # its id and created_at, in this transaction
    answer = note.to_dict()
    db.session.commit()
    return jsonify(answer), 201


@bp.delete("/api/notes/<id:note_id>")
@login_required
def delete_note(note_id: int) -> t.Any:
    note = db.get_or_404(Note, note_id, description="No such note.")
    db.session.delete(note)
    db.session.commit()
    return "", 204

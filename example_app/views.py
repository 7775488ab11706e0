"""The JSON API under /api: a user's notebooks and notes.

Every endpoint needs a login (a session cookie with its CSRF token, or a bearer token) and
reaches only the user's own rows: another user's are a 404, like ids that do not exist. Every
error under /api/ is JSON: bad input a 4xx naming the field, ids beyond the column a 404 for any
method, a lost database a 503 with Retry-After (``flask_complete.api``).

A write commits last: its answer is built before the commit, from the flushed row, so that
nothing is read after it. A read after the commit is a new query; if the connection is lost
then, the write is stored but the request fails, and a client cannot tell it from a write that
was not (``flask_complete.api`` answers 500 then, never 503).
"""

from __future__ import annotations

import typing as t

from flask import Blueprint, abort, jsonify
from flask_login import current_user
from sqlalchemy import func, select

from flask_complete import api, db
from flask_complete.auth import login_required

from . import access
from .models import Note, Notebook

bp = Blueprint("notes_api", __name__, url_prefix="/api")


@bp.get("/notebooks")
@login_required
def list_notebooks() -> t.Any:
    # Counted by the database in the same query; len(notebook.notes) would load every list.
    count = select(func.count(Note.id)).where(Note.notebook_id == Notebook.id).scalar_subquery()
    rows = db.session.execute(access.notebooks().add_columns(count)).all()
    return jsonify([notebook.to_dict(notes=notes) for notebook, notes in rows])


@bp.post("/notebooks")
@login_required
def create_notebook() -> t.Any:
    name = api.text(api.json_body(), "name", column=Notebook.name)
    if access.name_taken(name):
        abort(409, description=f"A notebook named {name!r} exists.")
    notebook = Notebook(name=name, owner_id=current_user.id)
    db.session.add(notebook)
    db.session.flush()  # its id, in this transaction
    body = notebook.to_dict(notes=0)  # a new notebook has none: no query for them
    db.session.commit()
    return jsonify(body), 201


# <id:...> matches 1 to 2**31 - 1 only (the Integer column's range): any other number is a 404
# for every method, never an "integer out of range" from the database.
@bp.delete("/notebooks/<id:notebook_id>")
@login_required
def delete_notebook(notebook_id: int) -> t.Any:
    db.session.delete(access.notebook_or_404(notebook_id))
    db.session.commit()
    return "", 204


@bp.get("/notebooks/<id:notebook_id>/notes")
@login_required
def list_notes(notebook_id: int) -> t.Any:
    notebook = access.notebook_or_404(notebook_id)
    return jsonify([n.to_dict() for n in notebook.notes])


@bp.post("/notebooks/<id:notebook_id>/notes")
@login_required
def create_note(notebook_id: int) -> t.Any:
    notebook = access.notebook_or_404(notebook_id)
    data = api.json_body()
    title = api.text(data, "title", column=Note.title)
    body = api.text(data, "body", required=False, multiline=True, strip=False) or ""
    note = Note(notebook=notebook, title=title, body=body)
    db.session.add(note)
    db.session.flush()  # its id and created_at, in this transaction
    answer = note.to_dict()
    db.session.commit()
    return jsonify(answer), 201


@bp.get("/notes/<id:note_id>")
@login_required
def get_note(note_id: int) -> t.Any:
    return jsonify(access.note_or_404(note_id).to_dict())


@bp.patch("/notes/<id:note_id>")
@login_required
def update_note(note_id: int) -> t.Any:
    note = access.note_or_404(note_id)
    data = api.json_body()
    if "title" in data:
        note.title = api.text(data, "title", column=Note.title)
    if "body" in data:
        note.body = api.text(data, "body", multiline=True, strip=False, required=False) or ""
    if "notebook_id" in data:
        moved_to = data["notebook_id"]
        if not isinstance(moved_to, int) or isinstance(moved_to, bool):
            abort(400, description="notebook_id must be a whole number.")
        if not api.fits(Notebook.id, moved_to):
            abort(404, description="No such notebook.")
        note.notebook = access.notebook_or_404(moved_to)
    db.session.flush()
    answer = note.to_dict()
    db.session.commit()
    return jsonify(answer)


@bp.delete("/notes/<id:note_id>")
@login_required
def delete_note(note_id: int) -> t.Any:
    db.session.delete(access.note_or_404(note_id))
    db.session.commit()
    return "", 204

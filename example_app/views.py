"""JSON API under /api and one HTML page."""

from __future__ import annotations

import typing as t

from flask import Blueprint, abort, jsonify, render_template, request
from sqlalchemy import select

from flask_complete import db

from .models import Note, Notebook

bp = Blueprint("notes", __name__)


def _json_body(*required: str) -> dict[str, t.Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="Send a JSON object with Content-Type: application/json.")
    for name in required:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            abort(400, description=f"'{name}' is required and must be a non-empty string.")
    return data


@bp.errorhandler(400)
@bp.errorhandler(404)
@bp.errorhandler(409)
def _json_error(error: t.Any) -> tuple[t.Any, int]:
    return jsonify(error=error.description), error.code


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _api_routing_error(error: t.Any) -> t.Any:
    # URLs no route matches never reach the blueprint's handlers: API clients still get JSON.
    if request.path.startswith("/api/"):
        return _json_error(error)
    return error


@bp.get("/")
def index() -> str:
    notebooks = db.session.scalars(select(Notebook).order_by(Notebook.name)).all()
    return render_template("index.html", notebooks=notebooks)


@bp.get("/api/notebooks")
def list_notebooks() -> t.Any:
    notebooks = db.session.scalars(select(Notebook).order_by(Notebook.name)).all()
    return jsonify([n.to_dict() for n in notebooks])


@bp.post("/api/notebooks")
def create_notebook() -> t.Any:
    name = _json_body("name")["name"].strip()
    if db.session.scalar(select(Notebook).filter_by(name=name)) is not None:
        abort(409, description=f"A notebook named {name!r} exists.")
    notebook = Notebook(name=name)
    db.session.add(notebook)
    db.session.commit()
    return jsonify(notebook.to_dict()), 201


@bp.get("/api/notebooks/<int:notebook_id>/notes")
def list_notes(notebook_id: int) -> t.Any:
    notebook = db.get_or_404(Notebook, notebook_id, description="No such notebook.")
    return jsonify([n.to_dict() for n in notebook.notes])


@bp.post("/api/notebooks/<int:notebook_id>/notes")
def create_note(notebook_id: int) -> t.Any:
    notebook = db.get_or_404(Notebook, notebook_id, description="No such notebook.")
    data = _json_body("title")
    body = data.get("body", "")
    if not isinstance(body, str):
        abort(400, description="'body' must be a string.")
    note = Note(notebook=notebook, title=data["title"].strip(), body=body)
    db.session.add(note)
    db.session.commit()
    return jsonify(note.to_dict()), 201


@bp.delete("/api/notes/<int:note_id>")
def delete_note(note_id: int) -> t.Any:
    note = db.get_or_404(Note, note_id, description="No such note.")
    db.session.delete(note)
    db.session.commit()
    return "", 204

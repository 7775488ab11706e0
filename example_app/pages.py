"""The HTML pages: a user's notebooks and notes, to list, create, edit and delete.

Forms post with the session's CSRF token (``csrf_token()`` in the templates; flask_complete
checks every unsafe request). A page behind the login sends a browser to ``/auth/login`` and
back. A form with bad input is shown again with the message and a ``400``.
"""

from __future__ import annotations

import typing as t

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import BadRequest

from flask_complete import api, db
from flask_complete.auth import login_required

from . import access, seeds
from .models import Note, Notebook

bp = Blueprint("notes", __name__)


def _field(name: str, column: t.Any = None, *, required: bool = True) -> str:
    """The API's rules for a text field, read from the form (a ``BadRequest`` says why)."""
    multiline = name == "body"
    value = api.text(
        request.form,
        name,
        column=column,
        required=required,
        multiline=multiline,
        strip=not multiline,
    )
    return value or ""


@bp.get("/")
def index() -> t.Any:
    if not current_user.is_authenticated:
        # In development the seeds' demo user is shown, to log in at once.
        demo = current_app.config.get("COMPLETE_ENV") == "development"
        return render_template("welcome.html", demo=demo and seeds.DEMO_LOGIN)
    # The notes of every notebook in one more query, not one per notebook.
    query = access.notebooks().options(selectinload(Notebook.notes))
    return render_template("index.html", notebooks=db.session.scalars(query).all())


@bp.post("/notebooks")
@login_required
def create_notebook() -> t.Any:
    try:
        name = _field("name", Notebook.name)
        if access.name_taken(name):
            raise BadRequest(f"You have a notebook named {name!r} already.")
    except BadRequest as e:
        query = access.notebooks().options(selectinload(Notebook.notes))
        notebooks = db.session.scalars(query).all()
        return render_template("index.html", notebooks=notebooks, error=e.description), 400
    notebook = Notebook(name=name, owner_id=current_user.id)
    db.session.add(notebook)
    db.session.flush()
    target = url_for(".notebook", notebook_id=notebook.id)
    db.session.commit()
    return redirect(target, 303)


@bp.get("/notebooks/<id:notebook_id>")
@login_required
def notebook(notebook_id: int) -> t.Any:
    return render_template("notebook.html", notebook=access.notebook_or_404(notebook_id))


@bp.post("/notebooks/<id:notebook_id>/delete")
@login_required
def delete_notebook(notebook_id: int) -> t.Any:
    db.session.delete(access.notebook_or_404(notebook_id))
    db.session.commit()
    return redirect(url_for(".index"), 303)


@bp.post("/notebooks/<id:notebook_id>/notes")
@login_required
def create_note(notebook_id: int) -> t.Any:
    found = access.notebook_or_404(notebook_id)
    try:
        title = _field("title", Note.title)
        body = _field("body", required=False)
    except BadRequest as e:
        return render_template("notebook.html", notebook=found, error=e.description), 400
    db.session.add(Note(notebook=found, title=title, body=body))
    db.session.commit()
    return redirect(url_for(".notebook", notebook_id=notebook_id), 303)


@bp.route("/notes/<id:note_id>", methods=["GET", "POST"])
@login_required
def edit_note(note_id: int) -> t.Any:
    note = access.note_or_404(note_id)
    if request.method == "GET":
        return render_template("note.html", note=note)
    try:
        note.title = _field("title", Note.title)
        note.body = _field("body", required=False)
    except BadRequest as e:
        db.session.rollback()
        return render_template("note.html", note=note, error=e.description), 400
    target = url_for(".notebook", notebook_id=note.notebook_id)
    db.session.commit()
    return redirect(target, 303)


@bp.post("/notes/<id:note_id>/delete")
@login_required
def delete_note(note_id: int) -> t.Any:
    note = access.note_or_404(note_id)
    target = url_for(".notebook", notebook_id=note.notebook_id)
    db.session.delete(note)
    db.session.commit()
    return redirect(target, 303)

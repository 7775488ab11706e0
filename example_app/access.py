"""What the logged-in user may reach: their own notebooks and notes. Anyone else's are a 404,
the same answer as an id that does not exist, so ids reveal nothing."""

from __future__ import annotations

from flask import abort
from flask_login import current_user
from sqlalchemy import Select, select

from flask_complete import db

from .models import Note, Notebook


def notebooks() -> Select[tuple[Notebook]]:
    """The current user's notebooks, by name."""
    return select(Notebook).where(Notebook.owner_id == current_user.id).order_by(Notebook.name)


def notebook_or_404(notebook_id: int) -> Notebook:
    found = db.session.scalar(
        select(Notebook).where(Notebook.id == notebook_id, Notebook.owner_id == current_user.id)
    )
    if found is None:
        abort(404, description="No such notebook.")
    return found


def note_or_404(note_id: int) -> Note:
    found = db.session.scalar(
        select(Note)
        .join(Note.notebook)
        .where(Note.id == note_id, Notebook.owner_id == current_user.id)
    )
    if found is None:
        abort(404, description="No such note.")
    return found


def name_taken(name: str, *, other_than: int | None = None) -> bool:
    """Whether the current user has a notebook named ``name`` already."""
    query = select(Notebook.id).where(Notebook.owner_id == current_user.id, Notebook.name == name)
    if other_than is not None:
        query = query.where(Notebook.id != other_than)
    return db.session.scalar(query) is not None

"""factory-boy factories bound to the current app's database session, found on each create.

Define factories at import time, before any app exists::

    from flask_complete.factories import ModelFactory

    class NoteFactory(ModelFactory):
        class Meta:
            model = Note

        title = factory.Sequence(lambda n: f"Note {n}")

Objects are flushed, not committed: they get their ids, and the test's rollback or the seed's
transaction decides whether they stay.
"""

from __future__ import annotations

import typing as t

from factory.alchemy import SQLAlchemyModelFactory
from flask import current_app

if t.TYPE_CHECKING:
    from sqlalchemy.orm import scoped_session

__all__ = ["ModelFactory", "current_session"]


def current_session() -> scoped_session[t.Any]:
    """The session of the current app's database (the one the pytest plugin isolates)."""
    if not current_app:
        raise RuntimeError(
            "A factory needs an app context to find the database session: create objects "
            "inside `with app.app_context():` (the pytest plugin pushes one for each test)."
        )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get("complete")
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None:
        raise RuntimeError(
            "The current app has no database: add Complete(app) (or bind Flask-SQLAlchemy)."
        )
    return t.cast("scoped_session[t.Any]", sqla.session)


class ModelFactory(SQLAlchemyModelFactory):
    """Abstract base for model factories: the current app's session, objects flushed."""

    class Meta:
        abstract = True
        sqlalchemy_session_factory = current_session
        sqlalchemy_session_persistence = "flush"

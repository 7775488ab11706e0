"""The notes app's models: notebooks holding notes, and the users who log in."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_complete import db
from flask_complete.auth import ApiTokenMixin, UserMixin


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Notebook(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    notes: Mapped[list[Note]] = relationship(
        back_populates="notebook", cascade="all, delete-orphan", order_by="Note.id"
    )

    def to_dict(self, notes: int | None = None) -> dict[str, object]:
        """``notes``: the count, when the query has it (else the notes are loaded)."""
        return {
            "id": self.id,
            "name": self.name,
            "notes": len(self.notes) if notes is None else notes,
        }


class Note(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    notebook_id: Mapped[int] = mapped_column(
        ForeignKey("notebook.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    notebook: Mapped[Notebook] = relationship(back_populates="notes")

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "notebook_id": self.notebook_id,
            "title": self.title,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }


class User(UserMixin, db.Model):
    """A user: email, password hash, active and admin flags, timestamps (from the mixin)."""


class ApiToken(ApiTokenMixin, db.Model):
    """A user's API token, stored as a digest (``flask users token``, ``POST /auth/tokens``)."""

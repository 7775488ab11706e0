"""The notes app's models: users who log in, each owning notebooks that hold notes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_complete import db
from flask_complete.auth import ApiTokenMixin, UserMixin


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Notebook(db.Model):
    """A user's notebook: only its owner sees it (anyone else gets a 404)."""

    # A name is unique among one user's notebooks, not across users.
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[User] = relationship()
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

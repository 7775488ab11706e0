"""SQLAlchemy models over the tables schema.sql creates, for code written from now on."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_complete import db


class User(db.Model):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(unique=True)
    password: Mapped[str]
    posts: Mapped[list["Post"]] = relationship(back_populates="author")


class Post(db.Model):
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created: Mapped[datetime] = mapped_column(server_default=sa.func.current_timestamp())
    title: Mapped[str]
    body: Mapped[str] = mapped_column(default="")
    author: Mapped[User] = relationship(back_populates="posts")

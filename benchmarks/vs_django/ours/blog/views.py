"""One JSON view: a user's posts."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from flask_complete import db

from .models import Post

bp = Blueprint("blog", __name__)


@bp.get("/users/<int:user_id>/posts")
def user_posts(user_id: int) -> ResponseReturnValue:
    posts = db.session.scalars(select(Post).where(Post.author_id == user_id).order_by(Post.id))
    return jsonify(
        posts=[
            {"id": p.id, "title": p.title, "created_at": p.created_at.isoformat()} for p in posts
        ]
    )

import sqlalchemy as sa
from flask import Blueprint, current_app, redirect, request, url_for
from flask_login import current_user, login_required

from app import db
from app.models import Post, User

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def index():
    posts = db.session.scalars(
        sa.select(Post).order_by(Post.timestamp.desc()).limit(current_app.config["POSTS_PER_PAGE"])
    )
    return "\n".join(f"{post.author.username}: {post.body}" for post in posts)


@bp.post("/")
@login_required
def post():
    db.session.add(Post(body=request.form["post"], author=current_user))
    db.session.commit()
    return redirect(url_for("main.index"))


@bp.get("/user/<username>")
def user(username):
    user = db.first_or_404(sa.select(User).where(User.username == username))
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(Post).where(Post.user_id == user.id)
    )
    return f"{user.username} <{user.email}>: {count} posts"


@bp.get("/users")
def users():
    return "\n".join(db.session.scalars(sa.select(User.username).order_by(User.username)))

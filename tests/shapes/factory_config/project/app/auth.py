import sqlalchemy as sa
from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user, login_user, logout_user

from app import db
from app.models import User

bp = Blueprint("auth", __name__)


@bp.post("/register")
def register():
    username, email = request.form["username"], request.form["email"]
    taken = db.session.scalar(
        sa.select(User).where((User.username == username) | (User.email == email))
    )
    if taken is not None:
        abort(409)
    user = User(username=username, email=email)
    user.set_password(request.form["password"])
    db.session.add(user)
    db.session.commit()
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if request.method == "GET":
        return "Sign in"
    user = db.session.scalar(sa.select(User).where(User.username == request.form["username"]))
    if user is None or not user.check_password(request.form["password"]):
        return "Invalid username or password", 401
    login_user(user, remember=request.form.get("remember_me") == "y")
    return redirect(url_for("main.index"))


@bp.get("/logout")
def logout():
    logout_user()
    return redirect(url_for("main.index"))

"""Public section, including homepage and signup."""

from flask import Blueprint, redirect, request, url_for
from flask_login import login_required, login_user, logout_user

from myproject.extensions import db, login_manager
from myproject.user.models import User

blueprint = Blueprint("public", __name__)


@login_manager.user_loader
def load_user(user_id):
    """Load user by ID."""
    return User.get_by_id(int(user_id))


@blueprint.route("/", methods=["GET", "POST"])
def home():
    """Home page, with the login form."""
    if request.method == "POST":
        user = db.session.execute(
            db.select(User).filter_by(username=request.form["username"])
        ).scalar()
        if user is None:
            return "Unknown user", 401
        if not user.check_password(request.form["password"]):
            return "Invalid password", 401
        if not user.active:
            return "User not activated", 401
        login_user(user)
        return redirect(request.args.get("next") or url_for("user.members"))
    return "Welcome"


@blueprint.route("/logout/")
@login_required
def logout():
    """Logout."""
    logout_user()
    return "You are logged out."


@blueprint.route("/register/", methods=["POST"])
def register():
    """Register new user."""
    form = request.form
    if form["password"] != form["confirm"]:
        return "Passwords must match", 400
    taken = db.session.execute(
        db.select(User).where((User.username == form["username"]) | (User.email == form["email"]))
    ).first()
    if taken is not None:
        return "Username or email already registered", 400
    User.create(
        username=form["username"], email=form["email"], password=form["password"], active=True
    )
    return "Thank you for registering. You can now log in.", 201

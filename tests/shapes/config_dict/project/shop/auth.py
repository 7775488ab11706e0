from flask import Blueprint, flash, redirect, render_template_string, request, url_for
from flask_login import login_required, login_user, logout_user

from . import db
from .models import User

auth = Blueprint("auth", __name__)

LOGIN_PAGE = """<form method="post">
{% for message in get_flashed_messages() %}<p>{{ message }}</p>{% endfor %}
<input name="email"> <input name="password" type="password"> <button>Log in</button>
</form>"""


@auth.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        user = db.session.scalar(db.select(User).filter_by(email=request.form["email"]))
        if user is not None and user.verify_password(request.form["password"]):
            login_user(user)
            return redirect(request.args.get("next") or url_for("main.index"))
        flash("Invalid email or password.")
    return render_template_string(LOGIN_PAGE)


@auth.route("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("main.index"))

from flask import Blueprint, current_app
from flask_login import current_user, login_required

main = Blueprint("main", __name__)


@main.route("/")
def index():
    return f"Welcome to {current_app.config['SHOP_NAME']}"


@main.route("/account")
@login_required
def account():
    return current_user.email

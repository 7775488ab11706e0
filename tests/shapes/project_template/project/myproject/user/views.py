"""User views."""

from flask import Blueprint
from flask_login import current_user, login_required

blueprint = Blueprint("user", __name__, url_prefix="/users")


@blueprint.route("/")
@login_required
def members():
    """List members."""
    return f"Members area, {current_user.username}"

"""A guestbook as the hosting guides lay one out: code under src/, settings modules chosen by
the app's own variable, the database URL built from DB* variables."""

import os
from pathlib import Path

from flask import Flask

from flask_complete import Complete

from .models import db, migrate


def create_app(test_config=None):
    app = Flask(__name__)
    if os.environ.get("RUNNING_IN_PRODUCTION"):
        app.config.from_object("guestbook.production")
    else:
        app.config.from_object("guestbook.development")
    if test_config:
        app.config.update(test_config)

    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))
    Complete(app, db=db)

    from . import views

    app.register_blueprint(views.bp)
    return app

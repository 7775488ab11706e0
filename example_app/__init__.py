"""A small notes app: an ordinary Flask app with the one flask_complete call."""

from __future__ import annotations

import typing as t

from flask import Flask

from flask_complete import Complete, api

from .models import User

complete = Complete(user_model=User)


def create_app(test_config: t.Mapping[str, t.Any] | None = None) -> Flask:
    """Build the app; ``test_config`` values win over every settings file."""
    app = Flask(__name__)
    if test_config:
        app.config.from_mapping(test_config)
    complete.init_app(app)
    # JSON errors under /api/, 503 when the database is lost, <id:...> URLs.
    api.init_app(app)

    from . import views

    app.register_blueprint(views.bp)
    return app

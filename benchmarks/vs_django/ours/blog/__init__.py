"""The blog of bench_vs_django.py on flask_complete: users, their posts and comments."""

from __future__ import annotations

from flask import Flask

from flask_complete import Complete

complete = Complete()


def create_app() -> Flask:
    """Build the app (settings: settings.toml beside the package, and the environment)."""
    app = Flask(__name__)
    complete.init_app(app)
    from . import views

    app.register_blueprint(views.bp)
    return app

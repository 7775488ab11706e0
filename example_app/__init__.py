"""A small notes app: an ordinary Flask app with the one flask_complete call."""

from __future__ import annotations

import typing as t

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

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
    for code in (403, 404, 500):
        app.register_error_handler(code, error_page)

    from . import pages, views

    app.register_blueprint(pages.bp)
    app.register_blueprint(views.bp)
    return app


def error_page(error: HTTPException) -> t.Any:
    """A page for a browser; JSON for other clients under /api/ and /auth/ (a handler for a
    status code wins over flask_complete.api's JSON one, so it answers there itself)."""
    if isinstance(error, InternalServerError):
        # Never the exception's text: it may hold internals.
        error = InternalServerError()
    accept = request.accept_mimetypes
    if api.under_prefix() and accept.quality("text/html") <= accept.quality("application/json"):
        return api.error_response(error)
    return render_template("error.html", error=error), error.code

from flask import Flask

from flask_complete import Complete

from . import api, cli
from .models import db


def create_app(test_config=None):
    """The app. Settings: defaults, then FLASK_* environment variables, then ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///tasktracker.sqlite",
        PAGE_SIZE=20,
    )
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)

    Complete(app, db=db)
    app.register_blueprint(api.bp)
    cli.init_app(app)
    return app

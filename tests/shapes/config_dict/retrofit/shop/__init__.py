import os

from config import config
from flask import Flask
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy

from flask_complete import Complete

db = SQLAlchemy()
login_manager = LoginManager()
login_manager.login_view = "auth.login"


def create_app(config_name=None):
    config_name = config_name or os.environ.get("FLASK_CONFIG") or "default"
    app = Flask(__name__)
    app.config.from_object(config[config_name])

    login_manager.init_app(app)
    # The app's own switch names flask_complete's environment too: one switch, never two.
    Complete(app, db=db, env_var="FLASK_CONFIG", env_names={"default": "development"})

    from .auth import auth as auth_blueprint
    from .main import main as main_blueprint

    app.register_blueprint(main_blueprint)
    app.register_blueprint(auth_blueprint, url_prefix="/auth")
    return app

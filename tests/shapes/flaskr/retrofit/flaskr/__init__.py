import os

from flask import Flask

from flask_complete import Complete


def create_app(test_config=None):
    """Create and configure an instance of the Flask application."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"))

    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.update(test_config)

    os.makedirs(app.instance_path, exist_ok=True)
    # SQLAlchemy on the same file, for new code; the secret key comes from flask_complete.
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", f"sqlite:///{app.config['DATABASE']}")
    Complete(app)

    @app.route("/hello")
    def hello():
        return "Hello, World!"

    from . import auth, blog, db

    db.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(blog.bp)
    app.add_url_rule("/", endpoint="index")

    return app

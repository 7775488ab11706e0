"""Create an application instance (FLASK_APP=autoapp)."""

from myproject.app import create_app

app = create_app()

"""Application configuration, read from the environment (a .env file in development)."""

import os

DEBUG = os.environ.get("FLASK_DEBUG") == "1"
SQLALCHEMY_DATABASE_URI = os.environ["DATABASE_URL"]
SECRET_KEY = os.environ["SECRET_KEY"]
SEND_FILE_MAX_AGE_DEFAULT = int(os.environ.get("SEND_FILE_MAX_AGE_DEFAULT", "0"))
SQLALCHEMY_TRACK_MODIFICATIONS = False

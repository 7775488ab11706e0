"""Settings module for test app."""

TESTING = True
SQLALCHEMY_DATABASE_URI = "sqlite://"
SECRET_KEY = "not-so-secret-in-tests"
SQLALCHEMY_TRACK_MODIFICATIONS = False

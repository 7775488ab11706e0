"""Settings: the layers read once into ``app.config`` (files, ``.env``, credentials, environment
variables), the schema of every known setting, what is secret and how it is redacted, and which
environment the app is in. Imports only :mod:`flask_complete.problems`.
"""

"""The web pieces: CORS and the health endpoint. Imports migrations, db, state and settings (and
:mod:`flask_complete.api`).
"""

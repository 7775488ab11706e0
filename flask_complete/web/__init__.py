"""The web pieces: CORS (``cors``) and the health endpoint (``health``). Import migrations, the
database layer, the state and the settings; never auth or data.
"""

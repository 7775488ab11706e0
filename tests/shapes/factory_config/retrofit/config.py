class Config:
    # SECRET_KEY and DATABASE_URL come from the environment or settings.toml (flask_complete);
    # development defaults to instance/app-dev.sqlite3 and a generated key.
    POSTS_PER_PAGE = 25

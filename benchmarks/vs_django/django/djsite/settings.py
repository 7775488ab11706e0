"""A minimal project: the blog app only (no contrib apps), the database from BENCH_DATABASE_URL
(``postgresql+psycopg://user@host:port/name`` or ``sqlite:////path/to/file.sqlite3``); the test
database is test_<name>, a file beside the SQLite one (Django's default would be in memory)."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-vs-django-not-secret-2b7f0c8e4a9d1f6e3c5b8a7d9e0f1c2b"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
INSTALLED_APPS = ["blog"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "djsite.urls"
USE_TZ = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


def _database(url: str) -> dict[str, object]:
    if url.startswith("sqlite:"):
        path = Path(url.split(":///", 1)[1])
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
        }
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {
    "default": _database(
        os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{BASE_DIR / 'blog.sqlite3'}")
    )
}

"""The health endpoint: off by default; database and migration head, one query once at head."""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import track
from flask import Flask

from flask_complete import Complete, ConfigError
from flask_complete.extension import get_state
from flask_complete.migrations import migrate as fc_migrations

STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
REPO = Path(__file__).resolve().parent.parent


def make_app(root: Path, url: str, **config: t.Any) -> Flask:
    app = Flask("healthy", root_path=str(root))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=url, **config)
    Complete(app, env="production", root=root)
    track(app)
    return app


def with_migrations(root: Path) -> Path:
    """``root`` holding a copy of the example app's migrations folder."""
    shutil.copytree(REPO / "example_app" / "migrations", root / "migrations")
    return root


def test_off_by_default(tmp_path: Path) -> None:
    app = make_app(tmp_path, "sqlite://")
    assert "flask_complete_health" not in app.view_functions
    assert app.test_client().get("/-/health").status_code == 404


def test_without_migrations(tmp_path: Path) -> None:
    app = make_app(tmp_path, "sqlite://", HEALTH_ENDPOINT="/-/health")
    response = app.test_client().get("/-/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "migrations": "not used"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_migration_head(database_url: str, tmp_path: Path) -> None:
    app = make_app(with_migrations(tmp_path), database_url, HEALTH_ENDPOINT="/-/health")
    client = app.test_client()
    behind = client.get("/-/health")
    assert behind.status_code == 503
    assert behind.json == {"status": "error", "database": "ok", "migrations": "not at head"}
    fc_migrations.upgrade(app)
    first = client.get("/-/health")
    assert first.status_code == 200
    assert first.json == {"status": "ok", "database": "ok", "migrations": "head"}

    statements: list[str] = []
    with app.app_context():
        engine = get_state(app).db.engine  # type: ignore[union-attr]

    def record(*args: t.Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        again = client.get("/-/health")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert again.status_code == 200 and again.json["migrations"] == "head"
    assert statements == ["SELECT 1"]


def test_unreachable_database(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        "postgresql+psycopg://app:hunter2@127.0.0.1:9/app",
        HEALTH_ENDPOINT="/-/health",
    )
    response = app.test_client().get("/-/health")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "unreachable", "migrations": "unknown"}
    assert "hunter2" not in response.get_data(as_text=True)


def test_bad_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HEALTH_ENDPOINT = .health. is not a URL path"):
        make_app(tmp_path, "sqlite://", HEALTH_ENDPOINT="health")


def test_example_app_answers_without_login(tmp_path: Path) -> None:
    """The example app has login and CSRF protection; the health endpoint needs neither."""
    from example_app import create_app

    app = create_app(
        {
            "SECRET_KEY": STRONG,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'notes.sqlite3'}",
            "HEALTH_ENDPOINT": "/-/health",
        }
    )
    track(app)
    fc_migrations.upgrade(app)
    client = app.test_client()
    response = client.get("/-/health")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "ok", "database": "ok", "migrations": "head"}
    assert "Set-Cookie" not in response.headers
    assert client.get("/auth/me").status_code == 401


def test_an_unusable_migrations_folder_is_a_503_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A migrations folder without env.py: the migrations are unknown, so the answer is 503
    with the reason logged, not a 500."""
    (with_migrations(tmp_path) / "migrations" / "env.py").unlink()
    app = make_app(tmp_path, "sqlite://", HEALTH_ENDPOINT="/-/health")
    response = app.test_client().get("/-/health")
    assert response.status_code == 503
    assert response.json["migrations"] == "unusable folder"
    assert any("env.py" in r.getMessage() for r in caplog.records)

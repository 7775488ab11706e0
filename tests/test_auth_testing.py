"""The test helpers behind the pytest plugin's ``login``/``auth_user``/``auth_client`` fixtures."""

from __future__ import annotations

import typing as t
from pathlib import Path

from authapps import authdb, dispose, make_app
from flask import Flask
from flask_login import current_user

from flask_complete.auth import login_required
from flask_complete.auth.testing import (
    DEFAULT_PASSWORD,
    bearer_headers,
    create_user,
    login,
    login_client,
    logout_client,
)

pytest_plugins = ["authapps"]


def test_login_client_without_the_kdf_and_with_the_csrf_header(tmp_path: Path) -> None:
    app: Flask = make_app(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path, env="development")

    @app.post("/api/echo")
    @login_required
    def echo() -> t.Any:
        return {"email": current_user.email}

    try:
        assert login is login_client
        with app.app_context():
            user = create_user(is_admin=True)
            assert user.check_password(DEFAULT_PASSWORD)
            authdb.session.commit()
            client = app.test_client()
            token = login_client(client, user)
            headers = bearer_headers(user)
            email = user.email
            authdb.session.commit()
        assert client.get("/auth/me").json["csrf_token"] == token
        assert client.post("/api/echo").json == {"email": email}

        logout_client(client)
        assert client.post("/api/echo").status_code == 401
        assert app.test_client().post("/api/echo", headers=headers).status_code == 200
    finally:
        dispose(app)

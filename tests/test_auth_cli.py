"""``flask users activate | delete | tokens | revoke-token``, and passwords that are text."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from authapps import PASSWORD, ApiToken, User, add_user, authdb
from flask import Flask

from flask_complete.auth import passwords

pytest_plugins = ["authapps"]
EMAIL = "ann@example.test"


def can_log_in(app: Flask, password: str = PASSWORD) -> bool:
    response = app.test_client().post("/auth/login", json={"email": EMAIL, "password": password})
    return response.status_code == 200


def test_activate_undoes_deactivate(auth_app: Flask) -> None:
    add_user(auth_app)
    runner = auth_app.test_cli_runner()
    assert runner.invoke(args=["users", "deactivate", EMAIL]).exit_code == 0
    assert not can_log_in(auth_app)
    activated = runner.invoke(args=["users", "activate", "ANN@example.test"])
    assert activated.exit_code == 0, activated.output
    assert f"activated {EMAIL}" in activated.output
    assert can_log_in(auth_app)
    again = runner.invoke(args=["users", "activate", EMAIL])
    assert again.exit_code == 0 and "already active" in again.output


def test_delete_asks_first_and_removes_the_user_and_its_tokens(auth_app: Flask) -> None:
    add_user(auth_app)
    add_user(auth_app, "bob@example.test")
    runner = auth_app.test_cli_runner()
    assert runner.invoke(args=["users", "token", EMAIL, "-n", "ci"]).exit_code == 0

    declined = runner.invoke(args=["users", "delete", EMAIL], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert f"Delete {EMAIL}" in declined.output and "1 API token" in declined.output
    assert can_log_in(auth_app)

    deleted = runner.invoke(args=["users", "delete", EMAIL], input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted {EMAIL}" in deleted.output
    with auth_app.app_context():
        assert authdb.session.scalars(sa.select(User.email)).all() == ["bob@example.test"]
        assert authdb.session.scalars(sa.select(ApiToken)).all() == []
    assert not can_log_in(auth_app)

    gone = runner.invoke(args=["users", "delete", EMAIL, "--yes"])
    assert gone.exit_code == 1 and "No user with email" in gone.output
    quick = runner.invoke(args=["users", "delete", "bob@example.test", "--yes"])
    assert quick.exit_code == 0, quick.output


def test_tokens_lists_and_revoke_token_revokes(auth_app: Flask) -> None:
    add_user(auth_app)
    add_user(auth_app, "bob@example.test")
    runner = auth_app.test_cli_runner()
    assert "no API tokens" in runner.invoke(args=["users", "tokens", EMAIL]).output
    secret = runner.invoke(args=["users", "token", EMAIL, "-n", "deploy"]).stdout.split()[0]
    runner.invoke(args=["users", "token", EMAIL, "-n", "laptop", "--expires-in", "3"])
    bob = runner.invoke(args=["users", "token", "bob@example.test", "-n", "bob's"])
    assert bob.exit_code == 0

    listed = runner.invoke(args=["users", "tokens", EMAIL])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2 and "deploy" in listed.output and "laptop" in listed.output
    assert secret not in listed.output and secret[:8] in listed.output  # the hint only
    deploy_id = next(line.split()[0] for line in lines if "deploy" in line)

    headers = {"Authorization": f"Bearer {secret}"}
    assert auth_app.test_client().get("/auth/me", headers=headers).status_code == 200
    revoked = runner.invoke(args=["users", "revoke-token", deploy_id])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {deploy_id} 'deploy' of {EMAIL}" in revoked.output
    assert auth_app.test_client().get("/auth/me", headers=headers).status_code == 401
    assert "revoked" in runner.invoke(args=["users", "tokens", EMAIL]).output

    for bad in ("999999", "2147483648", "abc", "0"):
        refused = runner.invoke(args=["users", "revoke-token", bad])
        assert refused.exit_code in (1, 2), (bad, refused.output)
        assert "No token" in refused.output or "not a valid integer" in refused.output, bad


@pytest.mark.parametrize("password", ["pass\x00word12345", "pass\tword12345", "pass\x7fword1234"])
def test_passwords_are_text_without_control_characters(auth_app: Flask, password: str) -> None:
    assert passwords.usable(password) is None
    with pytest.raises(passwords.PasswordError, match="control characters"):
        passwords.check_strength(password, 10)
    runner = auth_app.test_cli_runner()
    refused = runner.invoke(args=["users", "create", EMAIL, "-p", password])
    assert refused.exit_code == 2 and "control characters" in refused.output
    add_user(auth_app)
    response = auth_app.test_client().post(
        "/auth/login", json={"email": EMAIL, "password": password}
    )
    assert response.status_code == 401


def test_a_password_may_hold_any_printable_text() -> None:
    for password in (
        "correct horse battery",
        "пароль-пароль",
        "密码密码密码密码密码",
        "emoji 🔑🔑🔑🔑",
    ):
        assert passwords.usable(password) == password

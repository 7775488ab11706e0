"""One identity, one counter: emails are looked up by their exact normalised form (case folded,
NFKC), also on MariaDB's accent- and case-insensitive ``utf8mb4_general_ci``, and the account's
throttle counter is keyed on that form; ``flask users`` follows the same rule."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from authapps import PASSWORD, add_user, dispose, make_app
from flask import Flask

from flask_complete.auth.models import normalise_email

pytest_plugins = ["authapps"]
#: "ANN@example.com" in full-width letters, which NFKC makes ASCII.
WIDE = "\uff21\uff2e\uff2e@example.com"


def login(client: t.Any, email: str, password: str = PASSWORD) -> t.Any:
    return client.post("/auth/login", json={"email": email, "password": password})


@pytest.fixture
def identity_app(any_db_url: str, tmp_path: Path) -> t.Iterator[Flask]:
    # Only the account counters are under test here.
    app = make_app(any_db_url, tmp_path, AUTH_THROTTLE_ADDRESS_LIMIT=1000)
    add_user(app, "ann@example.com")
    yield app
    dispose(app)


def test_normalised_form() -> None:
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    assert normalise_email(WIDE) == "ann@example.com"  # fullwidth: NFKC
    assert normalise_email("STRASSE@example.com") == normalise_email("straße@example.com")
    assert normalise_email("ànn@example.com") != "ann@example.com"  # accents are kept
    assert normalise_email("a\u0300nn@example.com") == normalise_email("ànn@example.com")


@pytest.mark.parametrize("variant", ["ànn@example.com", "ann@exämple.com", "añn@example.com"])
def test_an_accent_variant_is_another_account(identity_app: Flask, variant: str) -> None:
    client = identity_app.test_client()
    response = login(client, variant)
    assert response.status_code == 401, response.json
    assert client.get("/auth/me").status_code == 401
    assert login(client, " ANN@example.com").status_code == 200


def test_case_and_width_variants_share_one_counter(identity_app: Flask) -> None:
    client = identity_app.test_client()
    variants = ["ann@example.com", "ANN@example.com", "Ann@Example.Com", WIDE]
    answers = [
        login(client, v, "wrong password").status_code for v in [*variants, "ann@EXAMPLE.com"]
    ]
    assert answers == [401] * 5
    for variant in variants:
        assert login(client, variant).status_code == 429, variant


def test_accent_variants_do_not_spend_the_account_s_attempts(identity_app: Flask) -> None:
    client = identity_app.test_client()
    for variant in ("ànn@example.com", "ánn@example.com", "ânn@example.com", "änn@example.com"):
        for _ in range(5):
            assert login(client, variant, "wrong password").status_code == 401
        assert login(client, variant, "wrong password").status_code == 429
    assert login(client, "ann@example.com").status_code == 200


def test_users_command_looks_up_the_exact_form(identity_app: Flask) -> None:
    runner = identity_app.test_cli_runner()
    wrong = runner.invoke(
        args=["users", "set-password", "ànn@example.com", "-p", "a new password!"]
    )
    assert wrong.exit_code == 1 and "No user with email 'ànn@example.com'" in wrong.output
    right = runner.invoke(
        args=["users", "set-password", "ANN@example.com", "-p", "a new password!"]
    )
    assert right.exit_code == 0, right.output
    assert (
        login(identity_app.test_client(), "ann@example.com", "a new password!").status_code == 200
    )

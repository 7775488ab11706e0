"""Secrets: production refuses guessable keys, and nothing prints a secret."""

from __future__ import annotations

import base64
import os
import random
import secrets
import typing as t
import uuid
from pathlib import Path

import pytest
from flask import Flask

from flask_complete import Complete, ConfigError
from flask_complete.config import check_secret, redact, redact_url

WEAK = [
    " " * 40,
    "\t \n " * 10,
    "a" * 32,
    "a" * 31 + "b",
    b"\x00" * 32,
    "ab" * 20,
    "abc" * 11,
    "k3y-" * 12,
    "0123456789" * 4,
    "auth-test-secret-" * 4,
    "password" + "!" * 24,
    "!" * 12 + "changeme" + "!" * 12,
    "password1234567890" + "x" * 14,
    "mysupersecretkey" + "_" * 16,
    "abcdefghijklmnopqrstuvwxyzabcdef",
    "1234567890123456789012345678901234567890",
    "secretsecretsecretsecretsecret12",
    "aabbaabbaabbaabbaabbaabbaabbaabbab",
    "browser-test-" + "k" * 32,
]


@pytest.mark.parametrize("key", WEAK, ids=lambda k: repr(k)[:24])
def test_guessable_keys_are_refused(key: str | bytes) -> None:
    (problem,) = check_secret(key, "production", "env SECRET_KEY")
    assert problem.id == "secret.weak" and problem.level == "error"
    assert problem.message.startswith("SECRET_KEY (from env SECRET_KEY) is guessable: it ")
    assert "token_urlsafe(48)" in problem.fix


@pytest.mark.parametrize(
    "key",
    [
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(32),
        secrets.token_hex(32),
        secrets.token_hex(16),
        os.urandom(32),
        str(uuid.uuid4()),
        "correct horse battery staple umbrella mango",
        "Tr0ub4dor&3 is not a passphrase, but this long one is fine",
    ],
    # Stable ids: pytest-xdist workers must collect the same test names.
    ids=["urlsafe48", "urlsafe32", "hex32", "hex16", "bytes32", "uuid4", "words", "sentence"],
)
def test_random_keys_and_passphrases_pass(key: str | bytes) -> None:
    assert check_secret(key, "production", "env SECRET_KEY") == []


def test_random_keys_of_every_common_alphabet_pass() -> None:
    # Seeded, so that a run is repeatable (about 1 in 30,000 random 32-digit keys is refused).
    draw = random.Random(20261201)
    for _ in range(300):
        for key in (
            draw.randbytes(16).hex(),
            base64.urlsafe_b64encode(draw.randbytes(24)).decode(),
            f"{draw.randrange(10**32):032d}",  # 32 random digits: about 106 bits
        ):
            assert check_secret(key, "production", "x") == [], key


def test_a_key_that_is_no_string_is_refused() -> None:
    (problem,) = check_secret(12345678901234567890123456789012345, "production", "code")
    assert problem.message == "SECRET_KEY (from code) is of type int, not a string."


def test_missing_key_reads_as_a_first_line() -> None:
    (problem,) = check_secret(None, "production", "code")
    assert problem.id == "secret.missing"
    assert (
        problem.message == "SECRET_KEY is missing: production signs sessions and cookies with it."
    )


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("key", [" " * 40, "a" * 32])
def test_production_does_not_start_with_them(tmp_path: Path, key: str) -> None:
    app = Flask("weak", root_path=str(tmp_path))
    app.config.update(SECRET_KEY=key, SQLALCHEMY_DATABASE_URI="sqlite://")
    with pytest.raises(ConfigError) as e:
        Complete(app, env="production", root=tmp_path)
    assert e.value.format_message().startswith("SECRET_KEY (from code) is guessable")


# -- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("SECRET_KEY", "s3cr3t", "***"),
        ("SECRET_KEY", b"raw", "***"),
        ("SECRET_KEY_FALLBACKS", ["old1", "old2"], ["***", "***"]),
        ("MAIL_PASSWORD", "pw", "***"),
        ("LDAP_PASSWD", "pw", "***"),
        ("GITHUB_TOKEN", "ghp_x", "***"),
        ("API_TOKEN", 123456, "***"),  # read as a number from the environment
        ("AWS_CREDENTIALS", "x", "***"),
        ("STRIPE_API_KEY", "sk_live", "***"),
        ("PRIVATE_PEM", "-----BEGIN", "***"),
        ("SENTRY_DSN", "https://key@o1.ingest.sentry.io/1", "***"),
        ("OAUTH_CLIENT_AUTH", "basic x", "***"),
        ("FERNET_KEY", "k", "***"),
        ("PROVIDERS", {"github": {"client_secret": "x", "id": "y"}}, None),
        ("SSO", {"PRIVATE": {"a": "x", "b": ["y"]}}, {"PRIVATE": {"a": "***", "b": ["***"]}}),
        ("GREETING", "hi", "hi"),
        ("SECRET_FEATURE_ON", True, True),
        ("API_TOKEN", "", ""),
        # The bundle's own settings and Flask-Login's named like secrets are shown.
        ("AUTH_URL_PREFIX", "/auth", "/auth"),
        ("AUTH_TOKEN_DAYS", 30, 30),
        ("AUTH_PASSWORD_MIN_LENGTH", 10, 10),
        ("AUTH_THROTTLE_PREFIX", "fc:", "fc:"),
        ("AUTH_HEADER_NAME", "Authorization", "Authorization"),
    ],
)
def test_redact_by_name(key: str, value: t.Any, shown: t.Any) -> None:
    if shown is None:
        shown = {"github": {"client_secret": "***", "id": "y"}}
    assert redact(key, value) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u:p@ss/w@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("mysql://u:pa?ss#1@h/db", "mysql://u:***@h/db"),
        ("https://h.test/?email=a@b.test", "https://h.test/?email=a@b.test"),
        ("mysql+pymysql://root@127.0.0.1/app", "mysql+pymysql://root@127.0.0.1/app"),
        ("postgresql://u@h/db?password=pw&sslmode=require", None),
        ("https://key@o1.ingest.sentry.io/1", "https://***@o1.ingest.sentry.io/1"),
        ("redis://:pw@cache:6379/0", "redis://***@cache:6379/0"),
        ("amqp://user:pw@mq//", "amqp://***@mq//"),
        (
            "https://api.example.com/v1?api_key=k&page=2",
            "https://api.example.com/v1?api_key=***&page=2",
        ),
        ("http://localhost:*", "http://localhost:*"),
        ("http://[::1]:*", "http://[::1]:*"),
        ("sqlite:////tmp/app.db", "sqlite:////tmp/app.db"),
        ("not a url", "not a url"),
    ],
)
def test_redact_urls(url: str, shown: str | None) -> None:
    if shown is None:
        shown = "postgresql://u@h/db?password=***&sslmode=require"
    assert redact_url(url) == shown
    assert redact("SOME_URL", url) == shown


def test_redact_urls_inside_tables_and_lists() -> None:
    binds = {"reports": "postgresql://r:pw@h/r", "x": {"url": "mysql://u:pw@h/x", "echo": True}}
    assert redact("SQLALCHEMY_BINDS", binds) == {
        "reports": "postgresql://r:***@h/r",
        "x": {"url": "mysql://u:***@h/x", "echo": True},
    }
    options = {"connect_args": {"password": "pw", "sslmode": "require"}}
    assert redact("SQLALCHEMY_ENGINE_OPTIONS", options) == {
        "connect_args": {"password": "***", "sslmode": "require"}
    }
    assert redact("MIRRORS", ["https://u:pw@a.test/", "https://b.test/"]) == [
        "https://***@a.test/",
        "https://b.test/",
    ]

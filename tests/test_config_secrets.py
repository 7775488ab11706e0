"""Secrets: production refuses guessable keys, and nothing prints a secret."""

from __future__ import annotations

import base64
import os
import random
import secrets
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from flask_complete import Complete, ConfigError
from flask_complete.settings.config import check_secret, redact, redact_url
from flask_complete.settings.sensitive import MIN_SECRET_BITS, strength

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


#: The keys that started in production before keys were judged by their estimated entropy.
STARTED = [
    "dev-secret-key-do-not-use-in-production",
    "secret_key_for_production_use_only_123",
    "flask-complete-example-secret-key-2024",
    "ThisIsMyVerySecretKeyForTheFlaskApplication",
    "qwertyuiopasdfghjklzxcvbnm123456",
    "correct horse battery staple umbrella mango",
]


@pytest.mark.parametrize("key", WEAK + STARTED, ids=lambda k: repr(k)[:24])
def test_guessable_keys_are_refused(key: str | bytes) -> None:
    (problem,) = check_secret(key, "production", "env SECRET_KEY", names=["myapp"])
    assert problem.id == "secret.weak" and problem.level == "error"
    assert problem.message.startswith("SECRET_KEY (from env SECRET_KEY) is guessable: about ")
    assert "bits" in problem.message and "production needs 128" in problem.message
    assert "token_urlsafe(48)" in problem.fix


def test_the_message_names_the_patterns_never_the_key() -> None:
    key = "flask-complete-example-secret-key-2024"
    (problem,) = check_secret(key, "production", "code", names=["flask_complete"])
    assert "made of the app's name, 3 dictionary words, a sequence" in problem.message
    assert not any(part in problem.message for part in ("example", "2024", "complete-"))


@pytest.mark.parametrize(
    "key",
    [
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(24),
        secrets.token_hex(32),
        secrets.token_hex(16),
        secrets.token_hex(16).upper(),
        os.urandom(32),
        base64.b64encode(os.urandom(32)).decode(),
    ],
    # Stable ids: pytest-xdist workers must collect the same test names.
    ids=["urlsafe48", "urlsafe32", "urlsafe24", "hex32", "hex16", "HEX16", "bytes32", "b64"],
)
def test_random_keys_pass(key: str | bytes) -> None:
    assert check_secret(key, "production", "env SECRET_KEY") == []


def _random(draw: random.Random, kind: str, size: int) -> str | bytes:
    raw = draw.randbytes(size)
    if kind == "hex":
        return raw.hex()
    if kind == "HEX":
        return raw.hex().upper()
    if kind == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if kind == "base64":
        return base64.b64encode(raw).decode()
    return raw


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**64),
    kind_size=st.sampled_from([("hex", 16), ("HEX", 16), ("urlsafe", 24), ("base64", 24)])
    | st.tuples(st.sampled_from(["hex", "urlsafe", "base64", "bytes"]), st.integers(32, 96)),
)
def test_every_random_key_of_128_bits_or_more_passes(seed: int, kind_size: tuple[str, int]) -> None:
    """``secrets.token_hex(n >= 16)``, ``token_urlsafe(n >= 24)``, base64 and raw bytes: drawn
    as ``secrets`` draws them, from a seed hypothesis picks (so that a failure replays)."""
    kind, size = kind_size
    key = _random(random.Random(seed), kind, size)
    assert check_secret(key, "production", "env SECRET_KEY", names=["myapp"]) == []


WORDS = [w for w in FREQUENCY_LISTS["english_wikipedia"][:2000] if w.isalpha()]
ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "QWERTYUIOP", "ASDFGHJKL"]
separators = st.sampled_from(["", "-", "_", " ", ".", "/"])
styles = st.sampled_from([str.lower, str.title, str.upper])


@st.composite
def phrases(draw: st.DrawFn) -> str:
    """Up to five common words, one separator, one case, maybe a number or a year."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5))
    sep, style = draw(separators), draw(styles)
    tail = draw(st.sampled_from(["", str(draw(st.integers(0, 9999)))]))
    return sep.join([*map(style, words), *([tail] if tail else [])])


@st.composite
def keyboard_runs(draw: st.DrawFn) -> str:
    runs = []
    for _ in range(draw(st.integers(1, 4))):
        row = draw(st.sampled_from(ROWS))
        start = draw(st.integers(0, len(row) - 4))
        runs.append(row[start : draw(st.integers(start + 4, len(row)))])
    return "".join(runs)


@st.composite
def with_the_app_name(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["myshop", "MyShop", "MYSHOP", "my_shop", "my-shop"]))
    parts = [name, *draw(st.lists(st.sampled_from(WORDS), max_size=3))]
    parts.append(draw(st.sampled_from(["secret", "key", "secret-key", "prod", "production"])))
    parts.append(str(draw(st.integers(0, 2030))))
    return draw(separators).join(parts)


@st.composite
def repeats(draw: st.DrawFn) -> str:
    """Any chunk of up to 10 characters, random ones too, repeated past 32 characters."""
    chunk = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=10))
    chunk = chunk or draw(st.sampled_from(["a", " ", "0"]))
    return chunk * (40 // len(chunk) + 1)


@settings(max_examples=300, deadline=None)
@given(key=phrases() | keyboard_runs() | with_the_app_name() | repeats())
def test_every_key_made_of_words_runs_the_app_name_or_repeats_fails(key: str) -> None:
    assert strength(key, ["myshop"]).bits < MIN_SECRET_BITS
    (problem,) = check_secret(key, "production", "code", names=["myshop"])
    assert problem.id == "secret.weak"


def test_the_app_name_counts_for_little() -> None:
    # A made-up name no dictionary has: random letters, until it is the app's.
    key = "zorblatix-quvendra-secret-key-2024"
    named = strength(key, ["Zorblatix Quvendra"])
    assert named.patterns[:2] == ("the app's name",) * 2
    assert named.bits < strength(key).bits - 30


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


ZXCVBN_IMPORTED = """
import json, sys
from flask import Flask
import flask_complete
from flask_complete import Complete
from flask_complete.settings.config import check_secret
plain = "zxcvbn" in sys.modules
app = Flask("costapp", root_path=sys.argv[1], instance_path=sys.argv[1] + "/instance")
Complete(app, env="development", root=sys.argv[1])
check_secret("dev", "development", "code")
development = "zxcvbn" in sys.modules
check_secret("x" * 40, "production", "code")
print(json.dumps([plain, development, "zxcvbn" in sys.modules]))
"""


def test_zxcvbn_is_imported_only_when_production_judges_a_key(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", ZXCVBN_IMPORTED, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [False, False, True]

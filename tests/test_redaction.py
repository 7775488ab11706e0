"""Secrets are never printed: by ``flask complete config`` (table, JSON, one setting), by
``flask complete check``, or in the error that stops an app at start-up.

A value is hidden for what its name says (``DB_PASS``, ``LDAP_BIND_PW``, ``VAULT_ROLE_ID``) and
for what it holds: the password of a URL, parseable or not, and the secrets of a connection
string (``Password=...;``, ``password='...'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import track
from flask import Flask
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flask_complete import Complete, ConfigError
from flask_complete.settings.schema import NOT_SECRET
from flask_complete.settings.sensitive import redact, redact_url, secret_name


def toml(value: t.Any) -> str:
    """``value`` as a TOML value (a JSON string is a TOML basic string)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml(k)} = {toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def printed(root: Path, keys: t.Iterable[str] = ()) -> str:
    """Everything the printers show for the settings in ``root``, in development and in
    production: the start-up error, or else ``flask complete config`` as a table, as JSON and
    for each of ``keys``; and ``flask complete check`` (with the app built collecting every
    refusal), and ``config`` on that app too."""
    out = []
    for env in ("development", "production"):
        app = Flask("redacted", root_path=str(root), instance_path=str(root / "instance"))
        try:
            Complete(app, env=env, root=root)
        except ConfigError as e:
            out.append(e.format_message())
        else:
            track(app)
            runner = app.test_cli_runner()
            for args in ([], ["--format", "json"], *([key] for key in keys)):
                out.append(runner.invoke(args=["complete", "config", *args]).output)
        collected = Flask("collected", root_path=str(root), instance_path=str(root / "instance"))
        Complete(env=env, root=root).init_app(collected, collect=True)
        track(collected)
        runner = collected.test_cli_runner()
        for args in (["check"], ["check", "--format", "json"], ["config"]):
            out.append(runner.invoke(args=["complete", *args]).output)
    return "\n".join(out)


@contextlib.contextmanager
def project(settings: str = "", secrets: str = "", **environ: str) -> Iterator[Path]:
    """A project folder with these files and environment variables, for one example."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "settings.toml").write_text(settings)
        if secrets:
            (root / ".secrets.toml").write_text(secrets)
            (root / ".secrets.toml").chmod(0o600)
        saved = {name: os.environ.get(name) for name in environ}
        os.environ.update(environ)
        try:
            yield root
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def leaks(output: str, secret: str) -> bool:
    return secret in output or quote(secret, safe="") in output


# -- the settings named in the issue ---------------------------------------------------------

NAMED = {
    "DB_PASS": "hunter2pass",
    "ADMIN_PWD": "adminpwdval",
    "LDAP_BIND_PW": "ldapbindval",
    "HMAC_SHARED": "hmacsharedval",
    "SIGNING_SALT": "signingsaltval",
    "WEBHOOK_SIGNING": "webhooksignval",
    "VAULT_ROLE_ID": "vaultroleval",
    "APP_CONN_STRING": "Server=db;Database=x;User Id=sa;Password=connpassval;",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slacksecretval",
}
NAMED_SECRETS = [*(v for k, v in NAMED.items() if "=" not in v and "//" not in v)]
NAMED_SECRETS += ["connpassval", "slacksecretval", "pwurlval"]


@pytest.mark.usefixtures("clean_env")
def test_the_settings_named_in_the_issue_are_never_printed(tmp_path: Path) -> None:
    settings = "".join(f"{key} = {toml(value)}\n" for key, value in NAMED.items())
    # A database URL missing its colon, and one in production that does not parse.
    settings += '[development]\nDATABASE_URL = "postgres//app:pwurlval@h/db"\n'
    settings += '[production]\nDATABASE_URL = "postgresql://app:pwurlval@h:port/db"\n'
    (tmp_path / "settings.toml").write_text(settings)
    output = printed(tmp_path, NAMED)
    assert [s for s in NAMED_SECRETS if s in output] == []
    # What is shown instead: the user of the database URL, the host of the webhook.
    assert "'postgres//app:***@h/db' is not a database URL" in output
    assert "'postgresql+psycopg://app:***@h:port/db' is not a database URL" in output


@pytest.mark.usefixtures("clean_env")
def test_what_is_shown_of_them(tmp_path: Path) -> None:
    settings = "".join(f"{key} = {toml(value)}\n" for key, value in NAMED.items())
    (tmp_path / "settings.toml").write_text(settings)
    app = Flask("shown", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    Complete(app, env="development", root=tmp_path)
    runner = app.test_cli_runner()
    document = json.loads(runner.invoke(args=["complete", "config", "--format", "json"]).output)
    shown = {key: document["settings"][key]["value"] for key in NAMED}
    assert shown == {
        **dict.fromkeys(NAMED, "***"),
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/***",
    }


# -- the name rule, as a property ------------------------------------------------------------

#: The words that make a name secret, as they are spelt in settings.
SECRET_WORDS = [
    *("PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "PWD", "PW", "SECRET", "SECRETS"),
    *("TOKEN", "KEY", "KEYS", "APIKEY", "API_KEY", "API", "SIGNATURE", "SIGNING", "SALT"),
    *("HMAC", "PRIVATE", "PRIVATE_KEY", "CREDENTIAL", "CREDENTIALS", "DSN", "CONN"),
    *("CONN_STRING", "CONNECTION_STRING", "CONNSTR", "AUTH", "WEBHOOK", "VAULT_ROLE_ID"),
]
words = st.from_regex(r"[A-Z][A-Z0-9]{0,7}", fullmatch=True)
prefixes = st.sampled_from(["", "DB", "ADMIN", "LDAP_BIND", "MY_SERVICE", "STRIPE"]) | words
suffixes = st.sampled_from(["", "_1", "_VALUE", "_OLD", "_FILE", "_URL", "_B64"])


@st.composite
def secret_keys(draw: st.DrawFn) -> str:
    """A setting name holding a secret word, with a prefix (glued to it or not) and a suffix."""
    prefix, glue = draw(prefixes), draw(st.sampled_from(["_", ""]))
    key = f"{prefix}{glue if prefix else ''}{draw(st.sampled_from(SECRET_WORDS))}"
    return key + draw(suffixes)


def spelt(key: str, case: str) -> str:
    """``key`` as a table key of a user's settings: ``db_password``, ``dbPassword``."""
    if case == "lower":
        return key.lower()
    if case == "camel":
        first, *rest = key.lower().split("_")
        return first + "".join(part.title() for part in rest)
    return key


#: Printable ASCII, the URL and connection-string delimiters among them; no control characters
#: (a TOML file cannot hold them raw).
ODD = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
#: A letter no output holds otherwise: a secret holding one cannot be found in the output by
#: chance (as "AUTH_REM" is, in AUTH_REMEMBER_DAYS).
MARK = st.characters(min_codepoint=0xC0, max_codepoint=0x17F, categories=["Ll", "Lu"])


@st.composite
def secrets_(draw: st.DrawFn) -> str:
    """A secret of printable characters with a letter beyond ASCII somewhere inside."""
    text = draw(st.text(ODD, min_size=6, max_size=24))
    at = draw(st.integers(0, len(text)))
    return (text[:at] + draw(MARK) + text[at:]).strip()


secrets = secrets_()


@pytest.mark.usefixtures("clean_env")
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=secret_keys(),
    secret=secrets,
    where=st.sampled_from(["settings", "secrets", "environment", "table"]),
    case=st.sampled_from(["upper", "lower", "camel"]),
)
@example(key="LDAP_BIND_PW", secret="pw;with späces", where="table", case="lower")
@example(key="VAULT_ROLE_ID", secret="s.Röle-1d-value", where="environment", case="upper")
def test_a_secret_named_setting_is_never_printed(
    key: str, secret: str, where: str, case: str
) -> None:
    assume(key not in NOT_SECRET and secret.lower() not in key.lower())
    line = f"{key} = {toml(secret)}\n"
    environ = {}
    files = {"settings": "", "secrets": ""}
    if where == "environment":
        # Read as TOML, as Dynaconf reads it: quoted, so that it stays this string.
        environ[f"FLASK_{key}"] = toml(secret)
    elif where == "table":
        files["settings"] = f"[SERVICES.mail]\n{toml(spelt(key, case))} = {toml(secret)}\n"
    else:
        files[where] = line
    with project(files["settings"], files["secrets"], **environ) as root:
        output = printed(root, [key, "SERVICES"])
    assert not leaks(output, secret), (key, secret)


# -- secrets inside values, as a property -----------------------------------------------------


def ado(secret: str, key: str = "Password") -> str:
    """An ADO.NET connection string; a value with ; or quotes is quoted, quotes doubled."""
    if any(c in secret for c in ";\"'") or secret != secret.strip():
        secret = '"' + secret.replace('"', '""') + '"'
    return f"Server=db;Database=app;User Id=sa;{key}={secret};Encrypt=true"


def odbc(secret: str) -> str:
    """An ODBC connection string; a value with ; or braces is braced, } doubled."""
    if any(c in secret for c in ";{}") or secret != secret.strip():
        secret = "{" + secret.replace("}", "}}") + "}"
    return f"Driver={{ODBC Driver 18}};Server=db;UID=sa;PWD={secret};TrustServerCertificate=yes"


def libpq(secret: str, key: str = "password") -> str:
    """A libpq connection string; a value with spaces, quotes or backslashes is quoted."""
    if any(c.isspace() or c in "'\\" for c in secret):
        secret = "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"host=db port=5432 {key}={secret} dbname=app"


FORMS: dict[str, t.Callable[[str], dict[str, t.Any]]] = {
    "ado": lambda s: {"LEGACY_DATABASE": ado(s)},
    "ado spaced": lambda s: {"LEGACY_DATABASE": ado(s).replace(";", "; ")},
    "azure": lambda s: {"STORAGE": ado(s, "AccountKey")},
    "odbc": lambda s: {"REPORTS_DB": odbc(s)},
    "libpq": lambda s: {"REPLICA": libpq(s)},
    "libpq sslpassword": lambda s: {"REPLICA": libpq(s, "sslpassword")},
    "jdbc": lambda s: {"WAREHOUSE": f"jdbc:sqlserver://db:1433;user=sa;password={{{s}}}"},
    "query": lambda s: {"SEARCH": f"https://search.test/v1?page=2&api_key={quote(s, safe='')}"},
    "odbc_connect": lambda s: {
        "SQLALCHEMY_BINDS": {"mssql": f"mssql+pyodbc:///?odbc_connect={quote(odbc(s), safe='')}"}
    },
    "url": lambda s: {"MIRROR": f"https://mirror:{s}@m.example.com/simple/"},
    "redis url": lambda s: {"CACHE": f"redis://:{s}@127.0.0.1:1/0"},
    "database url": lambda s: {"DATABASE_URL": f"postgresql://app:{s}@127.0.0.1:1/app"},
    "mysql url": lambda s: {"DATABASE_URL": f"mysql://app:{s}@127.0.0.1:1/app"},
    "broken database url": lambda s: {"DATABASE_URL": f"postgres//app:{s}@127.0.0.1/app"},
    "one slash": lambda s: {"DATABASE_URL": f"postgresql:/app:{s}@127.0.0.1/app"},
    "engine options": lambda s: {
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"password": s, "passwrd": s}}
    },
    "token": lambda s: {"DB_PASS": f"@int {s}"},
}


@pytest.mark.usefixtures("clean_env")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(secret=secrets, form=st.sampled_from(sorted(FORMS)))
@example(secret="p@ss/w?rð#1:x", form="url")
@example(secret="?À00000", form="redis url")
@example(secret="0#À0000", form="redis url")
@example(secret="p@ss/w?rð#1:x", form="broken database url")
@example(secret="a;b c'ð\\e", form="libpq")
@example(secret='a;b"ç', form="ado spaced")
def test_a_secret_inside_a_value_is_never_printed(secret: str, form: str) -> None:
    values = FORMS[form](secret)
    settings = "".join(f"{key} = {toml(value)}\n" for key, value in values.items())
    with project(settings) as root:
        output = printed(root, [k for k in values if k != "DATABASE_URL"])
    assert not leaks(output, secret), (form, secret)


# -- what stays readable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SQLALCHEMY_ENGINE_OPTIONS", {"pool_size": 5, "connect_args": {"connect_timeout": 3}}),
        ("SESSION_COOKIE_SECURE", True),
        ("SESSION_COOKIE_NAME", "session"),
        ("AUTH_TOKEN_DAYS", 30),
        ("AUTH_PASSWORD_METHOD", "scrypt"),
        ("DATABASE_CONNECT_TIMEOUT", 10),
        ("MAX_CONNECTIONS", 50),
        ("REDIS_CONNECT_TIMEOUT", 5),
        ("DEFAULT_ROLE_ID", 3),  # a role id alone is a row of the app's; Vault's is a login
        ("AUTHOR_NAME", "Ada"),
        ("KEYBOARD_LAYOUT", "dvorak"),
        ("API_TOKEN_ENABLED", True),
        ("ADMIN_EMAIL", "admin@example.com"),
        ("CONTACT", "mailto-free text: a@b.test"),
        ("REPLICA", "host=db port=5432 dbname=app sslmode=require"),
    ],
)
def test_what_is_not_a_secret_stays_readable(key: str, value: t.Any) -> None:
    assert redact(key, value) == value


def test_a_database_url_shows_its_user_not_its_password() -> None:
    assert redact("DATABASE_URL", "postgresql://app:pw@h/db") == "postgresql://app:***@h/db"
    assert redact_url("postgres//app:p@w/d@h/db") == "postgres//app:***@h/db"
    assert redact_url("https://u:p?w@h.test/x") == "https://***@h.test/x"


@given(key=secret_keys(), case=st.sampled_from(["upper", "lower", "camel"]))
def test_the_name_rule_reads_every_spelling(key: str, case: str) -> None:
    assert secret_name(spelt(key, case))

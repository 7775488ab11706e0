"""The app's own environment switch: ``Complete(env_var=..., env_names=...)``, and the report
when the app's config looks like production while flask_complete runs development by default.

The apps here pick their config the way many do: ``config[os.environ.get("FLASK_CONFIG") or
"default"]`` from a dict of classes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_complete import Complete, ConfigError
from flask_complete.settings import config as _config
from flask_complete.settings.environment import ENVIRONMENTS, SHORT_NAMES, env_names, select

STRONG = secrets.token_urlsafe(48)


class Config:
    GREETING = "hello"


class DevConfig(Config):
    DEBUG = True


class ProdConfig(Config):
    SESSION_COOKIE_SECURE = True


CONFIGS: dict[str, type[Config]] = {
    "development": DevConfig,
    "production": ProdConfig,
    "default": DevConfig,
}


def config_dict_app(root: Path, **complete: t.Any) -> Flask:
    """The config-dict pattern, with ``Complete(app, **complete)`` added."""
    app = Flask("shop", root_path=str(root), instance_path=str(root / "instance"))
    app.config.from_object(CONFIGS.get(os.environ.get("FLASK_CONFIG") or "default", Config))
    Complete(app, **complete)
    return app


DECLARED = {"env_var": "FLASK_CONFIG", "env_names": {"default": "development"}}


@pytest.fixture(autouse=True)
def unforced(clean_env: pytest.MonkeyPatch) -> t.Iterator[None]:
    """These tests are about choosing the environment: lift the plugin's pin (restored after)."""
    saved = _config._forced_env, _config._forced_worker
    _config.force_env(None)
    yield
    _config._forced_env, _config._forced_worker = saved


@pytest.mark.parametrize(
    ("value", "env"),
    [("production", "production"), ("default", "development"), ("Development", "development")],
)
def test_the_apps_own_variable_names_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, value: str, env: str
) -> None:
    clean_env.setenv("FLASK_CONFIG", value)
    clean_env.setenv("SECRET_KEY", STRONG)
    clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    app = config_dict_app(tmp_path, **DECLARED)
    assert app.extensions["complete"].env == env
    source = app.extensions["complete"].settings.sources["COMPLETE_ENV"]
    assert source == f"env FLASK_CONFIG={value}, declared by Complete(env_var=...)"
    # The bundle's production hardening and checks apply when the app is in production.
    assert (app.config.get("REMEMBER_COOKIE_SECURE") is True) == (env == "production")


def test_production_by_the_apps_variable_refuses_what_production_refuses(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("FLASK_CONFIG", "production")
    with pytest.raises(ConfigError) as e:
        config_dict_app(tmp_path, **DECLARED)
    assert e.value.problems[0].id == "secret.missing"


def test_the_pytest_plugin_and_an_explicit_env_still_win(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("FLASK_CONFIG", "production")
    _config.force_env("testing")
    assert config_dict_app(tmp_path, **DECLARED).extensions["complete"].env == "testing"
    _config.force_env(None)
    app = config_dict_app(tmp_path, env="development", **DECLARED)
    assert app.extensions["complete"].env == "development"


def test_unset_variable_falls_back_to_flask_env(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    assert config_dict_app(tmp_path, **DECLARED).extensions["complete"].env == "development"
    clean_env.setenv("FLASK_ENV", "testing")
    assert config_dict_app(tmp_path, **DECLARED).extensions["complete"].env == "testing"


def test_the_variable_and_flask_env_never_disagree(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("FLASK_CONFIG", "production")
    clean_env.setenv("FLASK_ENV", "development")
    with pytest.raises(ConfigError) as e:
        config_dict_app(tmp_path, **DECLARED)
    (problem,) = e.value.problems
    assert problem.id == "env.conflict"
    assert "FLASK_CONFIG=production names production, but FLASK_ENV=development" in problem.message
    assert problem.fix.startswith("Unset FLASK_ENV")


def test_an_unknown_value_names_the_variable_and_the_mapping(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("FLASK_CONFIG", "staging")
    with pytest.raises(ConfigError) as e:
        config_dict_app(tmp_path, **DECLARED)
    (problem,) = e.value.problems
    assert (problem.id, problem.key) == ("env.unknown", "FLASK_CONFIG")
    assert problem.message.startswith("FLASK_CONFIG='staging' names no environment")
    assert "env_names={'default': 'development', 'staging': 'production'}" in problem.fix


def test_env_names_must_name_environments() -> None:
    with pytest.raises(ValueError, match="maps 'live' to 'prod', which is not an environment"):
        Complete(env_var="APP_ENV", env_names={"live": "prod"})


_VALUES = st.text(st.characters(categories=["L", "N"], max_codepoint=0x7F), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_VALUES, st.sampled_from(ENVIRONMENTS), max_size=4), _VALUES)
def test_which_value_names_which_environment(names: dict[str, str], value: str) -> None:
    """A value the app's variable takes names the environment ``env_names`` maps it to (any
    case), else the environment or short name it spells; anything else is refused by name."""
    checked = env_names(names)
    expected = checked.get(value.lower()) or SHORT_NAMES.get(value.lower(), value.lower())
    try:
        chosen = select(None, None, "APP_ENV", checked, {"APP_ENV": value}).env
    except ConfigError as e:
        assert expected not in ENVIRONMENTS
        assert e.problems[0].key == "APP_ENV" and repr(value) in e.problems[0].message
    else:
        assert chosen == expected


# -- the report: the app looks like production, the bundle runs development ---------------------


def test_the_config_dict_app_in_production_without_the_declaration_is_reported(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("FLASK_CONFIG", "production")
    with caplog.at_level(logging.WARNING, logger="flask_complete"):
        app = config_dict_app(tmp_path)
    assert app.extensions["complete"].env == "development"
    assert "[env.mismatch] The app's own config looks like production" in caplog.text
    assert "FLASK_CONFIG=production; SESSION_COOKIE_SECURE = True" in caplog.text
    assert 'Complete(app, env_var="FLASK_CONFIG")' in caplog.text
    result = app.test_cli_runner().invoke(args=["complete", "check", "--format", "json"])
    found = [f for f in __import__("json").loads(result.output)["findings"]]
    assert [f["level"] for f in found if f["id"] == "env.mismatch"] == ["warning"], result.output


_SIGNS = {
    "variable": {"environ": {"APP_ENV": "production"}},
    "flag": {"environ": {"RUNNING_IN_PRODUCTION": "1"}},
    "secure cookies": {"code": {"REMEMBER_COOKIE_SECURE": True}},
    "https": {"code": {"PREFERRED_URL_SCHEME": "https"}},
}
_NOT_SIGNS = {
    "other variable": {"environ": {"DEPLOY_STAGE": "staging-ish"}},
    "other flag": {"environ": {"RUNNING_IN_CI": "1"}},
}
#: One database URL set in code, at most: (a sign?, the variables, the URL).
_DATABASES = {
    "remote, from the environment": (True, {"SHOP_DB": "postgresql://shop@db.example.com/s"}),
    "remote host from the environment": (True, {"SHOP_DB_HOST": "db.example.com"}),
    "local, from the environment": (False, {"SHOP_DB": "postgresql://shop@127.0.0.1/s"}),
    "remote, in code only": (False, {}),
}
_URLS = {
    "remote, from the environment": "postgresql://shop@db.example.com/s",
    "remote host from the environment": "postgresql://shop@db.example.com/s",
    "local, from the environment": "postgresql://shop@127.0.0.1/s",
    "remote, in code only": "postgresql://shop@db.example.com/s",
}


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> t.Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sets(st.sampled_from([*_SIGNS, *_NOT_SIGNS])),
    st.sampled_from([None, *_DATABASES]),
    st.sampled_from(["nothing", "FLASK_ENV", "debug", "testing"]),
)
def test_reported_exactly_when_the_app_looks_like_production_and_nothing_named_the_env(
    tmp_path: Path, chosen: set[str], database: str | None, named: str
) -> None:
    environ: dict[str, str] = {}
    code: dict[str, t.Any] = {}
    for sign in chosen:
        parts = {**_SIGNS, **_NOT_SIGNS}[sign]
        environ.update(parts.get("environ", {}))
        code.update(parts.get("code", {}))
    database_sign = False
    if database is not None:
        database_sign, variables = _DATABASES[database]
        environ.update(variables)
        code["SQLALCHEMY_DATABASE_URI"] = _URLS[database]
    if named == "FLASK_ENV":
        environ["FLASK_ENV"] = "development"
    code |= {"DEBUG": named == "debug", "TESTING": named == "testing"}
    with _environ(environ):
        app = Flask("shop", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
        app.config.update(code)
        Complete(app, db=None)
    found = [p for p in app.extensions["complete"].settings.problems if p.id == "env.mismatch"]
    looks = bool(chosen & set(_SIGNS)) or database_sign
    assert bool(found) == (looks and named == "nothing"), found

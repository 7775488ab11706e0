"""Settings typos fail loudly: unknown sections, misspelt names, and values of the wrong form."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import tomllib
import typing as t
from pathlib import Path

import flask_login
import pytest
from flask import Flask
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flask_complete import Complete, ConfigError
from flask_complete.settings import config
from flask_complete.settings import schema as schema

STRONG = "x7Rq2mV9pL4tZ8wK3nB6yH1cF5gJ0dSa"


def load(
    root: Path, env: str, settings: str = "", code: dict[str, t.Any] | None = None
) -> config.Settings:
    if settings:
        (root / "settings.toml").write_text(settings)
    app = Flask("schema", root_path=str(root))
    app.config.update(code or {})
    return config.load(app, env=env, root=root)


def problems(settings: config.Settings) -> dict[str, tuple[str, str]]:
    return {p.key: (p.id, p.level) for p in settings.problems}


def start(root: Path, env: str, settings: str = "", **code: t.Any) -> Flask:
    (root / "settings.toml").write_text(settings)
    app = Flask("schema", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://", **code)
    Complete(app, env=env, root=root)
    return app


def test_every_key_of_the_defaults_is_declared() -> None:
    defaults = tomllib.loads(config.DEFAULTS_FILE.read_text())
    keys = {key for section in defaults.values() for key in section}
    assert keys - set(schema.BUNDLE) - set(schema.LIBRARY) == set()


def test_every_bundle_default_passes_its_declaration() -> None:
    defaults = tomllib.loads(config.DEFAULTS_FILE.read_text())
    for section in defaults.values():
        for key, value in section.items():
            declared = schema.spec(key)
            assert declared is not None and declared[0].valid(value), (key, value)


def test_the_known_names_cover_the_installed_libraries() -> None:
    from flask_cors.core import CONFIG_OPTIONS

    assert set(CONFIG_OPTIONS) <= schema.KNOWN
    source = "".join(path.read_text() for path in Path(flask_login.__file__).parent.glob("*.py"))
    read = set(re.findall(r"config(?:\.get\(|\[)\s*[\"']([A-Z_]+)[\"']", source))
    assert read and read <= schema.KNOWN
    assert set(Flask.default_config) <= schema.KNOWN


@pytest.mark.usefixtures("clean_env")
class TestSections:
    @pytest.mark.parametrize("env", ["development", "production"])
    def test_misspelt_section_is_an_error(self, tmp_path: Path, env: str) -> None:
        with pytest.raises(ConfigError) as e:
            start(tmp_path, env, '[developmnet]\nGREETING = "hi"\n')
        first = e.value.format_message().splitlines()[0]
        assert first.startswith("settings.toml: [developmnet] is not a section; did you mean")
        assert "[development]?" in first and "[config.section]" in first

    def test_upper_case_near_miss_is_an_error_too(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"\[PRODUCTON\] is not a section; did you mean"):
            start(tmp_path, "development", "[PRODUCTON]\nDEBUG = false\n")

    def test_lower_case_table_is_an_unknown_section(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as e:
            start(tmp_path, "development", '[mail]\nhost = "mx"\n')
        message = e.value.format_message()
        assert "[mail] is not a section (they are [default], [development], [testing]" in message
        assert "write [MAIL] (or [default.MAIL])" in message

    def test_upper_case_table_is_a_setting(self, tmp_path: Path) -> None:
        app = start(tmp_path, "development", '[MAIL]\nhost = "mx"\n')
        assert app.config["MAIL"] == {"host": "mx"}

    def test_in_the_secrets_file_too(self, tmp_path: Path) -> None:
        (tmp_path / ".secrets.toml").write_text('[prodution]\nSECRET_KEY = "x"\n')
        with pytest.raises(ConfigError, match=r"\.secrets\.toml: \[prodution\] is not a section"):
            start(tmp_path, "production")


@pytest.mark.usefixtures("clean_env")
class TestMisspeltNames:
    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            ("DATABSE_URL", "DATABASE_URL"),
            ("CORS_ORIGIN", "CORS_ORIGINS"),
            ("SESION_COOKIE_SECURE", "SESSION_COOKIE_SECURE"),
            ("SQLALCHEMY_DATABASE_URL", "SQLALCHEMY_DATABASE_URI"),
            ("CSRF_PROTCET", "CSRF_PROTECT"),
            ("REMEMBER_COOKIE_SECUR", "REMEMBER_COOKIE_SECURE"),
        ],
    )
    def test_an_error_in_production(self, tmp_path: Path, written: str, meant: str) -> None:
        settings = f'[production]\n{written} = "x"\n'
        with pytest.raises(ConfigError) as e:
            start(tmp_path, "production", settings)
        message = e.value.format_message()
        line = next(line for line in message.splitlines() if line.startswith(written))
        assert line.startswith(
            f"{written} (from settings.toml [production]) is not a known setting; "
            f"did you mean {meant}?"
        )
        assert f"Rename it to {meant}." in line and "COMPLETE_OWN_SETTINGS" in line

    def test_a_warning_elsewhere(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="flask_complete"):
            settings = load(tmp_path, "development", 'DATABSE_URL = "sqlite://"\n')
        assert problems(settings) == {"DATABSE_URL": ("config.typo", "warning")}
        assert "[config.typo] DATABSE_URL (from settings.toml [default])" in caplog.text

    def test_a_warning_does_not_stop_the_app(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="flask_complete"):
            app = start(tmp_path, "development", 'DATABSE_URL = "sqlite://"\n')
        assert "did you mean DATABASE_URL?" in caplog.text
        result = app.test_cli_runner().invoke(args=["complete", "check"])
        assert "config.typo" in result.output and result.exit_code == 0, result.output

    def test_from_the_environment(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("FLASK_DATABSE_URL", "sqlite://")
        (problem,) = load(tmp_path, "production").problems
        assert problem.level == "error"
        assert problem.message.startswith("DATABSE_URL (from env FLASK_DATABSE_URL) is not")

    def test_set_in_code_only_warns_even_in_production(self, tmp_path: Path) -> None:
        settings = load(tmp_path, "production", code={"CORS_ORIGIN": ["https://a.test"]})
        assert problems(settings) == {"CORS_ORIGIN": ("config.typo", "warning")}
        assert settings.problems[0].message.startswith("CORS_ORIGIN (from code) is not a known")

    def test_names_resembling_nothing_are_the_apps_own(self, tmp_path: Path) -> None:
        settings = 'GREETING = "hi"\nMY_SERVICE_URL = "https://x.test"\nMAIL_PORT = 25\n'
        assert load(tmp_path, "production", settings).problems == []

    def test_an_own_setting_close_to_a_known_one_can_be_declared(self, tmp_path: Path) -> None:
        settings = 'COMPLETE_OWN_SETTINGS = ["REDIS_URI"]\nREDIS_URI = "redis://x"\n'
        assert load(tmp_path, "production", settings).problems == []

    def test_unknown_complete_switch(self, tmp_path: Path) -> None:
        (problem,) = load(tmp_path, "production", "COMPLETE_HEALTH = true\n").problems
        assert problem.id == "config.typo"
        assert "COMPLETE_HEALTH (from settings.toml [default]) is not a flask_complete" in (
            problem.message
        )
        assert "COMPLETE_DATABASE, COMPLETE_MIGRATE, COMPLETE_AUTH, COMPLETE_CORS" in problem.fix

    def test_distance(self) -> None:
        assert schema.distance("DATABSE_URL", "DATABASE_URL") == 1
        assert schema.distance("CSRF_PROTCET", "CSRF_PROTECT") == 1  # a swap is one edit
        assert schema.distance("ABC", "XYZ") == 3
        assert schema.misspelt("DEBUGS") == "DEBUG"
        assert schema.misspelt("DEBUG") is None
        assert schema.misspelt("DEBUG_TOOLBAR") is None


@pytest.mark.usefixtures("clean_env")
class TestStrictValues:
    @pytest.mark.parametrize("value", ['"autoo"', '"yes"', "1", '"on"', '"true"', '"Auto"'])
    def test_csrf_protect_never_fails_open(self, tmp_path: Path, value: str) -> None:
        with pytest.raises(ConfigError) as e:
            start(tmp_path, "development", f"CSRF_PROTECT = {value}\n")
        first = e.value.format_message().splitlines()[0]
        assert first.startswith("CSRF_PROTECT = ")
        assert "is not valid (from settings.toml [default])" in first
        assert 'Expected true, false or "auto".' in first

    @pytest.mark.parametrize("value", ["yes", "1", "on", "True"])
    def test_from_the_environment(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch, value: str
    ) -> None:
        clean_env.setenv("FLASK_CSRF_PROTECT", value)
        with pytest.raises(ConfigError, match="from env FLASK_CSRF_PROTECT"):
            start(tmp_path, "development")

    @pytest.mark.parametrize("value", ["yes", 1, "on", "true"])
    def test_an_app_with_its_own_login_keeps_its_check_or_stops(
        self, tmp_path: Path, value: t.Any
    ) -> None:
        # Without a user model the bundle only adds the opt-in CSRF check; an unreadable
        # switch used to leave it out silently.
        app = Flask("own_login", root_path=str(tmp_path))
        app.config.update(SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI="sqlite://")
        app.config["CSRF_PROTECT"] = value
        flask_login.LoginManager(app)
        with pytest.raises(ConfigError, match=r"CSRF_PROTECT = .* is not valid \(from code\)"):
            Complete(app, env="production", root=tmp_path)

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("AUTH_URL_PREFIX = 5", "AUTH_URL_PREFIX = 5 is not a URL path"),
            ('AUTH_URL_PREFIX = "auth"', "AUTH_URL_PREFIX = 'auth' is not a URL path"),
            ("AUTH_TOKEN_DAYS = 0", "Expected a whole number >= 1."),
            ('DATABASE_POOL = "none"', 'Expected "queue" or "null".'),
            ("CORS_ORIGINS = 42", "CORS_ORIGINS = 42 is not a list of origins"),
            ('AUTH_TRUSTED_ORIGINS = "https://a.test"', "is not a list of origins"),
            ('CORS_RESOURCES = ["api/*"]', 'path globs starting with "/"'),
            ('MODELS = [1, "a"]', "a list of module names"),
            ('SESSION_PROTECTION = "Strong"', 'Expected "basic", "strong" or false.'),
            ('SESSION_COOKIE_SAMESITE = "lax"', '"Lax", "Strict" or "None"'),
            ('SQLALCHEMY_ECHO = "yes"', 'Expected true, false or "debug".'),
        ],
    )
    def test_bundle_and_library_values(self, tmp_path: Path, line: str, expected: str) -> None:
        with pytest.raises(ConfigError) as e:
            start(tmp_path, "development", f"[development]\n{line}\n")
        assert expected in e.value.format_message()

    @pytest.mark.parametrize(
        "key", ["DEBUG", "SESSION_COOKIE_SECURE", "TESTING", "REMEMBER_COOKIE_HTTPONLY"]
    )
    def test_flask_booleans_are_booleans(self, tmp_path: Path, key: str) -> None:
        with pytest.raises(ConfigError) as e:
            start(tmp_path, "development", f'[development]\n{key} = "false"\n')
        first = e.value.format_message().splitlines()[0]
        assert first.startswith(f"{key} = 'false' is not valid (from settings.toml [development])")
        assert 'A quoted string is not a boolean: "false" would count as true.' in first

    def test_a_capitalised_boolean_from_the_environment(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_SESSION_COOKIE_SECURE", "True")  # TOML's true is lower case
        with pytest.raises(ConfigError, match="SESSION_COOKIE_SECURE = 'True' is not valid"):
            start(tmp_path, "production")

    def test_flask_settings_in_code_only_warn(self, tmp_path: Path) -> None:
        settings = load(tmp_path, "production", code={"SESSION_COOKIE_SECURE": "yes"})
        assert problems(settings) == {"SESSION_COOKIE_SECURE": ("config.type", "warning")}

    def test_bundle_settings_in_code_are_errors(self, tmp_path: Path) -> None:
        settings = load(tmp_path, "development", code={"DATABASE_POOL_SIZE": "5"})
        assert problems(settings) == {"DATABASE_POOL_SIZE": ("config.type", "error")}

    def test_valid_forms_pass(self, tmp_path: Path) -> None:
        settings = (
            'CSRF_PROTECT = "auto"\nAUTH_URL_PREFIX = "/api/auth"\nDEBUG = false\n'
            'CORS_ORIGINS = "https://a.test"\nSEEDS = "app.seeds:run"\nMODELS = "app.models"\n'
            'SESSION_COOKIE_SAMESITE = "Strict"\nSESSION_PROTECTION = "strong"\n'
            'HEALTH_ENDPOINT = ""\nDATABASE_POOL_RECYCLE = -1\nFLAG = "@bool on"\n'
        )
        assert load(tmp_path, "production", settings).problems == []
        code = {"SEEDS": [print, "app.seeds:run"], "CSRF_PROTECT": False, "CORS_MAX_AGE": None}
        assert load(tmp_path, "production", code=code).problems == []

    def test_a_secret_of_the_wrong_type_is_not_shown(self, tmp_path: Path) -> None:
        (problem,) = load(tmp_path, "development", "SECRET_KEY = 123456\n").problems
        assert problem.message == "SECRET_KEY = '***' is not valid (from settings.toml [default])."


@pytest.mark.usefixtures("clean_env")
def test_a_top_level_flask_setting_named_like_a_section(tmp_path: Path) -> None:
    settings = load(tmp_path, "development", "TESTING = true\n[GLOBALS]\nA = 1\n")
    assert settings.values["TESTING"] is True and settings.values["GLOBALS"] == {"A": 1}
    assert settings.problems == []


@pytest.mark.usefixtures("clean_env")
def test_a_second_look_need_not_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "settings.toml").write_text('DATABSE_URL = "sqlite://"\n')
    with caplog.at_level(logging.WARNING, logger="flask_complete"):
        settings = config.load(Flask("q"), env="development", root=tmp_path, log=False)
    assert settings.problems and caplog.records == []


# -- keys inside table settings ---------------------------------------------------------------

#: Engine options as the SQLAlchemy documentation spells them.
ENGINE_OPTIONS = [
    *("pool_pre_ping", "pool_size", "max_overflow", "pool_recycle", "pool_timeout"),
    *("pool_use_lifo", "echo", "echo_pool", "isolation_level", "hide_parameters"),
    *("execution_options", "query_cache_size", "pool_reset_on_return", "connect_args"),
]


def taken(option: str) -> bool:
    """Whether create_engine takes ``option`` (for a server database; none is contacted)."""
    import sqlalchemy as sa

    value: t.Any = {} if option in ("connect_args", "execution_options") else 1
    try:
        sa.create_engine("postgresql+psycopg://u@127.0.0.1:1/db", **{option: value}).dispose()
    except TypeError:
        return False
    except Exception:  # a value of the wrong type: the name itself was taken
        return True
    return True


@st.composite
def misspelt_options(draw: st.DrawFn) -> tuple[str, str]:
    """An engine option with one edit (a letter dropped, doubled, swapped or replaced) that
    create_engine does not take."""
    option = draw(st.sampled_from(ENGINE_OPTIONS))
    i = draw(st.integers(0, len(option) - 2))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"))
    edit = draw(st.sampled_from(["drop", "double", "swap", "replace"]))
    typo = {
        "drop": option[:i] + option[i + 1 :],
        "double": option[: i + 1] + option[i:],
        "swap": option[:i] + option[i + 1] + option[i] + option[i + 2 :],
        "replace": option[:i] + letter + option[i + 1 :],
    }[edit]
    assume(typo != option and not taken(typo))
    return option, typo


def guess_of(message: str) -> str:
    found = re.search(r"did you mean ([\w.]+)\?", message)
    assert found, message
    return found[1]


def engine_typo_app(root: Path, env: str, settings: str, **code: t.Any) -> Flask:
    (root / "settings.toml").write_text(settings)
    app = Flask("engine", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(SECRET_KEY=STRONG, **code)
    Complete(app, env=env, root=root)
    return app


@pytest.mark.usefixtures("clean_env")
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(misspelt=misspelt_options(), table=st.sampled_from(["options", "bind"]))
@example(misspelt=("pool_pre_ping", "pool_pre_pingg"), table="options")
def test_a_misspelt_engine_option_is_one_named_problem(
    misspelt: tuple[str, str], table: str
) -> None:
    option, typo = misspelt
    url = "postgresql://app@127.0.0.1:1/app"
    if table == "options":
        setting = "SQLALCHEMY_ENGINE_OPTIONS"
        settings = f'DATABASE_URL = "{url}"\n{setting} = {{{typo} = 1}}\n'
    else:
        setting = "SQLALCHEMY_BINDS.reports"
        settings = f'SQLALCHEMY_BINDS = {{reports = {{url = "{url}", {typo} = 1}}}}\n'
    head = f"{setting}.{typo} (from settings.toml [default]) is not an engine option"
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # Development: a warning; the app starts (without the key), config and check show it.
        app = engine_typo_app(root, "development", settings)
        runner = app.test_cli_runner()
        shown = runner.invoke(args=["complete", "config"])
        checked = runner.invoke(args=["complete", "check", "--format", "json"])
        # check exits 1 for the unreachable database, never on an exception of its own.
        assert shown.exception is None, shown.output
        assert checked.exception is None or isinstance(checked.exception, SystemExit)
        (finding,) = [f for f in json.loads(checked.output)["findings"] if typo in f["message"]]
        assert finding["id"] == "config.typo" and finding["level"] == "warning"
        assert finding["message"].startswith(head), finding["message"]
        assert finding["key"] == setting.partition(".")[0]
        assert f"warning: {head}" in shown.output
        guess = guess_of(finding["message"])
        # The closest option create_engine takes: the one meant, or one as near.
        assert taken(guess), guess
        assert schema.distance(typo, guess) <= schema.distance(typo, option)
        # Production: refused, the same problem first; never a traceback.
        with pytest.raises(ConfigError) as e:
            engine_typo_app(root, "production", settings)
        assert e.value.format_message().startswith(head)
        assert f"did you mean {guess}? Rename it to {guess}. [config.typo]" in (
            e.value.format_message()
        )


@pytest.mark.usefixtures("clean_env")
class TestTableKeys:
    def test_the_issue_example_in_every_printer(self, tmp_path: Path) -> None:
        settings = "SQLALCHEMY_ENGINE_OPTIONS = {pool_pre_pingg = true}\n"
        app = engine_typo_app(tmp_path, "development", settings)
        runner = app.test_cli_runner()
        line = (
            "SQLALCHEMY_ENGINE_OPTIONS.pool_pre_pingg (from settings.toml [default]) is not an "
            "engine option; did you mean pool_pre_ping?"
        )
        assert line in runner.invoke(args=["complete", "config"]).output
        check = runner.invoke(args=["complete", "check", "--format", "json"])
        assert line in check.output
        assert check.exception is None or isinstance(check.exception, SystemExit)
        # The engine was built without it.
        assert "pool_pre_pingg" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        with app.app_context():
            assert app.extensions["sqlalchemy"].engine.dialect.name == "sqlite"

    @pytest.mark.parametrize(
        ("url", "written", "meant", "driver"),
        [
            ("sqlite:///app.db", "timeuot", "timeout", "pysqlite"),
            ("postgresql://app@127.0.0.1:1/app", "sslmdoe", "sslmode", "psycopg"),
            ("mysql://app@127.0.0.1:1/app", "init_comand", "init_command", "pymysql"),
        ],
    )
    def test_a_misspelt_connect_argument(
        self, tmp_path: Path, url: str, written: str, meant: str, driver: str
    ) -> None:
        settings = (
            f'[production]\nDATABASE_URL = "{url}"\n'
            f'SQLALCHEMY_ENGINE_OPTIONS = {{connect_args = {{{written} = "x"}}}}\n'
        )
        with pytest.raises(ConfigError) as e:
            engine_typo_app(tmp_path, "production", settings)
        assert e.value.format_message().startswith(
            f"SQLALCHEMY_ENGINE_OPTIONS.connect_args.{written} (from settings.toml [production])"
            f" is not a connect argument of {driver}; did you mean {meant}? Rename it to {meant}."
        )

    def test_an_unknown_key_like_nothing_names_the_documentation(self, tmp_path: Path) -> None:
        settings = "SQLALCHEMY_ENGINE_OPTIONS = {colour = 1}\n"
        with pytest.raises(ConfigError) as e:
            engine_typo_app(tmp_path, "production", f'DATABASE_URL = "sqlite://"\n{settings}')
        first = e.value.format_message().splitlines()[0]
        assert first.startswith("SQLALCHEMY_ENGINE_OPTIONS.colour (from settings.toml [default])")
        assert "is not an engine option. Remove it: the engine options are create_engine()'s" in (
            first
        )

    def test_another_databases_option_is_left_out_quietly(self, tmp_path: Path) -> None:
        # One block for every environment: PostgreSQL's hstore switch on development's SQLite.
        settings = "SQLALCHEMY_ENGINE_OPTIONS = {use_native_hstore = false, pool_size = 3}\n"
        app = engine_typo_app(tmp_path, "development", settings)
        assert app.extensions["complete"].settings.problems == []
        assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {}

    def test_set_in_code_only_warns_even_in_production(self, tmp_path: Path) -> None:
        options = {"pool_pre_pingg": True}
        app = engine_typo_app(
            tmp_path,
            "production",
            "",
            SQLALCHEMY_DATABASE_URI="sqlite://",
            **{"SQLALCHEMY_ENGINE_OPTIONS": options},
        )
        (problem,) = app.extensions["complete"].settings.problems
        assert (problem.level, problem.key) == ("warning", "SQLALCHEMY_ENGINE_OPTIONS")
        assert problem.message.startswith("SQLALCHEMY_ENGINE_OPTIONS.pool_pre_pingg (from code)")

    def test_what_sqlalchemy_still_refuses_is_a_problem_too(self, tmp_path: Path) -> None:
        from sqlalchemy.pool import StaticPool

        # Both are options; together SQLAlchemy refuses them (a static pool has no size).
        options = {"poolclass": StaticPool, "pool_size": 3}
        with pytest.raises(ConfigError) as e:
            engine_typo_app(
                tmp_path,
                "development",
                "",
                SQLALCHEMY_DATABASE_URI="postgresql://app@127.0.0.1:1/app",
                SQLALCHEMY_ENGINE_OPTIONS=options,
            )
        message = e.value.format_message()
        assert message.startswith("SQLAlchemy refuses the engine options")
        assert "'pool_size'" in message and "[database.options]" in message

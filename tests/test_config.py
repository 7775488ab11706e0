"""Layered settings: precedence, sources, validation and the environment switch."""

from __future__ import annotations

import secrets
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_complete import Complete, ConfigError
from flask_complete.settings.config import force_env, redact, redact_url

STRONG = secrets.token_urlsafe(40)


def make_app(
    root: Path,
    *,
    env: str | None = "development",
    code: dict[str, t.Any] | None = None,
    files: dict[str, str] | None = None,
    **kwargs: t.Any,
) -> Flask:
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    app = Flask("cfgapp", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(code or {})
    Complete(app, env=env, root=root, **kwargs)
    return app


def source(app: Flask, key: str) -> str:
    return t.cast(str, app.extensions["complete"].settings.sources[key])


SETTINGS = """
[default]
GREETING = "settings default"
[development]
GREETING = "settings development"
"""


@pytest.mark.usefixtures("clean_env")
class TestPrecedence:
    """One test per layer: each beats the one below it."""

    def test_bundle_default(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        assert app.config["DATABASE_POOL_SIZE"] == 5
        assert source(app, "DATABASE_POOL_SIZE") == "flask_complete default"

    def test_settings_default_beats_bundle_default(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, files={"settings.toml": "[default]\nDATABASE_POOL_SIZE = 7\n"})
        assert app.config["DATABASE_POOL_SIZE"] == 7
        assert source(app, "DATABASE_POOL_SIZE") == "settings.toml [default]"

    def test_bundle_env_beats_settings_default(self, tmp_path: Path) -> None:
        # The bundle's [testing] hardening wins over a user's [default].
        app = make_app(
            tmp_path, env="testing", files={"settings.toml": "[default]\nDATABASE_POOL_SIZE = 7\n"}
        )
        assert app.config["DATABASE_POOL_SIZE"] == 2
        assert source(app, "DATABASE_POOL_SIZE") == "flask_complete [testing]"

    def test_settings_env_beats_settings_default(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, files={"settings.toml": SETTINGS})
        assert app.config["GREETING"] == "settings development"
        assert source(app, "GREETING") == "settings.toml [development]"

    def test_secrets_beat_settings_env(self, tmp_path: Path) -> None:
        app = make_app(
            tmp_path,
            files={"settings.toml": SETTINGS, ".secrets.toml": '[default]\nGREETING = "secret"\n'},
        )
        assert app.config["GREETING"] == "secret"
        assert source(app, "GREETING") == ".secrets.toml [default]"

    def test_dotenv_beats_secrets_in_development(self, tmp_path: Path) -> None:
        files = {".secrets.toml": 'GREETING = "secret"\n', ".env": "FLASK_GREETING=dotenv\n"}
        app = make_app(tmp_path, files=files)
        assert app.config["GREETING"] == "dotenv"
        assert source(app, "GREETING") == ".env"

    def test_dotenv_ignored_outside_development(self, tmp_path: Path) -> None:
        files = {".env": "FLASK_GREETING=dotenv\nFLASK_ENV=production\n"}
        app = make_app(tmp_path, env="testing", files=files)
        assert "GREETING" not in app.config
        assert app.extensions["complete"].env == "testing"

    def test_env_var_beats_dotenv_and_secrets(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_GREETING", "from env")
        files = {".secrets.toml": 'GREETING = "secret"\n', ".env": "FLASK_GREETING=dotenv\n"}
        app = make_app(tmp_path, files=files)
        assert app.config["GREETING"] == "from env"
        assert source(app, "GREETING") == "env FLASK_GREETING"

    def test_code_beats_env_var(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("FLASK_GREETING", "from env")
        app = make_app(tmp_path, code={"GREETING": "from code"})
        assert app.config["GREETING"] == "from code"
        assert source(app, "GREETING") == "code"

    def test_code_database_url_wins_over_files(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        app = make_app(tmp_path, env="testing", code={"SQLALCHEMY_DATABASE_URI": "sqlite://"})
        # A test factory's in-memory URL is kept as is, not turned into a test_ copy.
        assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite://"
        shadowed = app.extensions["complete"].settings.shadowed
        assert shadowed == {"SQLALCHEMY_DATABASE_URI": "env DATABASE_URL"}

    def test_prefixed_name_beats_twelve_factor_name(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("SECRET_KEY", "plain-" + STRONG)
        clean_env.setenv("FLASK_SECRET_KEY", "prefixed-" + STRONG)
        app = make_app(tmp_path)
        assert app.config["SECRET_KEY"] == "prefixed-" + STRONG
        assert source(app, "SECRET_KEY") == "env FLASK_SECRET_KEY"

    def test_twelve_factor_redis_url(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
        app = make_app(tmp_path)
        assert app.config["REDIS_URL"] == "redis://127.0.0.1:6379/0"
        assert source(app, "REDIS_URL") == "env REDIS_URL"

    def test_flask_default_is_not_code(self, tmp_path: Path) -> None:
        # DEBUG equals Flask's own default, so the settings file may set it.
        app = make_app(tmp_path, files={"settings.toml": "[development]\nDEBUG = true\n"})
        assert app.config["DEBUG"] is True


@pytest.mark.usefixtures("clean_env")
class TestValues:
    def test_numeric_secret_stays_a_string(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_SECRET_KEY", "123456")
        app = make_app(tmp_path)
        assert app.config["SECRET_KEY"] == "123456"

    def test_env_values_are_toml(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("FLASK_DATABASE_POOL_SIZE", "9")
        clean_env.setenv("FLASK_SOME_LIST", '["a", "b"]')
        app = make_app(tmp_path)
        assert app.config["DATABASE_POOL_SIZE"] == 9
        assert app.config["SOME_LIST"] == ["a", "b"]

    def test_dynaconf_casting_tokens_apply_in_files_and_the_environment(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_RETRIES", "@int 5")
        clean_env.setenv("FLASK_LIMITS", '@json {"a": [1, 2]}')
        clean_env.setenv("FLASK_SECRET_KEY", "@int 5" + "x" * 40)  # a secret stays as written
        files = {"settings.toml": '[default]\nTIMEOUT = "@float 2.5"\nFLAG = "@bool on"\n'}
        app = make_app(tmp_path, files=files)
        assert app.config["RETRIES"] == 5
        assert app.config["LIMITS"] == {"a": [1, 2]}
        assert type(app.config["LIMITS"]) is dict  # a plain dict, not a Dynaconf node
        assert app.config["SECRET_KEY"].startswith("@int 5")
        assert app.config["TIMEOUT"] == 2.5
        assert app.config["FLAG"] is True

    @pytest.mark.parametrize(
        ("variable", "file", "token", "where"),
        [
            ("@format {env[HOME]}/data", None, "@format", "env FLASK_X"),
            ("@merge [1]", None, "@merge", "env FLASK_X"),
            ("@del", None, "@del", "env FLASK_X"),
            (None, '[development.X]\nlist = "@insert 0 a"\n', "@insert", "settings.toml"),
            (None, '[default]\nX = "@jinja {{ this.Y }}"\n', "@jinja", "settings.toml"),
        ],
    )
    def test_tokens_that_need_a_dynaconf_object_are_refused(
        self,
        tmp_path: Path,
        clean_env: pytest.MonkeyPatch,
        variable: str | None,
        file: str | None,
        token: str,
        where: str,
    ) -> None:
        if variable is not None:
            clean_env.setenv("FLASK_X", variable)
        with pytest.raises(ConfigError) as e:
            make_app(tmp_path, files={"settings.toml": file} if file else None)
        message = e.value.format_message()
        assert f"uses Dynaconf's {token}" in message
        assert f"(from {where}" in message
        assert "Write the final value instead" in message

    def test_a_bad_cast_names_key_value_and_source(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_RETRIES", "@int many")
        with pytest.raises(ConfigError) as e:
            make_app(tmp_path)
        message = e.value.format_message()
        assert "RETRIES = '@int many' (from env FLASK_RETRIES) cannot be read" in message

    def test_nested_env_var_merges(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("FLASK_MAIL__port", "25")
        app = make_app(tmp_path, files={"settings.toml": '[default]\nMAIL = {host = "mx"}\n'})
        assert app.config["MAIL"] == {"host": "mx", "port": 25}

    def test_flask_cli_variables_are_not_settings(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_APP", "x.py")
        clean_env.setenv("FLASK_RUN_PORT", "8000")
        app = make_app(tmp_path)
        assert "APP" not in app.config
        assert "RUN_PORT" not in app.config

    def test_wrong_type_names_key_value_source_and_form(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as e:
            make_app(
                tmp_path, files={"settings.toml": '[development]\nDATABASE_POOL_SIZE = "big"\n'}
            )
        message = e.value.format_message()
        assert "DATABASE_POOL_SIZE = 'big'" in message
        assert "settings.toml [development]" in message
        assert "Expected a whole number >= 0" in message

    def test_malformed_toml_names_file_and_line(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as e:
            make_app(tmp_path, files={"settings.toml": "[default]\nA = 1\nB = oops\n"})
        message = e.value.format_message()
        assert "settings.toml is not valid TOML" in message
        assert "line 3" in message

    def test_piece_switch_must_be_boolean(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="COMPLETE_CORS = 'no'"):
            make_app(tmp_path, files={"settings.toml": '[default]\nCOMPLETE_CORS = "no"\n'})


@pytest.mark.usefixtures("clean_env")
class TestEnvironment:
    @pytest.fixture(autouse=True)
    def _unforced(self) -> t.Iterator[None]:
        # The pytest plugin pins the run to "testing"; these tests exercise FLASK_ENV itself.
        from flask_complete.settings import config

        saved = config._forced_env
        force_env(None)
        yield
        config._forced_env = saved

    def test_default_is_development(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, env=None)
        assert app.config["COMPLETE_ENV"] == "development"

    def test_flask_env_selects(self, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("FLASK_ENV", "Testing")
        app = make_app(tmp_path, env=None)
        assert app.extensions["complete"].env == "testing"

    def test_unknown_env_lists_valid_ones(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_ENV", "staging")
        with pytest.raises(ConfigError) as e:
            make_app(tmp_path, env=None)
        assert "FLASK_ENV='staging' is not an environment" in e.value.format_message()
        assert "development, testing, production" in e.value.format_message()

    def test_forced_env_beats_flask_env(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("FLASK_ENV", "production")
        force_env("testing")
        app = make_app(tmp_path, env=None)
        assert app.extensions["complete"].env == "testing"


@pytest.mark.usefixtures("clean_env")
class TestProductionRefusals:
    def test_missing_secret_and_database(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as e:
            make_app(tmp_path, env="production")
        message = e.value.format_message()
        # The first line is the first problem itself, for logs that show one line.
        assert message.splitlines()[0].startswith("SECRET_KEY is missing: production signs")
        assert message.splitlines()[0].endswith("[secret.missing]")
        assert "DATABASE_URL" in message.splitlines()[1]
        assert "production" in message

    @pytest.mark.parametrize("secret", ["changeme", "dev-not-secret", "short-but-random-x7"])
    def test_weak_secret_refused_even_from_code(self, tmp_path: Path, secret: str) -> None:
        with pytest.raises(ConfigError, match="SECRET_KEY \\(from code\\)"):
            make_app(
                tmp_path,
                env="production",
                code={"SECRET_KEY": secret, "SQLALCHEMY_DATABASE_URI": "sqlite://"},
            )

    def test_strong_secret_and_url_start(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        clean_env.setenv("SECRET_KEY", STRONG)
        clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
        app = make_app(tmp_path, env="production")
        assert app.extensions["complete"].env == "production"

    def test_failed_init_leaves_no_state(self, tmp_path: Path) -> None:
        app = Flask("x", root_path=str(tmp_path))
        with pytest.raises(ConfigError):
            Complete(app, env="production", root=tmp_path)
        assert "complete" not in app.extensions


@pytest.mark.usefixtures("clean_env")
class TestGeneratedSecret:
    """Without a SECRET_KEY, development and testing get one, so logins work out of the box."""

    def test_development_keeps_one_in_the_instance_folder(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        key_file = tmp_path / "instance" / "secret_key"
        assert app.config["SECRET_KEY"] == key_file.read_text().strip()
        assert len(app.config["SECRET_KEY"]) >= 32
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert source(app, "SECRET_KEY") == f"generated for development ({key_file})"
        # The next process (a restart, another worker) signs with the same key.
        assert make_app(tmp_path).config["SECRET_KEY"] == app.config["SECRET_KEY"]
        client = app.test_client()
        with client.session_transaction() as session:
            session["seen"] = True
        with client.session_transaction() as session:
            assert session["seen"] is True

    def test_processes_starting_together_share_one_key(self, tmp_path: Path) -> None:
        code = (
            "import sys\n"
            "from flask import Flask\n"
            "from flask_complete import Complete\n"
            "root = sys.argv[1]\n"
            "app = Flask('w', root_path=root, instance_path=root + '/instance')\n"
            "Complete(app, env='development', root=root)\n"
            "print(app.config['SECRET_KEY'])\n"
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        keys = {worker.communicate(timeout=60)[0].strip() for worker in workers}
        assert keys == {(tmp_path / "instance" / "secret_key").read_text().strip()}
        assert [p.name for p in (tmp_path / "instance").iterdir()] == ["secret_key"]

    def test_testing_makes_one_per_process_and_writes_nothing(self, tmp_path: Path) -> None:
        first, second = make_app(tmp_path, env="testing"), make_app(tmp_path, env="testing")
        assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]
        assert not (tmp_path / "instance" / "secret_key").exists()
        assert source(first, "SECRET_KEY") == "generated for this process (testing)"

    def test_a_key_from_code_or_a_file_is_kept(self, tmp_path: Path) -> None:
        assert make_app(tmp_path, code={"SECRET_KEY": STRONG}).config["SECRET_KEY"] == STRONG
        files = {".secrets.toml": f'SECRET_KEY = "{STRONG}x"\n'}
        assert make_app(tmp_path, files=files).config["SECRET_KEY"] == STRONG + "x"
        assert not (tmp_path / "instance" / "secret_key").exists()

    def test_unreadable_key_file_still_gives_a_key(self, tmp_path: Path) -> None:
        (tmp_path / "instance" / "secret_key").mkdir(parents=True)  # not a file
        app = make_app(tmp_path)
        assert len(app.config["SECRET_KEY"]) >= 32


def test_double_init_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(RuntimeError, match="already initialised"):
        Complete(app, env="development", root=tmp_path)


def test_redaction() -> None:
    assert redact("SECRET_KEY", "abc") == "***"
    assert redact("MAIL_PASSWORD", "abc") == "***"
    assert redact("GREETING", "hi") == "hi"
    # The bundle's own settings named like secrets, and switches, are shown.
    assert redact("AUTH_PASSWORD_MIN_LENGTH", 10) == 10
    assert redact("AUTH_TOKEN_DAYS", 30) == 30
    assert redact("API_TOKEN_ENABLED", True) is True
    assert redact("STRIPE_API_KEY", 12345) == "***"
    assert redact_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact("X", {"url": "mysql+pymysql://u:pw@h/db"}) == {
        "url": "mysql+pymysql://u:***@h/db"
    }


def test_root_is_found_from_the_app_package(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('[default]\nGREETING = "found"\n')
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    app = Flask("pkg", root_path=str(package), instance_path=str(tmp_path / "instance"))
    Complete(app, env="development")
    assert app.config["GREETING"] == "found"
    assert app.extensions["complete"].root == tmp_path.resolve()


@pytest.mark.parametrize("git_entry", ["folder", "file"])
def test_the_root_is_found_at_the_git_top_and_never_above(tmp_path: Path, git_entry: str) -> None:
    """Without settings.toml or pyproject.toml in the repository, the root is its top (where
    ``flask complete init`` writes), not the app package and not a folder above the repository."""
    from flask_complete.settings.config import find_root

    (tmp_path / "settings.toml").write_text('GREETING = "not this project\'s"\n')
    repo = tmp_path / "repo"
    (repo / "myapp").mkdir(parents=True)
    if git_entry == "folder":
        (repo / ".git").mkdir()
    else:  # a worktree or a submodule
        (repo / ".git").write_text("gitdir: elsewhere\n")
    assert find_root(repo / "myapp") == repo
    (repo / "myapp" / "pyproject.toml").write_text("")
    assert find_root(repo / "myapp") == repo / "myapp"

"""Encrypted credentials: edited through $EDITOR, committed, decrypted into the settings with the
key from the environment or the instance folder; every bad file refused in one line, whole."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_complete import Complete, ConfigError
from flask_complete.checks.rules import run_checks
from flask_complete.settings import credentials as cred

STRONG = "0DN0ChY67E2jycM-QuyNJvakO8U6q37Yv95BRUZcqNpVoaGcOegvTeb8lW2F8ph5"
TOKEN = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRETS_TEXT = f'''# production credentials
SECRET_KEY = "{STRONG}"
API_TOKEN = "{TOKEN}"
SMTP_HOST = "mail.internal.example"
'''
FLASK = str(Path(sys.executable).with_name("flask"))
GIT = shutil.which("git") or "git"

APP_PY = """\
from flask import Flask

from flask_complete import Complete

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
Complete(app)
"""


def make_app(root: Path, env: str = "production", **config: t.Any) -> Flask:
    app = Flask("credapp", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update({"SQLALCHEMY_DATABASE_URI": "sqlite://", **config})
    Complete(app, env=env, root=root)
    return app


def encrypted(root: Path, env: str = "production", text: str = SECRETS_TEXT) -> cred.Key:
    """Write ``env``'s credentials file under ``root`` with a new key, in the key file."""
    key = cred.generate_key()
    cred.save_key(root / "instance", env, key)
    cred.write(root, env, text, key)
    return key


def editor_script(tmp_path: Path, text: str) -> str:
    """An $EDITOR that replaces the file it is given with ``text``."""
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'w').write({text!r})\n")
    return f"{sys.executable} {script}"


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    environ.pop("DATABASE_URL", None)
    environ.pop("SECRET_KEY", None)
    return subprocess.run(
        args, cwd=cwd, env={**environ, **env}, capture_output=True, text=True, timeout=120
    )


def git(cwd: Path, *args: str) -> None:
    ident = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([GIT, *ident, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


# -- the round trip through the real commands ------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_edit_commit_clone_and_start_production_with_the_key(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(APP_PY)
    (project / "settings.toml").write_text("[production]\nSESSION_COOKIE_SECURE = true\n")
    (project / ".gitignore").write_text("instance/\n__pycache__/\n")
    edited = run(
        project,
        FLASK,
        "--app",
        "app",
        "complete",
        "credentials",
        "edit",
        "--env",
        "production",
        EDITOR=editor_script(tmp_path, SECRETS_TEXT),
    )
    assert edited.returncode == 0, edited.stderr
    key_path = project / "instance" / "credentials" / "production.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    data = (project / "credentials" / "production.toml.enc").read_bytes()
    assert STRONG.encode() not in data and TOKEN.encode() not in data
    assert "credentials/production.toml.enc" in edited.stdout
    key = key_path.read_text().strip()

    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "credentials")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / "instance").exists()

    show = (
        "from app import app; print(app.config['API_TOKEN'] == %r, app.config['SECRET_KEY'] == %r)"
    )
    started = run(
        clone,
        sys.executable,
        "-c",
        show % (TOKEN, STRONG),
        FLASK_ENV="production",
        FLASK_CREDENTIALS_KEY_PRODUCTION=key,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["True", "True"]

    config = run(
        clone,
        FLASK,
        "--app",
        "app",
        "complete",
        "config",
        "--format",
        "json",
        FLASK_ENV="production",
        FLASK_CREDENTIALS_KEY=key,
    )
    assert config.returncode == 0, config.stderr
    settings_ = json.loads(config.stdout)["settings"]
    for name in ("SECRET_KEY", "API_TOKEN", "SMTP_HOST"):
        assert settings_[name] == {"value": "***", "source": "credentials/production.toml.enc"}
    assert key not in config.stdout and "CREDENTIALS_KEY" not in config.stdout

    refused = run(clone, sys.executable, "-c", show % (TOKEN, STRONG), FLASK_ENV="production")
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "FLASK_CREDENTIALS_KEY_PRODUCTION" in last and "[credentials.key_missing]" in last

    enc = clone / "credentials" / "production.toml.enc"
    header, body = enc.read_bytes().split(b"\n", 1)
    sealed = bytearray(base64.b64decode(body))
    sealed[-20] ^= 1
    enc.write_bytes(header + b"\n" + base64.b64encode(bytes(sealed)) + b"\n")
    tampered = run(
        clone,
        sys.executable,
        "-c",
        show % (TOKEN, STRONG),
        FLASK_ENV="production",
        FLASK_CREDENTIALS_KEY_PRODUCTION=key,
    )
    assert tampered.returncode != 0
    assert "fails authentication" in tampered.stderr.strip().splitlines()[-1]


# -- the settings layer -----------------------------------------------------------------------


def test_the_layer_sits_between_secrets_file_and_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".secrets.toml").write_text('[production]\nAPI_TOKEN = "old"\nMAIL = "file"\n')
    (tmp_path / ".secrets.toml").chmod(0o600)
    encrypted(tmp_path, text=SECRETS_TEXT + 'MAIL = "credentials"\n')
    clean_env.setenv("FLASK_SMTP_HOST", "from-env")
    app = make_app(tmp_path)
    sources = app.extensions["complete"].settings.sources
    assert (app.config["API_TOKEN"], sources["API_TOKEN"]) == (TOKEN, cred.label("production"))
    assert app.config["MAIL"] == "credentials"
    assert (app.config["SMTP_HOST"], sources["SMTP_HOST"]) == ("from-env", "env FLASK_SMTP_HOST")


def test_the_key_variables_are_no_settings(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    key = encrypted(tmp_path)
    (tmp_path / "instance" / "credentials" / "production.key").unlink()
    clean_env.setenv("FLASK_CREDENTIALS_KEY_PRODUCTION", key.encoded())
    clean_env.setenv("FLASK_CREDENTIALS_KEY", cred.generate_key().encoded())
    app = make_app(tmp_path)  # a typo of a setting would be refused in production
    assert app.config["API_TOKEN"] == TOKEN
    assert not [k for k in app.config if "CREDENTIALS_KEY" in k]


def test_the_environment_specific_key_wins_and_a_wrong_one_is_named(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    key = encrypted(tmp_path)
    clean_env.setenv("FLASK_CREDENTIALS_KEY", key.encoded())
    clean_env.setenv("FLASK_CREDENTIALS_KEY_PRODUCTION", cred.generate_key().encoded())
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path)
    (problem,) = caught.value.problems
    assert "FLASK_CREDENTIALS_KEY_PRODUCTION is key" in problem.message
    assert key.fingerprint in problem.message and key.encoded() not in str(caught.value)


@pytest.mark.usefixtures("clean_env")
def test_a_file_of_another_environment_is_refused(tmp_path: Path) -> None:
    key = encrypted(tmp_path, "development")
    cred.save_key(tmp_path / "instance", "production", key)
    shutil.copy(cred.path_of(tmp_path, "development"), cred.path_of(tmp_path, "production"))
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path)
    assert "another environment ('development'" in str(caught.value)
    # The header says production, the sealed text was development's: authentication fails.
    path = cred.path_of(tmp_path, "production")
    path.write_bytes(path.read_bytes().replace(b"env=development", b"env=production"))
    with pytest.raises(ConfigError, match="fails authentication"):
        make_app(tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_without_a_file_nothing_is_read_and_no_key_is_needed(tmp_path: Path) -> None:
    encrypted(tmp_path, "production")
    app = make_app(tmp_path, "development")
    assert "API_TOKEN" not in app.config


def _one_line_refusal(root: Path) -> ConfigError:
    app = Flask("credapp", root_path=str(root), instance_path=str(root / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    before = dict(app.config)
    with pytest.raises(ConfigError) as caught:
        Complete(app, env="production", root=root)
    assert dict(app.config) == before, "a value of a refused file was used"
    assert "complete" not in app.extensions
    (problem,) = caught.value.problems
    assert problem.id == "credentials.undecryptable"
    assert "\n" not in str(caught.value)
    assert STRONG not in str(caught.value) and TOKEN not in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def sealed_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("sealed")
    encrypted(root)
    return root, cred.path_of(root, "production").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.usefixtures("clean_env")
def test_every_changed_or_truncated_file_is_refused_whole(
    sealed_file: tuple[Path, bytes], data: st.DataObject
) -> None:
    root, original = sealed_file
    path = cred.path_of(root, "production")
    if data.draw(st.booleans(), label="truncate"):
        changed = original[: data.draw(st.integers(0, len(original) - 2), label="length")]
    else:
        at = data.draw(st.integers(0, len(original) - 2), label="at")
        bit = data.draw(st.integers(0, 7), label="bit")
        changed = original[:at] + bytes([original[at] ^ (1 << bit)]) + original[at + 1 :]
    # A flip inside the base64 that decodes to the same bytes, or whitespace: the same file.
    try:
        path.write_bytes(changed)
        if changed.strip() == original.strip():
            return
        _one_line_refusal(root)
    finally:
        path.write_bytes(original)


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=60))
def test_a_variable_that_is_no_key_is_refused_without_quoting_it(text: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except Exception:
        raw = b""
    if len(raw) == cred.KEY_BYTES:
        return
    with pytest.raises(cred.CredentialsError) as caught:
        cred.parse_key(text, "FLASK_CREDENTIALS_KEY", "production")
    assert "FLASK_CREDENTIALS_KEY is not a credentials key" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- the commands -----------------------------------------------------------------------------


def test_show_redacts_unless_asked(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    encrypted(tmp_path)
    runner = make_app(tmp_path).test_cli_runner()
    shown = runner.invoke(args=["complete", "credentials", "show", "--env", "production"])
    assert shown.exit_code == 0, shown.output
    assert STRONG not in shown.output and TOKEN not in shown.output
    assert 'API_TOKEN = "***"' in shown.output and 'SMTP_HOST = "***"' in shown.output
    revealed = runner.invoke(
        args=["complete", "credentials", "show", "--env", "production", "--reveal"]
    )
    assert revealed.output == SECRETS_TEXT


def test_edit_keeps_the_file_when_the_toml_is_invalid(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    encrypted(tmp_path)
    before = cred.path_of(tmp_path, "production").read_bytes()
    clean_env.setenv("EDITOR", editor_script(tmp_path, "SECRET_KEY = unquoted\n"))
    runner = make_app(tmp_path).test_cli_runner()
    result = runner.invoke(
        args=["complete", "credentials", "edit", "--env", "production"], input="n\n"
    )
    assert result.exit_code == 1
    assert "not valid TOML" in result.output and "unchanged" in result.output
    assert cred.path_of(tmp_path, "production").read_bytes() == before


def test_rotate_re_encrypts_with_a_new_key(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    old = encrypted(tmp_path)
    runner = make_app(tmp_path).test_cli_runner()
    result = runner.invoke(args=["complete", "credentials", "rotate", "--env", "production"])
    assert result.exit_code == 0, result.output
    new = cred.find_key("production", tmp_path / "instance")
    assert new is not None and new.raw != old.raw
    assert make_app(tmp_path).config["API_TOKEN"] == TOKEN
    with pytest.raises(cred.CredentialsError, match="the wrong key"):
        cred.decrypt(cred.path_of(tmp_path, "production").read_bytes(), "production", old)
    # A key kept in a variable cannot be written for the user: the new one is printed once.
    clean_env.setenv("FLASK_CREDENTIALS_KEY_PRODUCTION", new.encoded())
    result = runner.invoke(args=["complete", "credentials", "rotate", "--env", "production"])
    assert result.exit_code == 0, result.output
    printed = [w for w in result.output.split() if len(w) == 44 and w != new.encoded()]
    assert len(printed) == 1
    clean_env.setenv("FLASK_CREDENTIALS_KEY_PRODUCTION", printed[0])
    assert make_app(tmp_path).config["API_TOKEN"] == TOKEN


# -- check --deploy ---------------------------------------------------------------------------


def _deploy_findings(root: Path) -> dict[str, str]:
    app = make_app(root, "development", SECRET_KEY=STRONG)
    return {f.id: f.level for f in run_checks(app, deploy=True) if f.id.startswith("credentials")}


@pytest.mark.usefixtures("clean_env")
def test_check_deploy_judges_the_production_credentials(tmp_path: Path) -> None:
    encrypted(tmp_path)
    assert _deploy_findings(tmp_path) == {}
    path = cred.path_of(tmp_path, "production")
    path.write_bytes(path.read_bytes()[:-10])
    assert _deploy_findings(tmp_path) == {"credentials.undecryptable": "error"}
    (tmp_path / "instance" / "credentials" / "production.key").unlink()
    # This machine has no production key: nothing to judge the file with, said as a warning.
    assert _deploy_findings(tmp_path) == {"credentials.key_missing": "warning"}


@pytest.mark.usefixtures("clean_env")
def test_check_deploy_reports_a_tracked_key_and_plaintext_secrets(tmp_path: Path) -> None:
    encrypted(tmp_path)
    (tmp_path / ".secrets.toml").write_text(f'[production]\nMAIL_PASSWORD = "{TOKEN}"\n')
    (tmp_path / ".secrets.toml").chmod(0o600)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-f", "instance/credentials/production.key")
    found = _deploy_findings(tmp_path)
    assert found == {"credentials.key_tracked": "error", "credentials.plaintext": "warning"}


@pytest.mark.usefixtures("clean_env")
def test_production_check_lists_the_missing_key(tmp_path: Path) -> None:
    encrypted(tmp_path)
    (tmp_path / "instance" / "credentials" / "production.key").unlink()
    (tmp_path / "app.py").write_text(APP_PY)
    result = run(tmp_path, FLASK, "--app", "app", "complete", "check", FLASK_ENV="production")
    assert result.returncode == 1
    assert "credentials.key_missing" in result.stdout

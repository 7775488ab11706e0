"""The generated references (docs/_ext/references.py) against the code, without building the docs:
every setting of defaults.toml and of the schema, every option, ini key and fixture of the pytest
plugin, every command group and public module has its entry, with what the code says about it.

The expected lists are taken from the code here, independently of the generator, so that a
generator that drops an entry fails (``test_a_dropped_setting_is_caught`` proves it).
tests/test_docs_build.py builds the real docs and looks for the same entries in the HTML.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import typing as t
from pathlib import Path

import pytest

from flask_complete.settings import config
from flask_complete.settings import schema as settings_schema

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import cli_groups  # noqa: E402
import references  # noqa: E402

PUBLIC_MODULES = (
    "flask_complete",
    "flask_complete.api",
    "flask_complete.auth",
    "flask_complete.factories",
    "flask_complete.testing",
)
#: The pages the index must link (the issue's list; the references are generated).
PAGES = (
    "why",
    "quickstart",
    "retrofit",
    "configuration",
    "settings",
    "database",
    "migrations",
    "seeds",
    "testing",
    "pytest",
    "auth",
    "cors",
    "checks",
    "cli",
    "deployment",
    "upgrading",
    "api",
    "changelog",
)


def defaults_toml() -> dict[str, dict[str, t.Any]]:
    with open(REPO / "flask_complete" / "settings" / "defaults.toml", "rb") as f:
        return tomllib.load(f)


def expected_settings() -> list[str]:
    """Every key of defaults.toml, in any section, and every declared bundle setting."""
    keys = set(settings_schema.BUNDLE)
    for section in defaults_toml().values():
        keys |= set(section)
    return sorted(keys)


def entries(rst: list[str]) -> dict[str, str]:
    """``.. setting:: KEY`` -> the text of its entry."""
    text = "\n".join(rst)
    parts = re.split(r"^\.\. setting:: (\S+)\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def check_settings_page(rst: list[str]) -> None:
    """What the settings page must say of every setting; an ``AssertionError`` names the gap."""
    found = entries(rst)
    missing = [key for key in expected_settings() if key not in found]
    assert not missing, f"settings missing from the page: {missing}"
    defaults = defaults_toml()
    for key in expected_settings():
        entry = found[key]
        declared = settings_schema.spec(key)
        if declared is not None:
            assert f":Type: {declared[0].expected}" in entry, key
        assert f"``FLASK_{key}``" in entry, key
        assert (f"``{key}``" in entry.split(":Environment:")[1].split("\n")[0]) == (
            key in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
        ), key
        init = "at init" in entry.split(":Read:")[1]
        assert init == config.is_init_time_key(key), key
        # The value of each environment: the bundle's [default], overlaid by its section.
        default_line = entry.split(":Default:")[1].split("\n")[0]
        for env in ("development", "testing", "production"):
            merged = {**defaults.get("default", {}), **defaults.get(env, {})}
            if key in merged:
                assert f"``{json.dumps(merged[key])}``" in default_line, (key, env)
        assert ":Read by:" in entry, key


def test_every_setting_is_on_the_page_with_its_type_default_variable_and_reader() -> None:
    check_settings_page(references.settings_rst())


def test_a_dropped_setting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = references.setting_keys()
    monkeypatch.setattr(references, "setting_keys", lambda: keys[:-1])
    monkeypatch.delitem(references.SUMMARIES, keys[-1])
    with pytest.raises(AssertionError, match=keys[-1]):
        check_settings_page(references.settings_rst())


def test_a_wrong_default_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = references.bundle_defaults()
    changed = {**real, "testing": {**real["testing"], "DATABASE_POOL_SIZE": 7}}
    monkeypatch.setattr(references, "bundle_defaults", lambda: changed)
    with pytest.raises(AssertionError, match="DATABASE_POOL_SIZE"):
        check_settings_page(references.settings_rst())


def test_a_setting_without_summary_is_described_by_its_defaults_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(references.SUMMARIES, "CORS_MAX_AGE")
    entry = entries(references.settings_rst())["CORS_MAX_AGE"]
    # defaults.toml: "# Seconds a browser may cache a preflight answer (Chromium caps it at 7200)."
    assert "Seconds a browser may cache a preflight answer" in entry
    # Values and names in a comment are literals; reST's markup characters are escaped.
    assert references.comment_rst('globs ("https://*.x") or NAME_X, a*b_') == (
        'globs (``"https://*.x"``) or ``NAME_X``, a\\*b\\_'
    )


def test_a_setting_without_summary_or_comment_stops_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(references.SUMMARIES, "CORS_MAX_AGE")
    monkeypatch.setattr(references, "defaults_comments", lambda: {})
    with pytest.raises(references.ReferenceError, match=r"no summary for CORS_MAX_AGE"):
        references.settings_rst()


def test_a_summary_of_a_removed_setting_stops_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(references.SUMMARIES, "DATABASE_POOL_GONE", "Gone.")
    with pytest.raises(references.ReferenceError, match=r"no longer exist: DATABASE_POOL_GONE"):
        references.settings_rst()


def test_a_computed_default_must_be_described(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(references.COMPUTED_DEFAULTS, "REDIS_URL")
    with pytest.raises(references.ReferenceError, match=r"no default for REDIS_URL"):
        references.settings_rst()


def test_every_setting_is_read_by_something() -> None:
    unread = [s.key for s in references.settings() if not (s.readers or s.libraries)]
    assert not unread
    pool = next(s for s in references.settings() if s.key == "DATABASE_POOL_SIZE")
    assert pool.readers == ("database.engines",)
    assert pool.init_time is config.is_init_time_key("DATABASE_POOL_SIZE") is True


def test_the_table_of_connections_follows_the_production_defaults() -> None:
    size, overflow = references.production_pool()
    defaults = defaults_toml()
    merged = {**defaults["default"], **defaults.get("production", {})}
    assert (size, overflow) == (merged["DATABASE_POOL_SIZE"], merged["DATABASE_MAX_OVERFLOW"])
    text = "\n".join(references.connections_rst([4], max_connections=100, reserved=3))
    per = size + overflow
    assert f"4 \N{MULTIPLICATION SIGN} {per} = {4 * per}" in text


# -- the pytest plugin ---------------------------------------------------------------------------


def _pytest(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FLASK_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def test_every_plugin_option_ini_key_and_fixture_is_on_the_page(tmp_path: Path) -> None:
    text = "\n".join(references.pytest_rst())
    # What pytest itself lists for the installed plugin, in a folder without any ini file.
    help_text = _pytest("--help", cwd=tmp_path)
    section = help_text.split("flask_complete (app and test database):")[1].split("\n\n")[0]
    options = re.findall(r"^\s+(--[\w-]+)", section, flags=re.MULTILINE)
    assert "--reuse-db" in options
    for option in options:
        assert re.search(rf"^\.\. option:: {option}\b", text, flags=re.MULTILINE), option
    inis = re.findall(r"^  (flask_\w+) \(", help_text, flags=re.MULTILINE)
    assert "flask_factories" in inis
    for name in inis:
        assert f".. confval:: {name}\n" in text, name
    fixtures_text = _pytest("--fixtures", cwd=tmp_path)
    ours = fixtures_text.split("fixtures defined from flask_complete.pytest_plugin")[1]
    ours = ours.split(" fixtures defined from ")[0]
    # A fixture's line starts at the margin ("db -- path:line"), its docstring is indented.
    fixtures = re.findall(r"^(\w+)(?: \[[\w ]+\])?(?: -- .*)?$", ours, flags=re.MULTILINE)
    assert {"app", "db", "client", "live_server"} <= set(fixtures)
    for name in fixtures:
        assert f".. fixture:: {name}\n" in text, name


def test_a_fixture_without_docstring_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "flask_complete"
    package.mkdir()
    (package / "pytest_plugin.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef undocumented():\n    return 1\n"
    )
    monkeypatch.setattr(references, "package_dir", lambda: package)
    with pytest.raises(references.ReferenceError, match="'undocumented' has no docstring"):
        references.plugin_fixtures()


# -- the CLI, the API and the index --------------------------------------------------------------


def test_every_command_group_of_an_app_is_on_the_cli_page() -> None:
    page = (DOCS / "cli.rst").read_text()
    groups = cli_groups.groups()
    assert set(groups) == {"complete", "db", "users"}
    for name in groups:
        assert f".. click:: cli_groups:{name}\n   :prog: flask {name}\n   :nested: full" in page
    # The bundle's own commands are in the flask db group sphinx-click reads.
    assert {"create", "drop", "seed", "reset", "prepare", "upgrade"} <= set(cli_groups.db.commands)
    assert {"check", "versions"} <= set(cli_groups.complete.commands)


def test_the_docs_user_model_leaves_the_shared_metadata_alone() -> None:
    from flask_complete import db

    assert cli_groups.User.__table__.metadata is not db.metadata


def test_every_public_module_is_on_the_api_page() -> None:
    page = (DOCS / "api.rst").read_text()
    for module in PUBLIC_MODULES:
        assert f".. public-api:: {module}\n" in page


def test_the_index_links_every_page() -> None:
    index = (DOCS / "index.rst").read_text()
    listed = re.findall(r"^   (\w+)$", index, flags=re.MULTILINE)
    for page in PAGES:
        assert (DOCS / f"{page}.rst").is_file(), page
        assert page in listed, page

"""The docs build for real, warnings as errors and without the network, and the generated pages
hold an entry for everything the code has: every setting, command, plugin option, ini key,
fixture and public name. Needs the ``docs`` dependency group (``make docs`` installs it)."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs tools are not installed (make docs installs them)")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import cli_groups  # noqa: E402
import references  # noqa: E402
from test_docs_reference import PUBLIC_MODULES, expected_settings  # noqa: E402

#: Real processes and builds: `make test-slow` and CI run them, `make test` does not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built once for this module, in a fresh process as ``make docs`` builds them."""
    out = tmp_path_factory.mktemp("html")
    # No proxy either: a build that tried the network would fail here, not hang.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        {
            k: "http://127.0.0.1:9"
            for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / ".doctrees"),
            str(REPO / "docs"),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def ids(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text()))


def test_every_setting_has_an_entry(html: Path) -> None:
    found = ids(html / "settings.html")
    missing = [key for key in expected_settings() if f"setting-{key}" not in found]
    assert not missing


def test_every_command_has_an_entry(html: Path) -> None:
    found = ids(html / "cli.html")
    paths = [
        path
        for name, group in cli_groups.groups().items()
        for path, _ in cli_groups.walk(group, f"flask {name}")
    ]
    assert "flask db prepare" in paths and "flask users token" in paths
    missing = [path for path in paths if path.replace(" ", "-") not in found]
    assert not missing
    # Options too: the bundle's guard on Flask-Migrate's downgrade.
    assert "cmdoption-flask-db-downgrade-i-know-this-is-production" in found


def test_every_plugin_option_ini_key_and_fixture_has_an_entry(html: Path) -> None:
    found = ids(html / "pytest.html")
    options, inis = references.plugin_options()
    for option in options:
        assert f"cmdoption-pytest-{option.names[0].lstrip('-')}" in found
    for key in inis:
        assert f"confval-{key.name}" in found
    for fixture in references.plugin_fixtures():
        assert f"fixture-{fixture.name}" in found


def test_every_public_name_has_an_entry(html: Path) -> None:
    import importlib

    found = ids(html / "api.html")
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module_name
        ]
        assert names, module_name
        missing = [name for name in names if f"{module_name}.{name}" not in found]
        assert not missing, module_name


def test_the_changelog_is_included(html: Path) -> None:
    changes = (REPO / "CHANGES.md").read_text()
    first = re.search(r"^## (.+)$", changes, flags=re.MULTILINE)
    assert first is not None
    assert first.group(1) in (html / "changelog.html").read_text()


def test_the_build_reads_no_inventory_from_the_network() -> None:
    conf = runpy.run_path(str(REPO / "docs" / "conf.py"))
    for url, inventory in conf["intersphinx_mapping"].values():
        assert inventory is not None and Path(inventory).is_file(), url

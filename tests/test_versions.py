"""``flask complete versions`` and the version report: installed against the tested ranges."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from flask_complete.checks.versions import (
    NEWEST_TESTED,
    Package,
    bundled,
    compare,
    report_lines,
    versions_command,
)

REQUIRES = [
    "flask>=3.1,<3.2",
    "flask-login==0.6.3",
    'psycopg[binary]>=3.2,<3.4 ; extra == "postgres"',
]


def test_ranges_come_from_the_installed_metadata() -> None:
    packages = {p.name: p for p in bundled()}
    for line in metadata.requires("flask-complete") or []:
        name = line.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        assert name in packages
    assert packages["flask"].installed == metadata.version("flask")
    assert packages["flask-cors"].tested.startswith(">=6.0.1")
    assert packages["psycopg"].extra == "postgres"


def test_compare_marks_outside_and_missing() -> None:
    versions = {"flask": "3.0.3", "flask-login": "0.6.3"}
    found = {p.name: p for p in compare(REQUIRES, ["postgres"], versions.get)}
    assert found["flask"] == Package("flask", None, ">=3.1,<3.2", "3.0.3", False)
    assert found["flask"].status == "OUTSIDE"
    assert found["flask-login"].status == "ok"
    assert found["psycopg"].status == "not installed"
    assert found["psycopg"].tested == ">=3.2,<3.4"


def test_command_lists_every_bundled_package() -> None:
    result = CliRunner().invoke(versions_command)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"flask_complete {metadata.version('flask-complete')}\n")
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[2:-1]}
    for package in bundled():
        row = lines[package.name]
        assert package.tested in row
        if package.installed:
            assert package.installed in row
            assert row[-1] == "ok"


def test_report_lines_for_the_pytest_header() -> None:
    first = report_lines()[0]
    assert first.startswith(f"flask_complete {metadata.version('flask-complete')}: ")
    assert f"flask {metadata.version('flask')}" in first
    assert f"sqlalchemy {metadata.version('sqlalchemy')}" in first


def test_flask_complete_versions_runs_without_an_app(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    result = subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "complete", "versions"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "flask-sqlalchemy" in result.stdout
    assert "Traceback" not in result.stderr


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    root = Path(__file__).resolve().parents[1]
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[canonicalize_name(name)] = version
    return pins


def test_newest_tested_are_the_pins_of_constraints() -> None:
    pins = _pins()
    assert {p.name for p in bundled()} <= set(NEWEST_TESTED)
    assert {name: pins[name] for name in NEWEST_TESTED} == NEWEST_TESTED
    for package in bundled():  # and each inside its own range
        assert compare([f"{package.name}{package.tested}"], [], NEWEST_TESTED.get)[0].inside


def test_check_fails_naming_the_range_and_the_newest_tested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask_complete.checks import versions

    ok = CliRunner().invoke(versions_command, ["--check"])
    assert ok.exit_code == 0, ok.output
    assert "newest tested" in ok.output.splitlines()[1]
    real = versions.installed_version
    monkeypatch.setattr(
        versions, "installed_version", lambda n: "2.2.0" if n == "sqlalchemy" else real(n)
    )
    result = CliRunner().invoke(versions_command, ["--check"])
    assert result.exit_code == 1
    assert (
        f"sqlalchemy 2.2.0 is outside the tested range >=2.0.36,<2.2; the newest tested "
        f"release is {NEWEST_TESTED['sqlalchemy']}"
    ) in result.output
    # Without --check it only reports.
    assert CliRunner().invoke(versions_command).exit_code == 0

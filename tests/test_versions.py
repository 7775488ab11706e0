"""``flask complete versions`` and the version report: installed against the tested ranges."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from click.testing import CliRunner

from flask_complete.versions import (
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

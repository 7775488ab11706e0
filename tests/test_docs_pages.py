"""What individual docs pages claim: the retrofit's line counts, the example settings file, the
testing page's option table, the checks page's example width, ``flask shell``'s names, the
generated pytest page's option texts, and the command line page's examples and arguments."""

from __future__ import annotations

import re
import secrets
import sys
import typing as t
from pathlib import Path

import click
import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_complete import Complete

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import cli_examples  # noqa: E402
import cli_groups  # noqa: E402
import references  # noqa: E402
from test_docs_snippets import check_command, rst_blocks  # noqa: E402

WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}


def test_each_retrofit_count_is_the_diff_shown() -> None:
    """ "The retrofit is N lines" counts the added and removed lines of the diff below it."""
    page = (DOCS / "retrofit.rst").read_text()
    diffs = [b for b in rst_blocks(DOCS / "retrofit.rst") if b.lang == "diff"]
    claims = re.findall(r"retrofit\s+(?:is|changes)\s+(\w+)\s+lines:", page)
    assert len(claims) == len(diffs) >= 5, claims
    for claim, diff in zip(claims, diffs, strict=True):
        changed = [line for line in diff.text.splitlines() if line.startswith(("+", "-"))]
        count = int(claim) if claim.isdigit() else WORDS[claim]
        assert count == len(changed), (diff.where, claim, changed)


def _example_settings() -> str:
    (block,) = [b for b in rst_blocks(DOCS / "configuration.rst") if b.caption == "settings.toml"]
    return block.text


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("env", ["development", "testing", "production"])
def test_the_example_settings_file_starts_every_environment_cleanly(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, env: str
) -> None:
    (tmp_path / "settings.toml").write_text(_example_settings())
    if env == "production":
        clean_env.setenv("SECRET_KEY", secrets.token_urlsafe(48))
        clean_env.setenv("DATABASE_URL", "postgresql://notes@db.internal/notes")
        clean_env.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    app = Flask("notes", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    Complete(app, env=env, root=tmp_path)
    state = app.extensions["complete"]
    assert [p.message for p in state.settings.problems] == []
    assert app.config["AUTH_TOKEN_DAYS"] == 7
    assert state.settings.sources["AUTH_TOKEN_DAYS"] == "settings.toml [default]"


def test_the_testing_page_lists_every_option_of_the_plugin() -> None:
    page = (DOCS / "testing.rst").read_text()
    options, _ = references.plugin_options()
    for option in options:
        assert f"``{option.names[-1]}" in page, option.names


def test_the_generated_pages_name_options_as_literals_and_ini_keys_once() -> None:
    prose = references.pytest_rst() + references.settings_rst()
    for line in [line for line in prose if line.startswith("   ") and "::" not in line]:
        outside = re.sub(r"``[^`]+``|:\w+:`[^`]+`", "", line)
        # A bare "--" is typeset as an en dash.
        assert "--" not in outside, line
        assert "Ini: " not in line, line


def test_the_checks_example_fits_the_page() -> None:
    """The example is what ``check`` prints on an 80-column terminal, not cut off on the right."""
    (block,) = [b for b in rst_blocks(DOCS / "checks.rst") if "PROBLEM AND FIX" in b.text]
    lines = block.text.splitlines()
    assert max(len(line) for line in lines) <= 84, max(lines, key=len)
    assert not [line for line in lines if line.rstrip().endswith("...")]


_shelldb = SQLAlchemy()


class Notebook(_shelldb.Model):  # type: ignore[misc, name-defined]
    id: Mapped[int] = mapped_column(primary_key=True)


def test_flask_shell_names_are_the_ones_the_page_lists(tmp_path: Path) -> None:
    app = Flask("shellapp", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    Complete(app, db=_shelldb, env="testing", root=tmp_path)
    with app.app_context():
        names = app.make_shell_context()
    assert {"app", "g", "db", "Notebook"} <= set(names)
    page = (DOCS / "cli.rst").read_text()
    section = page.split("``flask shell``\n---------------\n")[1].split("\n\n.. ")[0]
    for name in ("app", "g", "db"):
        assert f"``{name}``" in section, name
    assert "every model class" in section


def _ours() -> dict[str, click.Command]:
    found = {}
    for name, group in cli_groups.groups().items():
        for path, command in cli_groups.walk(group, f"flask {name}"):
            module = getattr(command.callback, "__module__", "") or ""
            if not isinstance(command, click.Group) and module.startswith("flask_complete"):
                found[path] = command
    return found


def test_every_command_of_the_bundle_has_an_example_that_parses() -> None:
    ours = _ours()
    assert len(ours) > 25
    assert sorted(set(ours) - set(cli_examples.EXAMPLES)) == []
    for path, examples in cli_examples.EXAMPLES.items():
        for line, what in examples:
            assert what, (path, line)
            check_command(line)
            # The example runs the command it is listed under (after any VAR=value).
            command = re.sub(r"^([A-Z_]+=\S+ )*", "", line).replace("--app myapp ", "")
            assert command.startswith(path), (path, line)


def test_every_argument_of_the_bundle_says_what_it_is() -> None:
    for path, command in _ours().items():
        for param in command.params:
            if isinstance(param, click.Argument):
                key = f"{path} {param.human_readable_name}"
                assert cli_examples.ARGUMENTS.get(key), key
    lines = cli_examples.argument_lines(
        "flask complete config", [".. option:: NAME", "", "    Optional argument"]
    )
    assert lines[-1].strip().startswith("One setting to print")


def test_example_lines_are_a_console_block() -> None:
    lines = cli_examples.example_lines("flask complete config")
    assert ".. code-block:: console" in lines
    shown: list[t.Any] = [line for line in lines if line.lstrip().startswith("$ ")]
    assert len(shown) == len(cli_examples.EXAMPLES["flask complete config"])

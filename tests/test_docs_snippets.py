"""Every Python and console block of the docs and the README either runs here or is marked as
illustrative, so that a block cannot show code that no longer works.

The rules, for ``docs/*.rst`` (``.. code-block::`` and literal ``::`` blocks) and the Markdown
files (fenced blocks):

* A Python block (``python``, or a literal block that parses as Python) runs: the blocks of a
  page run in order, in one process, in an empty project folder of their own, sharing their
  names like a doctest session. ``pycon`` blocks (``>>>``) are checked with doctest there too.
* A block with a file name as its ``:caption:`` (``app.py``, ``settings.toml``) is written to that
  file of the project instead, for the blocks after it.
* A console block (``console``, ``shell-session``, and the ``$ `` lines of any other block) is
  checked: each command must exist as written (the ``flask`` groups, commands and options, make
  targets, pytest and gunicorn options, nox sessions, pip extras).
* A console block with ``:class: run`` is also run in the page's project, after the blocks above
  it, and must succeed.
* A TOML block must parse; in a settings file, every name must be a setting or resemble none.
* ``:class: illustrative`` (in Markdown: ``<!-- illustrative -->`` on the line before the fence)
  exempts a block from all of this.

:data:`CONTEXT` holds what a page's blocks take for granted and the page says in words (an ``app``
exists, a ``Notebook`` model): it runs before the page's first block.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import cli_groups  # noqa: E402

PAGES = sorted(DOCS.glob("*.rst"))
MARKDOWN = [REPO / "README.md", REPO / "CHANGES.md"]

PYTHON = {"python", "python3", "py"}
PYCON = {"pycon"}
CONSOLE = {"console", "shell-session"}
SHELL = {"bash", "sh", "shell"}
#: Programs the docs may name that are not ours to check further.
EXTERNAL = {"cd", "curl", "export", "git", "psql", "createdb", "apt-get"}

#: What a page's blocks assume and the page states in words, run before its first block.
CONTEXT = {
    # "Give Complete your user model": the app the page is about.
    "auth.rst": "from flask import Flask\napp = Flask(__name__)\n",
    # The factory example is for the Notebook model of the page's examples.
    "migrations.rst": (
        "from sqlalchemy.orm import Mapped, mapped_column\n"
        "from flask_complete import db\n"
        "class Notebook(db.Model):\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    name: Mapped[str]\n"
    ),
}


#: Test functions shown on a page that nothing runs yet: (page, function) -> why. Give such a
#: block a file name as its caption and run pytest on it (see docs/quickstart.rst), or mark it
#: illustrative; an entry that no longer matches a block fails, so the list only shrinks.
UNRUN_TESTS: dict[tuple[str, str], str] = {}


@dataclass
class Block:
    source: str
    line: int
    lang: str
    text: str
    classes: set[str] = field(default_factory=set)
    caption: str = ""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def illustrative(self) -> bool:
        return "illustrative" in self.classes

    @property
    def file(self) -> str | None:
        """The project file this block is, when its caption is a file name."""
        if re.fullmatch(r"[\w./-]+\.\w+", self.caption):
            return self.caption
        return None

    @property
    def is_python(self) -> bool:
        if self.lang in PYTHON:
            return True
        if self.lang != "literal" or self.text.lstrip().startswith(("$", ">>>")):
            return False
        try:
            ast.parse(self.text)
        except SyntaxError:
            return False
        return True

    def test_functions(self) -> list[str]:
        """The ``test_*`` functions a Python block defines (a test module, not a script)."""
        if not self.is_python:
            return []
        tree = ast.parse(self.text)
        return [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
        ]

    @property
    def is_pycon(self) -> bool:
        return self.lang in PYCON or self.text.lstrip().startswith(">>>")

    def commands(self) -> list[str]:
        """The console commands of the block: its ``$`` lines (every line of a shell script)."""
        if self.is_python or self.is_pycon or self.lang == "toml":
            return []
        found = [line[2:] for line in self.text.splitlines() if line.startswith("$ ")]
        if not found and self.lang in SHELL:
            found = [line for line in self.text.splitlines() if line.strip()]
        # A command continued with a backslash.
        return [c.replace("\\\n", " ") for c in found]


# -- finding the blocks ----------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _body(lines: list[str], start: int, outer: int) -> tuple[str, int]:
    """The indented body from ``start`` (blank lines first), dedented, and where it ends."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    body = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > outer):
        body.append(lines[i])
        i += 1
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n", i


def rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive:
            outer = len(directive.group(1))
            block = Block(path.name, i + 1, directive.group(2) or "literal", "")
            i += 1
            while i < len(lines) and (option := _OPTION.match(lines[i])):
                if option.group(1) == "class":
                    block.classes |= set(option.group(2).split())
                elif option.group(1) == "caption":
                    block.caption = option.group(2).strip()
                i += 1
            block.text, i = _body(lines, i, outer)
            found.append(block)
        elif line.rstrip().endswith("::") and not line.lstrip().startswith(".. "):
            block = Block(path.name, i + 2, "literal", "")
            block.text, i = _body(lines, i + 1, _indent(line))
            if block.text.strip():
                found.append(block)
        else:
            i += 1
    return found


def markdown_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        block = Block(path.name, start + 1, fence.group(1) or "text", "\n".join(body) + "\n")
        if start > 0 and lines[start - 1].strip() == "<!-- illustrative -->":
            block.classes.add("illustrative")
        found.append(block)
    return found


def all_blocks() -> list[Block]:
    blocks = [b for page in PAGES for b in rst_blocks(page)]
    blocks += [b for path in MARKDOWN if path.exists() for b in markdown_blocks(path)]
    return [b for b in blocks if not b.illustrative]


def test_the_block_finder_finds_what_the_pages_have() -> None:
    quickstart = rst_blocks(DOCS / "quickstart.rst")
    kinds = [(b.lang, b.file, "run" in b.classes) for b in quickstart]
    assert ("python", "app.py", False) in kinds
    assert ("console", None, True) in kinds
    retrofit = [b for b in rst_blocks(DOCS / "retrofit.rst") if b.is_python]
    assert retrofit and "def create_app" in retrofit[0].text
    readme = markdown_blocks(REPO / "README.md")
    assert any(b.lang == "python" for b in readme)
    assert any("make demo" in c for b in readme for c in b.commands())


# -- console commands ------------------------------------------------------------------------------


@functools.cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):(?!=)", (REPO / "Makefile").read_text(), re.MULTILINE))


@functools.cache
def nox_sessions() -> set[str]:
    tree = ast.parse((REPO / "noxfile.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    }


@functools.cache
def extras() -> set[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


@functools.cache
def help_options(program: str) -> set[str]:
    """The options ``program --help`` lists (pytest with our plugin loaded, gunicorn)."""
    if program == "pytest":
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    else:
        command = [str(Path(sys.executable).with_name(program))]
    result = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", result.stdout))


def _options_of(args: list[str]) -> list[str]:
    return [a.split("=")[0] for a in args if a.startswith("-") and a != "-"]


def check_click(command: click.Command, name: str, args: list[str], parent: click.Context) -> None:
    """``args`` parse for ``command`` (a group's resolve to a subcommand, recursively)."""
    ctx = click.Context(command, info_name=name, parent=parent)
    try:
        opts, rest, _ = command.make_parser(ctx).parse_args(args=list(args))
    except click.UsageError as e:
        raise AssertionError(f"{ctx.command_path}: {e}") from None
    for param in command.params:
        value = opts.get(param.name) if param.name else None
        if isinstance(param.type, click.Choice) and isinstance(value, str):
            choices = [str(c) for c in param.type.choices]
            assert value in choices, f"{ctx.command_path}: {value!r} is not one of {choices}"
    if isinstance(command, click.Group):
        if not rest:
            return
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{ctx.command_path} has no command {rest[0]!r}"
        check_click(sub, rest[0], rest[1:], ctx)
    else:
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        if not any(p.nargs < 0 for p in arguments):
            room = sum(p.nargs for p in arguments)
            assert len(rest) <= room, f"{ctx.command_path}: unexpected arguments {rest}"


@functools.cache
def app_groups() -> dict[str, click.Command]:
    """The groups of an app with every piece on (built once)."""
    return cli_groups.groups()


def check_flask(args: list[str]) -> None:
    from flask.cli import cli

    flask = click.Group("flask", params=cli.params, commands={**cli.commands, **app_groups()})
    flask.allow_interspersed_args = False
    check_click(flask, "flask", args, click.Context(click.Command("root")))


def check_command(line: str) -> None:
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)
    assert words, line
    program, args = Path(words[0]).name, words[1:]
    if program == "python" and args[:2] == ["-m", "pytest"]:
        program, args = "pytest", args[2:]
    if program == "flask":
        check_flask(args)
    elif program == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        assert set(targets) <= make_targets(), f"no make target {targets}"
    elif program in ("pytest", "gunicorn"):
        unknown = set(_options_of(args)) - help_options(program)
        assert not unknown, f"{program} has no option {sorted(unknown)}"
    elif program == "nox":
        sessions = [args[i + 1] for i, a in enumerate(args) if a in ("-s", "--session")]
        assert set(sessions) <= nox_sessions(), f"no nox session {sessions}"
    elif program == "pip":
        for requirement in args:
            for extra in re.findall(r"\[([\w,-]+)\]", requirement):
                assert set(extra.split(",")) <= extras(), f"no extra [{extra}]"
    else:
        assert program in EXTERNAL, (
            f"{program!r} is not a program these tests know: check it in "
            "tests/test_docs_snippets.py, or mark the block illustrative"
        )


@pytest.mark.slow
def test_the_command_checker_refuses_what_does_not_exist() -> None:
    check_command("FLASK_ENV=production flask --app app complete check --deploy")
    check_command(".venv/bin/flask --app example_app users create you@example.com")
    check_command("flask db downgrade --i-know-this-is-production")
    for wrong in (
        "flask complete chek",
        "flask db drop --force",
        "flask db environment develop",
        "flask db create extra",
        "make deploy",
        "pytest --reuse-database",
        'pip install "flask-complete[postgresql]"',
        "nox -s everything",
        "sudo flask run",
    ):
        with pytest.raises(AssertionError):
            check_command(wrong)


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.commands()], ids=lambda b: b.where)
def test_every_console_command_exists(block: Block) -> None:
    for command in block.commands():
        try:
            check_command(command)
        except AssertionError as e:
            raise AssertionError(f"{block.where}: `{command}`: {e}") from None


@pytest.mark.parametrize(
    "block", [b for b in all_blocks() if b.lang == "toml"], ids=lambda b: b.where
)
def test_every_toml_block_parses_and_names_settings(block: Block) -> None:
    from flask_complete.settings.schema import SECTIONS, misspelt

    data = tomllib.loads(block.text)
    if not set(data) & set(SECTIONS) or block.file == "pyproject.toml":
        return
    for section in data.values():
        for key in section:
            assert misspelt(key) is None, f"{block.where}: {key} looks like {misspelt(key)}"


# -- running the pages ---------------------------------------------------------------------------

DRIVER = r"""
import doctest, json, os, shlex, subprocess, sys, traceback
from pathlib import Path

steps = json.loads(Path(sys.argv[1]).read_text())
bin_dir = Path(sys.executable).parent
sys.path.insert(0, os.getcwd())
namespace = {"__name__": "docs_page"}
for step in steps:
    try:
        if step["kind"] == "file":
            path = Path(step["path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step["text"])
        elif step["kind"] == "python":
            exec(compile(step["text"], step["where"], "exec"), namespace)
        elif step["kind"] == "pycon":
            parser = doctest.DocTestParser()
            test = parser.get_doctest(step["text"], namespace, step["where"], None, 0)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test, out=sys.stderr.write)
            assert not runner.failures, f"{runner.failures} doctest failure(s)"
        elif step["kind"] == "run":
            for command in step["commands"]:
                words = shlex.split(command, comments=True)
                env = dict(os.environ)
                while words and "=" in words[0] and words[0].split("=")[0].isupper():
                    name, _, value = words.pop(0).partition("=")
                    env[name] = value
                program = bin_dir / words[0]
                words[0] = str(program) if program.exists() else words[0]
                done = subprocess.run(words, env=env, capture_output=True, text=True, timeout=300)
                if done.returncode != 0:
                    raise AssertionError(
                        f"`{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
                    )
    except BaseException:
        print(f"{step['where']}:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def page_steps(blocks: list[Block]) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    for block in blocks:
        base = {"where": block.where}
        if block.file:
            steps.append({**base, "kind": "file", "path": block.file, "text": block.text})
        elif block.is_pycon:
            steps.append({**base, "kind": "pycon", "text": block.text})
        elif block.is_python:
            steps.append({**base, "kind": "python", "text": block.text})
        elif "run" in block.classes:
            steps.append({**base, "kind": "run", "commands": block.commands()})
    return steps


def _runnable() -> list[tuple[str, list[dict[str, object]]]]:
    pages: dict[str, list[Block]] = {}
    for block in all_blocks():
        pages.setdefault(block.source, []).append(block)
    found = []
    for source, blocks in sorted(pages.items()):
        steps = page_steps(blocks)
        if any(step["kind"] in ("python", "pycon", "run") for step in steps):
            if source in CONTEXT:
                steps.insert(
                    0, {"where": f"CONTEXT[{source!r}]", "kind": "python", "text": CONTEXT[source]}
                )
            found.append((source, steps))
    return found


def clean_environment() -> dict[str, str]:
    """The environment of a fresh shell: nothing that picks the settings, the app or the test
    run of the suite running these tests."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_", "COMPLETE_"))
        and k not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
    }


def run_page(steps: list[dict[str, object]], tmp_path: Path) -> None:
    """Run a page's steps in a fresh process, in an empty project folder."""
    project = tmp_path / "project"
    project.mkdir()
    # The project root: settings are looked up here, never in a folder above it.
    (project / "settings.toml").touch()
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    (tmp_path / "driver.py").write_text(DRIVER)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "steps.json")],
        cwd=project,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-6000:]


RUNNABLE = _runnable()


@pytest.mark.slow
@pytest.mark.parametrize(("source", "steps"), RUNNABLE, ids=[source for source, _ in RUNNABLE])
def test_every_page_runs(source: str, steps: list[dict[str, object]], tmp_path: Path) -> None:
    run_page(steps, tmp_path)


def test_every_test_function_shown_is_run_by_pytest() -> None:
    blocks = [b for b in all_blocks() if b.test_functions() and not b.file]
    unrun = {(b.source, name): b.where for b in blocks for name in b.test_functions()}
    assert set(unrun) <= set(UNRUN_TESTS), (
        "test functions that only get defined, never run: give the block a file name as its "
        f"caption and a pytest run after it, or mark it illustrative: {unrun}"
    )
    assert set(UNRUN_TESTS) <= set(unrun), "stale UNRUN_TESTS entries"


def test_every_page_context_is_used() -> None:
    for source in CONTEXT:
        assert any(b.is_python for b in rst_blocks(DOCS / source)), source


def test_a_broken_block_fails_its_page(tmp_path: Path) -> None:
    block = Block("broken.rst", 3, "python", "from flask_complete import Compleat\n")
    with pytest.raises(AssertionError, match=r"broken\.rst:3"):
        run_page(page_steps([block]), tmp_path)


def test_a_failing_command_fails_its_page(tmp_path: Path) -> None:
    block = Block("broken.rst", 7, "console", "$ flask --app nowhere db prepare\n", {"run"})
    with pytest.raises(AssertionError, match="exited 2"):
        run_page(page_steps([block]), tmp_path)

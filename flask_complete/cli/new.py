"""``flask complete new NAME``: write a small runnable project, migrations included.

The files come from ``project_template/`` (package data, each ending in ``.tmpl``): the folder
``package`` becomes the project's package, ``gitignore`` its ``.gitignore``, and ``__project__``
in any file the package name. The first migration is written by the real ``flask db migrate``,
run on the new project against a scratch SQLite database, so that it always matches the models
(and the tables of the auth piece) of the installed release.
"""

from __future__ import annotations

import keyword
import os
import secrets
import subprocess
import sys
import tempfile
import typing as t
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

import click

from .. import __version__

if t.TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: ``--database``: the line of ``[development]`` in settings.toml and the extra of the driver.
DATABASES: dict[str, tuple[str, str]] = {
    "sqlite": ("# DATABASE_URL unset: a SQLite file in instance/", ""),
    "postgresql": ('DATABASE_URL = "postgresql://postgres@127.0.0.1/{name}"', "postgres"),
    "mysql": ('DATABASE_URL = "mysql://root@127.0.0.1/{name}"', "mysql"),
}
#: The development seeds' user: email and password.
DEMO_LOGIN = ("demo@example.com", "demo password")
#: Template names that become another name in the project.
_RENAMED = {"package": "{name}", "gitignore": ".gitignore"}
#: What the ``flask`` commands run at generation must never see from the user's shell.
_SHELL_SETTINGS = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
#: A name may not shadow one of these: the app would import the wrong thing.
_TAKEN = frozenset({"app", "flask", "flask_complete", "migrations", "tests", "test", "wsgi"})


def check_name(name: str) -> None:
    """Refuse a ``name`` that cannot be the project's package (raise ``click.BadParameter``)."""
    fix = "Use lowercase letters, digits and underscores, starting with a letter (e.g. my_blog)."
    if not (name.isascii() and name.isidentifier()):
        raise click.BadParameter(f"{name!r} is not a valid Python package name. {fix}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise click.BadParameter(f"{name!r} is a Python keyword. {fix}")
    if name.startswith("_"):
        raise click.BadParameter(f"{name!r} starts with an underscore (a private name). {fix}")
    if name in _TAKEN or name in sys.stdlib_module_names or _installed(name):
        raise click.BadParameter(
            f"{name!r} is the name of a module Python already imports (the standard library, an "
            "installed package or a name the project uses); the project's package would shadow "
            "it or be shadowed. Choose another name."
        )


def _installed(name: str) -> bool:
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return True
    # A folder without __init__.py on the path (the current one, say) is no module of its own.
    return spec is not None and spec.origin is not None


def _files(folder: Traversable, under: Path = Path()) -> t.Iterator[tuple[Path, str]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _files(entry, under / _RENAMED.get(entry.name, entry.name))
        elif entry.name.endswith(".tmpl"):
            stem = entry.name.removesuffix(".tmpl")
            yield under / _RENAMED.get(stem, stem), entry.read_text(encoding="utf-8")


def render(name: str, database: str) -> dict[Path, str]:
    """The project's files (relative path, text), without migrations and secrets."""
    line, extra = DATABASES[database]
    values = {
        "__project__": name,
        "__extras__": ",".join(e for e in ("pytest", extra) if e),
        "__version__": __version__,
        "__development_database__": line.format(name=name),
        "__demo_email__": DEMO_LOGIN[0],
        "__demo_password__": DEMO_LOGIN[1],
    }
    rendered = {}
    for path, text in _files(resources.files("flask_complete.cli") / "project_template"):
        for token, value in values.items():
            text = text.replace(token, value)
        rendered[Path(str(path).format(name=name))] = text
    return rendered


def write_project(target: Path, name: str, database: str) -> None:
    """Write the project into ``target`` (missing or empty), then its first migration."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise click.UsageError(
            f"{target} exists and is not an empty folder: flask complete new writes only into a "
            "new or empty one. Choose another NAME, or move that folder away."
        )
    for path, text in render(name, database).items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    skeleton = resources.files("flask_complete.cli") / "skeleton"
    (target / ".env.example").write_text((skeleton / "env.example").read_text())
    # Created with its mode: the key is never readable by others, not even for a moment.
    fd = os.open(target / ".secrets.toml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# Secrets: never commit this file (it is in .gitignore).\n"
            f'[default]\nSECRET_KEY = "{secrets.token_urlsafe(48)}"\n'
        )
    from ..migrations.folder import write_migrations

    write_migrations(target / "migrations")
    _first_migration(target)


def _first_migration(target: Path) -> None:
    """Run ``flask db migrate`` on the new project, against a scratch SQLite database."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLASK_") and key not in _SHELL_SETTINGS
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as scratch:
        env["FLASK_ENV"] = "development"
        env["FLASK_DATABASE_URL"] = f"sqlite:///{Path(scratch) / 'schema.sqlite3'}"
        command = [sys.executable, "-m", "flask", "db", "migrate", "-m", "users and notes"]
        done = subprocess.run(command, cwd=target, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(
            f"The project is written, but `flask db migrate` failed on it; run it in {target} "
            f"once the cause is fixed:\n{done.stderr.strip() or done.stdout.strip()}"
        )


@click.command("new")
@click.argument("name")
@click.option(
    "--database",
    type=click.Choice(list(DATABASES)),
    default="sqlite",
    show_default=True,
    help="The development database, and the driver the project depends on.",
)
def new_command(name: str, database: str) -> None:
    """Write a new project NAME: app factory, models, migration, page, API, seeds and tests."""
    try:
        check_name(name)
    except click.BadParameter as e:
        e.param_hint = "NAME"
        raise
    target = Path.cwd() / name
    write_project(target, name, database)
    click.echo(f"wrote   {name}/ (a {database} project)")
    click.echo(
        f"\nNext:\n  cd {name}\n  pip install -e .\n  flask db prepare\n"
        f"  flask run --debug    # log in as {DEMO_LOGIN[0]}, password {DEMO_LOGIN[1]!r}\n"
        "  pytest"
    )

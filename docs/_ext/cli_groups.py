"""The command groups an app gets from ``Complete(app, user_model=User)``, for sphinx-click.

The groups are taken from a real app's ``app.cli``, not imported one by one, so a group the
extension starts registering appears in :func:`groups` (and the docs test fails until the CLI
page shows it). Their commands are resolved the way ``flask`` resolves them: the groups list
some commands lazily (imported on use), and sphinx-click reads only a group's ``commands``
mapping, so :func:`resolved` hands it copies with every command filled in.

The user model lives on its own ``SQLAlchemy`` instance: importing this module leaves the
metadata of :data:`flask_complete.db` as it was.
"""

from __future__ import annotations

import copy
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_complete import Complete
from flask_complete.auth import UserMixin

_db = SQLAlchemy()


class User(UserMixin, _db.Model):  # type: ignore[misc, name-defined]
    """A user model, so that the auth piece (and ``flask users``) is wired."""


def make_app() -> Flask:
    """An app with every piece on, built in a throwaway project folder."""
    with tempfile.TemporaryDirectory() as root:
        app = Flask("docs_app", root_path=root, instance_path=str(Path(root) / "instance"))
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        Complete(app, db=_db, user_model=User, env="testing", root=root)
    return app


def groups(app: Flask | None = None) -> dict[str, click.Command]:
    """The commands flask_complete adds to ``flask``: name -> command."""
    app = app if app is not None else make_app()
    return dict(sorted(app.cli.commands.items()))


def _context(command: click.Command, name: str) -> click.Context:
    return click.Context(command, info_name=name)


def subcommands(group: click.Group, name: str) -> dict[str, click.Command]:
    """The commands of ``group`` as ``flask`` finds them (``list_commands``/``get_command``)."""
    ctx = _context(group, name)
    found = {}
    for sub in group.list_commands(ctx):
        command = group.get_command(ctx, sub)
        if command is not None and not command.hidden:
            found[sub] = command
    return found


def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """``(path, command)`` for ``command`` and everything under it: ``flask db upgrade``."""
    yield path, command
    if isinstance(command, click.Group):
        for sub, child in subcommands(command, path.rpartition(" ")[2]).items():
            yield from walk(child, f"{path} {sub}")


def resolved(command: click.Command, name: str) -> click.Command:
    """A copy of ``command`` whose groups hold every subcommand in ``commands``."""
    if not isinstance(command, click.Group):
        return command
    copied = copy.copy(command)
    children = subcommands(command, name)
    copied.commands = {sub: resolved(child, sub) for sub, child in children.items()}
    # Listing and lookup now come from the filled-in mapping, as for a plain click.Group.
    copied.list_commands = lambda ctx: sorted(copied.commands)  # type: ignore[method-assign]
    copied.get_command = lambda ctx, sub: copied.commands.get(sub)  # type: ignore[method-assign, assignment]
    return copied


def __getattr__(name: str) -> t.Any:
    """``complete``, ``db`` and ``users``, resolved, for ``.. click:: cli_groups:db``."""
    found = groups()
    if name in found:
        return resolved(found[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

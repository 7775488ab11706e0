"""The commands: this package is the ``flask complete`` group (with ``init``), and each module
beside it one command or group (``config``, ``check``, ``credentials``, ``new``, ``db`` and
``fixtures`` for ``flask db``, ``users``). They import the pieces below them, never the
extension; the pieces name them by module path, so a command's module loads when it runs.

This module is the ``flask.commands`` entry point, which the ``flask`` command imports in every
environment where flask_complete is installed, for every app: it imports only what ``flask``
has imported already, and the rest of the bundle when one of its commands runs.
"""

from __future__ import annotations

import importlib
import os
import typing as t
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

if t.TYPE_CHECKING:
    from flask import Flask

    from ..state import CompleteState


class LazyGroup(AppGroup):
    """A command group whose listed commands are imported only when one of them runs."""

    def __init__(self, *args: t.Any, lazy: dict[str, str] | None = None, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            return t.cast(click.Command, getattr(importlib.import_module(module), attr))
        return super().get_command(ctx, cmd_name)


#: Commands of ``flask complete`` defined in other modules, imported on use.
_LAZY: dict[str, str] = {
    "check": "flask_complete.cli.check:check_command",
    "config": "flask_complete.cli.config:config_command",
    "credentials": "flask_complete.cli.credentials:credentials_group",
    "new": "flask_complete.cli.new:new_command",
    "versions": "flask_complete.checks.versions:versions_command",
}

complete_group = LazyGroup("complete", help="Configure and inspect flask_complete.", lazy=_LAZY)


def _state() -> CompleteState:
    from ..state import get_state

    # `flask complete` is also an entry-point command, so it can meet an app without Complete.
    try:
        return get_state()
    except RuntimeError as e:
        raise click.UsageError(str(e)) from None


users_group = LazyGroup(
    "users",
    help="Manage users and their API tokens.",
    lazy={
        name: f"flask_complete.cli.users:{attr}"
        for name, attr in (
            ("create", "create_command"),
            ("list", "list_command"),
            ("set-password", "set_password_command"),
            ("deactivate", "deactivate_command"),
            ("activate", "activate_command"),
            ("delete", "delete_command"),
            ("token", "token_command"),
            ("tokens", "tokens_command"),
            ("revoke-token", "revoke_token_command"),
            ("sessions", "sessions_command"),
        )
    },
)


def init_app(app: Flask, state: CompleteState) -> None:
    """Register ``flask complete`` unless the app already has a command of that name, and
    ``flask users`` when auth is wired (unless the app has its own)."""
    if "complete" not in app.cli.commands:
        app.cli.add_command(complete_group)
    if "complete.auth" not in app.extensions:
        return
    if "users" not in app.cli.commands:
        app.cli.add_command(users_group)
    else:
        state.notes.append(
            "The app has its own `flask users` command, so flask_complete's is not registered."
        )


def format_option(help: str) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
    """``--format table|json``, as the ``output`` parameter."""
    return click.option(
        "--format",
        "output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help=help,
    )


_GITIGNORE = (".secrets.toml", ".env", "instance/")


@complete_group.command("init")
def init_command() -> None:
    """Write settings.toml, .secrets.toml, .env.example, .gitignore entries and migrations/."""
    import secrets
    from importlib import resources

    state = _state()
    root, why = _project_root(state)
    click.echo(f"writing to {root} ({why})")
    if not state.settings.root_given and not Path(current_app.root_path).resolve().is_relative_to(
        root
    ):
        click.echo(
            f"note: Complete(app) looks for settings.toml at and above {current_app.root_path}; "
            f"pass Complete(app, root={str(root)!r}) to read these files."
        )
    skeleton = resources.files("flask_complete.cli") / "skeleton"
    for name in ("settings.toml", ".env.example"):
        _write_once(root / name, (skeleton / name.lstrip(".")).read_text())
    secret = secrets.token_urlsafe(48)
    _write_once(
        root / ".secrets.toml",
        "# Secrets: never commit this file (it is in .gitignore).\n"
        f'[default]\nSECRET_KEY = "{secret}"\n',
        mode=0o600,
    )
    gitignore = root / ".gitignore"
    existed = gitignore.exists()
    lines = gitignore.read_text().splitlines() if existed else []
    missing = [entry for entry in _GITIGNORE if entry not in lines]
    if missing:
        with gitignore.open("a") as f:
            if lines and lines[-1] != "":
                f.write("\n")
            f.write("# flask_complete\n" + "".join(f"{entry}\n" for entry in missing))
        done = "updated" if existed else "wrote  "
        click.echo(f"{done} {gitignore.name}: added {', '.join(missing)}")
    else:
        click.echo(f"kept    {gitignore.name}: already ignores {', '.join(_GITIGNORE)}")
    if current_app.config.get("COMPLETE_MIGRATE", True) and state.db is not None:
        from ..migrations.migrate import migrations_dir, write_migrations

        if root == state.root or "migrate" in current_app.extensions:
            folder = migrations_dir()
        else:
            folder = root / str(current_app.config.get("MIGRATIONS_DIR", "migrations"))
        written = write_migrations(folder)
        click.echo(f"wrote   {folder.name}/" if written else f"kept    {folder.name}/: it exists")


def _project_root(state: CompleteState) -> tuple[Path, str]:
    """Where ``init`` writes, and why: the root the settings are read from when
    ``Complete(root=...)`` chose it or a file marks it, else the folder ``flask`` runs in (the
    app's own folder is no project root: it is the package)."""
    found = state.root
    if state.settings.root_given:
        return found, "Complete(root=...)"
    for marker, why in (
        ("settings.toml", "the folder of its settings.toml"),
        ("pyproject.toml", "the folder of its pyproject.toml"),
        (".git", "the top of its git work tree"),
    ):
        if (found / marker).exists():
            return found, why
    return Path.cwd().resolve(), "the folder flask runs in"


def _write_once(path: Path, text: str, mode: int = 0o644) -> None:
    # Created with its mode: a secrets file is never readable by others, not even for a moment.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        click.echo(f"kept    {path.name}: it exists")
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)
    click.echo(f"wrote   {path.name}")

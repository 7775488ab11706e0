"""``flask complete credentials``: edit, show and rotate ``credentials/<env>.toml.enc``.

The app is loaded with refusals collected (as ``check`` does), so that a missing or wrong key,
which stops the app, can still be fixed from here.
"""

from __future__ import annotations

import os
import tomllib
import typing as t
from pathlib import Path

import click

from ..settings import credentials as cred
from ..settings.config import ENVIRONMENTS, find_root
from ..settings.sensitive import redact
from .check import _load_app

_TEMPLATE = """\
# The {env} credentials: settings as in settings.toml, without a section. Saved encrypted
# to {file}, which is committed; the key stays out of git. For example:
#
# SECRET_KEY = "..."
# DATABASE_URL = "postgresql://user:password@db.example.com/app"
"""


class _Target(t.NamedTuple):
    root: Path
    instance: str
    env: str


def _target(ctx: click.Context, env: str | None) -> _Target:
    loaded = _load_app(ctx)
    if isinstance(loaded, list):
        # The app did not build even collecting (e.g. its factory raised): its folder is here.
        root, instance = find_root(os.getcwd()), str(Path(os.getcwd(), "instance"))
        return _Target(root, instance, env or "development")
    state = loaded.extensions.get("complete")
    root = state.root if state is not None else find_root(loaded.root_path)
    default = state.env if state is not None else "development"
    return _Target(root, loaded.instance_path, env or default)


def _key_or_fail(target: _Target) -> cred.Key:
    key = cred.find_key(target.env, target.instance)
    if key is None:
        raise cred.missing_key(target.env, target.instance)
    return key


def _read(target: _Target) -> str:
    text = cred.read(target.root, target.env, target.instance)
    if text is None:
        raise click.ClickException(
            f"There is no {cred.label(target.env)}. Write it with {cred.edit_command(target.env)}."
        )
    return text


env_option = click.option(
    "--env",
    type=click.Choice(ENVIRONMENTS),
    help="The environment whose credentials to use. Default: the app's (FLASK_ENV).",
)


@click.group("credentials")
def credentials_group() -> None:
    """Edit, show and rotate the encrypted credentials."""


@credentials_group.command("edit")
@env_option
@click.pass_context
def edit_command(ctx: click.Context, env: str | None) -> None:
    """Open $EDITOR on the decrypted credentials, then save them encrypted."""
    target = _target(ctx, env)
    path = cred.path_of(target.root, target.env)
    exists = path.is_file()
    key = _key_or_fail(target) if exists else cred.find_key(target.env, target.instance)
    text = _read(target) if exists else _TEMPLATE.format(env=target.env, file=path.name)
    while True:
        edited = click.edit(text, extension=".toml", require_save=True)
        if edited is None or edited == text:
            click.echo(f"{cred.label(target.env)} unchanged (nothing saved in the editor).")
            return
        try:
            tomllib.loads(edited)
            cred.parse(edited, target.env)
        except tomllib.TOMLDecodeError as e:
            problem = f"The edited text is not valid TOML: {e}."
        except cred.CredentialsError as e:
            problem = e.problems[0].message
        else:
            break
        click.echo(problem)
        if click.confirm("Edit it again?", default=True):
            text = edited
            continue
        click.echo(f"{cred.label(target.env)} unchanged.")
        ctx.exit(1)
    if key is None:
        key = cred.generate_key()
        saved = cred.save_key(target.instance, target.env, key)
        click.echo(
            f"wrote   {saved} (the {target.env} key, mode 600: keep a copy where the team keeps "
            f"secrets; servers read it from {cred.variables(target.env)[0]})"
        )
    cred.write(target.root, target.env, edited, key)
    click.echo(f"wrote   {cred.label(target.env)} (key {key.fingerprint}): commit it.")


@credentials_group.command("show")
@env_option
@click.option("--reveal", is_flag=True, help="Print the decrypted text, secrets included.")
@click.pass_context
def show_command(ctx: click.Context, env: str | None, reveal: bool) -> None:
    """Print the credentials with every value hidden (--reveal: as written)."""
    target = _target(ctx, env)
    text = _read(target)
    if reveal:
        click.echo(text, nl=False)
        return
    import json

    for name, value in cred.parse(text, target.env).items():
        click.echo(f"{name} = {json.dumps(redact(name, value, hidden=True))}")


@credentials_group.command("rotate")
@env_option
@click.pass_context
def rotate_command(ctx: click.Context, env: str | None) -> None:
    """Re-encrypt the credentials with a new key."""
    target = _target(ctx, env)
    text = _read(target)
    old = _key_or_fail(target)
    new = cred.generate_key()
    in_file = old.source == str(cred.key_file(target.instance, target.env))
    cred.write(target.root, target.env, text, new)
    if in_file:
        saved = cred.save_key(target.instance, target.env, new)
        click.echo(f"wrote   {saved} (the new {target.env} key)")
    else:
        click.echo(
            f"The new {target.env} key: set {old.source} to it wherever the app runs and in "
            f"the team's password store; the old key no longer opens the file:\n{new.encoded()}"
        )
    click.echo(
        f"wrote   {cred.label(target.env)} (key {old.fingerprint} -> {new.fingerprint}): commit "
        "it. Also change the secrets inside that the holders of the old key have seen."
    )

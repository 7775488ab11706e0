"""``flask db dump`` and ``flask db load``: the models' rows as data fixtures, and back."""

from __future__ import annotations

import contextlib
import sys
import typing as t
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..data import fixtures as datafixtures
from ..data.format import FORMATS, SUFFIXES, yaml_module
from ..database import binds
from ..database import environments as dbenv
from ..database.errors import database_errors
from ..settings.config import redact_url
from ..state import get_state

if t.TYPE_CHECKING:
    from flask import Flask


def _app() -> Flask:
    return t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]


@click.command("dump")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@binds.bind_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="json (default) or yaml (needs PyYAML); default: by the suffix of -o.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
@with_appcontext
def dump_command(
    models: tuple[str, ...], bind_names: tuple[str, ...], fmt: str | None, output: Path | None
) -> None:
    """Write the rows of MODEL (default: every model) as data fixtures."""
    app = _app()
    fmt = fmt or (SUFFIXES.get(output.suffix.lower(), "json") if output else "json")
    if fmt == "yaml":
        yaml_module()
    datafixtures.chosen(app, models, bind_names)  # unknown names fail before a file is made
    with contextlib.ExitStack() as stack:
        if output is None:
            stream = sys.stdout
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(output.open("w", encoding="utf-8"))
        with database_errors():
            counts = datafixtures.dump(app, stream, models, bind_names=bind_names, fmt=fmt)
    if output is not None:
        total = sum(counts.values())
        shown = ", ".join(f"{name} {n}" for name, n in counts.items())
        click.echo(f"dumped {total} record(s) to {output} ({shown})", err=True)


@click.command("load")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@binds.bind_option
@click.option("--dry-run", is_flag=True, help="Load, report what changed, then roll back.")
@click.option(
    "--i-know-this-is-production",
    "i_know",
    is_flag=True,
    help="Allow this on a production database.",
)
@with_appcontext
def load_command(
    files: tuple[str, ...], bind_names: tuple[str, ...], dry_run: bool, i_know: bool
) -> None:
    """Load data fixture files (or names under fixtures/) in one transaction per database."""
    app = _app()
    paths = [datafixtures.find(app, name, paths=True) for name in files]
    sqla = binds.sqla_of(app)
    keys = binds.select(bind_names, app)
    if not dry_run:
        for key in keys:
            url = binds.url(sqla, key)
            with database_errors(url):
                where = f" --bind {binds.label(key)}" if key is not None or len(keys) > 1 else ""
                command = f"flask db load {' '.join(files)}{where}"
                dbenv.guard(app, "load", i_know=i_know, command=command, bind=key)
    with database_errors(binds.url(sqla, keys[0]) if len(keys) == 1 else None):
        report = datafixtures.load(app, paths, bind_names=bind_names, dry_run=dry_run)
    env = get_state(app).env
    where = ", ".join(redact_url(binds.url(sqla, k)) for k in keys)
    for line in report.lines():
        click.echo(("would load " if dry_run else "") + line)
    if report.skipped:
        click.echo(f"skipped {report.skipped} record(s) of other databases (--bind)")
    verb = "dry run, rolled back" if dry_run else "loaded"
    click.echo(f"{verb}: {where} ({env})")

"""``flask complete check``: the findings of :mod:`flask_complete.checks.rules`, as a table or JSON.

The app is loaded with refusals collected, so one run lists everything, also what would stop the
app from starting.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import typing as t

import click
from flask import Flask, current_app

from ..checks.rules import run_checks
from ..settings.config import ConfigError, Problem
from . import format_option


def format_table(findings: list[Problem], width: int = 100) -> str:
    """The findings as a table: id, level, what is wrong and, below it, how to fix it."""
    if not findings:
        return ""
    id_width = max(len("ID"), *(len(f.id) for f in findings))
    text_width = max(30, width - id_width - 11)
    indent = " " * (id_width + 11)
    lines = [f"{'ID':<{id_width}}  {'LEVEL':<7}  PROBLEM AND FIX"]
    for finding in sorted(findings, key=lambda f: f.level != "error"):
        wrapped = _wrap(finding.message, text_width) or [""]
        lines.append(f"{finding.id:<{id_width}}  {finding.level:<7}  {wrapped[0]}")
        lines += [indent + line for line in wrapped[1:]]
        if finding.fix:
            lines += [indent + line for line in _wrap("fix: " + finding.fix, text_width)]
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    # Commands and URLs stay whole, so they can be copied.
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def _load_app(ctx: click.Context) -> Flask | list[Problem]:
    """The app, built with refusals collected; the problems when it cannot be built at all."""
    if current_app:
        return t.cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    from flask.cli import ScriptInfo

    from .. import state

    info = ctx.ensure_object(ScriptInfo)
    state.collecting = True
    try:
        return info.load_app()
    except ConfigError as e:
        return e.problems
    finally:
        state.collecting = False


@click.command("check")
@click.option(
    "--deploy", is_flag=True, help="Also run the production checks (always in production)."
)
@format_option("json: one object for machines.")
@click.pass_context
def check_command(ctx: click.Context, deploy: bool, output: str) -> None:
    """Check settings, secrets, database, migrations and versions; exit 1 on an error."""
    from ..state import EXTENSION_KEY

    loaded = _load_app(ctx)
    if isinstance(loaded, list):
        env, findings = "unknown", loaded
    else:
        if EXTENSION_KEY not in loaded.extensions:
            raise click.UsageError(
                "flask_complete is not initialised on this app: add Complete(app) (or "
                "complete.init_app(app) in the app factory)."
            )
        env = loaded.extensions[EXTENSION_KEY].env
        findings = run_checks(loaded, deploy=deploy)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "environment": env,
                    "errors": errors,
                    "warnings": warnings,
                    "findings": [
                        {
                            "id": f.id,
                            "level": f.level,
                            "key": f.key,
                            "message": f.message,
                            "fix": f.fix,
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        table = format_table(findings, shutil.get_terminal_size((100, 24)).columns)
        if table:
            click.echo(table)
            click.echo()
        summary = f"environment {env}: {errors} error(s), {warnings} warning(s)."
        if errors:
            click.secho(f"{summary} Fix the errors before deploying.", fg="red")
        elif warnings:
            click.secho(f"{summary} Review the warnings.", fg="yellow")
        else:
            click.secho(f"environment {env}: no problems found.", fg="green")
    if errors:
        ctx.exit(1)

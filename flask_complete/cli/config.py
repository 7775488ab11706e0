"""``flask complete config``: every effective setting, its value and where it came from.

The app is loaded with refusals collected, as for ``flask complete check``: when start-up refuses
the settings (in production, a guessable key), the values that caused it are still shown.
"""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import click
from flask import Flask, current_app

from ..problems import ConfigError
from ..settings.schema import BUNDLE, FLASK_CORS_KEYS, FLASK_LOGIN_KEYS, near
from ..settings.sensitive import redact
from . import _state, format_option
from .check import _load_app

if t.TYPE_CHECKING:
    from ..state import CompleteState

#: Values longer than this push their source to the right instead of widening every row.
VALUE_WIDTH = 40


@click.command("config")
@click.argument("name", required=False)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also the defaults of pieces that do nothing on this app (auth without a user model).",
)
@format_option("json: one object for tools, every setting, secrets hidden as in the table.")
@click.pass_context
def config_command(ctx: click.Context, name: str | None, show_all: bool, output: str) -> None:
    """Show every effective setting and where it came from."""
    loaded = _load_app(ctx)
    if isinstance(loaded, list):
        # Not even collecting could build the app (its factory raised): nothing to show.
        raise ConfigError(loaded)
    ctx.with_resource(loaded.app_context())
    state = _state()
    values = current_app.config
    refused = [p for p in state.problems if p.level == "error"]
    if refused:
        click.secho(
            "start-up refuses these settings (the errors follow the values); "
            "these are the values it read:",
            fg="red",
            err=True,
        )
    if name is None:
        _show_all(state, values, show_all, output)
    else:
        _show_one(name, state, values, output)
    if refused:
        # The exit status still says the app does not start, as `flask run` would.
        raise ConfigError(refused)


def _show_all(
    state: CompleteState, values: t.Mapping[str, t.Any], show_all: bool, output: str
) -> None:
    refused = [p for p in state.problems if p.level == "error"]
    warnings = _warnings(state, values)
    inert = _inert(current_app, state)
    if output == "json":
        settings = {
            key: {
                "value": redact(key, values[key], hidden=_sealed(key, state)),
                "source": _source(key, state),
            }
            for key in sorted(values)
        }
        document = {
            "environment": state.env,
            "root": str(state.root),
            "settings": settings,
            "warnings": warnings,
            "inert": {piece: why for piece, (why, _) in inert.items()},
            "refused": [
                {"id": p.id, "key": p.key, "message": p.message, "fix": p.fix} for p in refused
            ],
        }
        click.echo(json.dumps(document, indent=2, default=str))
        return
    hidden = set() if show_all else {k for _, keys in inert.values() for k in keys}
    rows = []
    for key in sorted(values):
        source = _source(key, state)
        if not (key in hidden and _is_default(source)):
            rows.append((key, _show(key, values[key], _sealed(key, state)), source))
    click.echo(f"environment: {state.env}   root: {state.root}")
    click.echo("\n".join(_table(rows)))
    if inert and not show_all:
        pieces = " and ".join(f"{piece} ({why})" for piece, (why, _) in inert.items())
        click.echo(
            f"note: the defaults of {pieces} are not listed: they do nothing on this app. "
            "`flask complete config --all` lists them."
        )
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def _show_one(name: str, state: CompleteState, values: t.Mapping[str, t.Any], output: str) -> None:
    key = "SQLALCHEMY_DATABASE_URI" if name.upper() == "DATABASE_URL" else name.upper()
    if key not in values:
        guess = near(name.upper(), [*values, "DATABASE_URL"])
        maybe = f"; did you mean {guess}?" if guess else "."
        raise click.UsageError(
            f"No setting named {name!r}{maybe} Run `flask complete config` to list them."
        )
    if output == "json":
        one = {"key": key, "value": redact(key, values[key], hidden=_sealed(key, state))}
        click.echo(json.dumps({**one, "source": _source(key, state)}, default=str))
    else:
        click.echo(_show(key, values[key], _sealed(key, state)))


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    key_width = max(len("SETTING"), *(len(key) for key, _, _ in rows))
    value_width = min(VALUE_WIDTH, max(len("VALUE"), *(len(value) for _, value, _ in rows)))
    lines = [f"{'SETTING':<{key_width}}  {'VALUE':<{value_width}}  SOURCE"]
    lines += [f"{k:<{key_width}}  {v:<{value_width}}  [{s}]" for k, v, s in rows]
    return lines


def _show(key: str, value: t.Any, hidden: bool = False) -> str:
    """``value`` redacted, as one cell that reads back as what it is: a string that would look
    empty, padded, split or like another type (``""``, ``"5"``, ``"true"``) is quoted."""
    shown = redact(key, value, hidden=hidden)
    if isinstance(shown, str):
        return shown if _plain(shown) else json.dumps(shown)
    if isinstance(shown, dict | list | bool | int | float) or shown is None:
        return json.dumps(shown, default=str)
    return str(shown)


def _plain(text: str) -> bool:
    if not text or text != text.strip() or not text.isprintable():
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _is_default(source: str) -> bool:
    """Whether a value comes from a default, not from anything the user wrote."""
    if source in ("flask default", "Flask-SQLAlchemy default"):
        return True
    return source.startswith("flask_complete") and " over " not in source


def _inert(app: Flask, state: CompleteState) -> dict[str, tuple[str, frozenset[str]]]:
    """Each piece that does nothing on ``app``: why, and the settings only it reads. Its switches
    (``COMPLETE_AUTH``, ``CORS_ORIGINS``) stay listed, and so does ``CSRF_PROTECT``, which also
    guards an app's own login."""
    config = app.config
    found: dict[str, tuple[str, frozenset[str]]] = {}
    from ..auth.state import STATE_KEY

    if STATE_KEY not in app.extensions:
        why = (
            "COMPLETE_AUTH = false"
            if not config.get("COMPLETE_AUTH", True)
            else "no user_model: Complete(app, user_model=User) wires it"
        )
        keys = {k for k in BUNDLE if k.startswith("AUTH_") and k != "AUTH_TRUSTED_ORIGINS"}
        if getattr(app, "login_manager", None) is None:
            keys |= FLASK_LOGIN_KEYS
        found["auth"] = why, frozenset(keys)
    cors_keys = FLASK_CORS_KEYS - {"CORS_ORIGINS"}
    if not config.get("COMPLETE_CORS", True):
        found["cors"] = "COMPLETE_CORS = false", cors_keys
    else:
        from ..web.cors import options

        kwargs, problems = options(config)
        if not kwargs and not problems:
            found["cors"] = "CORS_ORIGINS is empty", cors_keys
    if not config.get("COMPLETE_DATABASE", True):
        keys = {k for k in BUNDLE if k.startswith("DATABASE_")} | {"SQLITE_BUSY_TIMEOUT"}
        found["database"] = "COMPLETE_DATABASE = false", frozenset(keys)
    if not config.get("COMPLETE_MIGRATE", True) or state.db is None:
        why = "no database" if config.get("COMPLETE_MIGRATE", True) else "COMPLETE_MIGRATE = false"
        found["migrations"] = why, frozenset({"MIGRATIONS_DIR", "MODELS"})
    return found


def _sealed(key: str, state: CompleteState) -> bool:
    """Whether ``key`` came from the encrypted credentials: shown hidden, whatever its name."""
    return state.settings.sources.get(key, "").startswith("credentials/")


def _source(key: str, state: CompleteState) -> str:
    """Where the value of ``key`` came from, as far as flask_complete can tell."""
    if key == "DEBUG":
        from flask.cli import ScriptInfo
        from flask.helpers import get_debug_flag

        ctx = click.get_current_context(silent=True)
        info = ctx.find_object(ScriptInfo) if ctx is not None else None
        # Loading the app, the flask command sets DEBUG from FLASK_DEBUG (or --debug) over
        # every settings layer.
        if info is not None and info.set_debug_flag and current_app.debug == get_debug_flag():
            if "FLASK_DEBUG" not in os.environ:
                return "flask command (FLASK_DEBUG not set: off)"
            loaded = state.settings.flask_dotenv.get("FLASK_DEBUG")
            return "env FLASK_DEBUG" + (
                f" (from {Path(loaded).name}, loaded by flask)" if loaded else ""
            )
    return state.settings.sources.get(key, "flask default")


def _warnings(state: CompleteState, values: t.Mapping[str, t.Any]) -> list[str]:
    found = [
        f"{p.message} {p.fix} [{p.id}]" for p in state.settings.problems if p.level == "warning"
    ]
    for key, where in sorted(state.settings.shadowed.items()):
        found.append(
            f"{key} is set in code, which shadows {where}. Delete it from code to use the file."
        )
    for key, before in state.init_values.items():
        if values.get(key) != before:
            found.append(
                f"{key} changed after Complete(app) and has no effect: it is read at init. "
                "Set it before the call (or in settings.toml)."
            )
    found.extend(state.notes)
    return found

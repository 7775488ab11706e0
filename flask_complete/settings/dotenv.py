"""What the ``flask`` command loaded from ``.flaskenv`` and ``.env`` into the environment.

With python-dotenv installed, Flask's CLI exports those files before the app exists, so their lines
look like environment variables. ``.env`` is for development: outside it, a value whose only source
is such a file is no setting, and :mod:`flask_complete.settings.config` ignores or refuses it.
"""

from __future__ import annotations

import functools
import os
import typing as t
from pathlib import Path

from ..problems import Problem

#: Settings a development ``.env`` must not give another environment: refused, not ignored.
REFUSED = ("SECRET_KEY", "DATABASE_URL", "SQLALCHEMY_BINDS")


def flask_dotenv(environ: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (default: ``os.environ``) that the ``flask`` command set from
    ``.flaskenv`` or ``.env`` before the app existed: name -> file.

    Flask's CLI (with python-dotenv installed) loads the files found upward from the working
    directory, setting only variables not already set. A variable counts as loaded when it has
    the file's value and was absent from the environment the process started with (read from
    ``/proc/self/environ``). Where that is unknown, or the process inherited its environment
    from a ``flask`` process (the reloader's child), every variable with the file's value
    counts: a real variable equal to the file's line is then treated as loaded too.
    """
    environ = os.environ if environ is None else environ
    if not environ.get("FLASK_RUN_FROM_CLI"):
        return {}
    return dotenv_origins(environ, _flask_dotenv_files(), _started_names())


def dotenv_origins(
    environ: t.Mapping[str, str],
    files: list[tuple[str, dict[str, str]]],
    started: t.Container[str] | None,
) -> dict[str, str]:
    """Which variables of ``environ`` came from ``files`` (path and values; a later file wins,
    as in Flask): those equal to the file's value and not in ``started``, the names the process
    started with (``None``: unknown, so every equal value counts)."""
    merged: dict[str, tuple[str, str]] = {}
    for path, values in files:
        merged.update({name: (path, value) for name, value in values.items()})
    return {
        name: path
        for name, (path, value) in merged.items()
        if environ.get(name) in (value, _as_flask_writes(name, value))
        and (started is None or name not in started)
    }


def _as_flask_writes(name: str, value: str) -> str | None:
    """The value the ``flask`` command writes back for ``name``: its ``--debug`` option reads
    ``FLASK_DEBUG`` as a boolean and sets it to ``1`` or ``0``; other names stay as read."""
    if name != "FLASK_DEBUG":
        return None
    import click

    try:
        return "1" if click.BOOL.convert(value, None, None) else "0"
    except click.BadParameter:
        return None  # flask refuses such a value and never starts


def file_value(name: str, path: str) -> str | None:
    """The line for ``name`` in the dotenv file at ``path``, as written (before Flask's
    rewrite), or ``None``."""
    try:
        import dotenv
    except ImportError:
        return None
    return dotenv.dotenv_values(path, encoding="utf-8").get(name)


def _flask_dotenv_files() -> list[tuple[str, dict[str, str]]]:
    """The files Flask's ``load_dotenv`` reads, read as it reads them (python-dotenv)."""
    try:
        import dotenv
    except ImportError:
        return []  # Flask loads nothing without python-dotenv
    from flask.helpers import get_load_dotenv

    if not get_load_dotenv():  # FLASK_SKIP_DOTENV=1
        return []
    files = []
    for name in (".flaskenv", ".env"):
        if path := dotenv.find_dotenv(name, usecwd=True):
            values = dotenv.dotenv_values(path, encoding="utf-8")
            files.append((path, {k: v for k, v in values.items() if v is not None}))
    return files


@functools.cache
def _started_names() -> frozenset[str] | None:
    """The names of the environment this process started with; ``None`` when unknown."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    names = frozenset(os.fsdecode(item.partition(b"=")[0]) for item in raw.split(b"\0") if item)
    # Started by a flask process (the reloader's child): what it loaded is in our start.
    return None if "FLASK_RUN_FROM_CLI" in names else names


def dotenv_problem(
    name: str, value: str, path: str, env: str, key: str | None, set_by: str | None = None
) -> Problem | None:
    """What the variable ``name`` (setting ``key``, if any), which the flask command loaded from
    ``path``, means outside development: an error for debug, the secret key and database URLs
    (the app must not run on development ones) unless a settings file (``set_by``) sets them for
    this environment, a warning that any other line is ignored."""
    file = Path(path).name
    where = (
        f"{path}, which the flask command loaded; a {file} file is for development and this "
        f"app runs in {env}"
    )
    skip = f"or run with FLASK_SKIP_DOTENV=1 so that flask reads no {file}"
    if name == "FLASK_DEBUG":
        from flask.helpers import get_debug_flag

        if not get_debug_flag():
            return None
        return Problem(
            "config.dotenv",
            "DEBUG",
            f"Debug mode is on from FLASK_DEBUG={file_value(name, path) or value} in {where}.",
            f"Remove FLASK_DEBUG from {file} on this machine, {skip}.",
        )
    if key is None:
        return None
    top = key.split("__")[0].upper()
    top = "DATABASE_URL" if top == "SQLALCHEMY_DATABASE_URI" else top
    if top in REFUSED and set_by is None:
        return Problem(
            "config.dotenv",
            top,
            f"{top} is set only by {name} in {where}.",
            f"Set {top} in the real environment or in .secrets.toml and delete it from {file} "
            f"on this machine, {skip}.",
        )
    used = f"the value from {set_by} is used" if set_by else "it is not a setting here"
    return Problem(
        "config.dotenv",
        top,
        f"{name} in {path} is ignored: the flask command loaded it, and {file} is read in "
        f"development only (this app runs in {env}); {used}.",
        f"Set it in the real environment or in settings.toml [{env}]; FLASK_SKIP_DOTENV=1 "
        f"stops flask loading {file}.",
        level="warning",
    )

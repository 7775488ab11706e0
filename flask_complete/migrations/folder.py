"""Which migrations folder an app uses, whether it can be used, and writing it from our template.

One answer for every ``flask db`` command, the migration helpers and the pytest plugin, whichever
folder ``flask`` or ``pytest`` starts in: the app's own ``Migrate(directory=...)`` wins, then
``MIGRATIONS_DIR``. A folder that exists but lacks what Alembic needs is an error naming it,
never a reason to build the schema with ``create_all``. Imports the state only (and Alembic when
writing a folder).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import typing as t
import weakref
from importlib import resources
from pathlib import Path

import click
from flask import current_app

from ..state import get_state

if t.TYPE_CHECKING:
    from flask import Flask

#: Flask-Migrate's default folder: an app's ``Migrate`` with it chose no folder.
MIGRATE_DEFAULT = "migrations"
#: What ``flask db init`` writes, and every ``flask db`` command needs.
FOLDER_FILES = ("env.py", "alembic.ini", "script.py.mako")
#: Our ``env.py`` template, a package folder of flask_complete.
TEMPLATE = "template"
#: Apps whose folder conflict was logged.
_conflicts: weakref.WeakSet[Flask] = weakref.WeakSet()
log = logging.getLogger("flask_complete.migrations")


def migrations_dir(app: Flask | None = None) -> Path:
    """The migrations folder of ``app`` (default: the current app), whether it exists or not;
    :func:`usable_migrations` checks it. See :func:`locate` for which folder."""
    return locate(app).path


class Folder(t.NamedTuple):
    """A migrations folder and what chose it (for messages)."""

    path: Path
    source: str


def locate(app: Flask | None = None) -> Folder:
    """The migrations folder of ``app`` (default: the current app), and what chose it.

    The code the app wrote wins: the folder of its own ``Migrate(directory=...)``; then the
    ``MIGRATIONS_DIR`` setting, relative to the project root; then the folder of an app's
    ``Migrate`` left at Flask-Migrate's default (``migrations``); else ``MIGRATIONS_DIR``'s
    default. A ``Migrate`` folder that conflicts with a ``MIGRATIONS_DIR`` the user set is
    logged once per app. A relative ``Migrate`` folder is found wherever the command runs
    (see :func:`_find`).
    """
    app = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
    state = get_state(app)
    setting = Path(str(app.config.get("MIGRATIONS_DIR") or "migrations"))
    source = state.settings.sources.get("MIGRATIONS_DIR", "flask_complete")
    chosen = not source.startswith("flask_complete")
    by_setting = Folder(state.root / setting, f"MIGRATIONS_DIR, from {source}")
    found = app.extensions.get("migrate")
    if found is None or (found.directory == MIGRATE_DEFAULT and chosen):
        return by_setting
    folder = Folder(_find(app, Path(found.directory)), f"Migrate(directory={found.directory!r})")
    if chosen and _same(folder.path) != _same(by_setting.path) and app not in _conflicts:
        _conflicts.add(app)
        log.warning(
            "The app's %s uses the migrations folder %s; %s (%s) is not used: the app's code "
            "wins. Delete MIGRATIONS_DIR from %s, or make the two name the same folder.",
            folder.source,
            folder.path,
            by_setting.source,
            by_setting.path,
            source.split(" [")[0],
        )
    return folder


def _same(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _find(app: Flask, folder: Path) -> Path:
    """Where a ``Migrate`` folder is. Flask-Migrate reads a relative one against the working
    directory, so it is looked for under the project root, the app's ``root_path`` and each
    folder above it up to the root (``src/migrations`` beside ``src/myapp``), then the working
    directory: the first complete one, else the first that exists (to report what it lacks).
    Without one, ``flask db init`` writes it under the working directory when that is one of
    those folders (as Flask-Migrate does), else under the project root: found from anywhere."""
    if folder.is_absolute():
        return folder
    root = get_state(app).root
    chain = [Path(app.root_path).resolve()]
    chain += chain[0].parents
    bases = [root, *(chain[: chain.index(root) + 1] if root in chain else chain[:2])]
    cwd = Path.cwd()
    candidates = list(dict.fromkeys(base / folder for base in (*bases, cwd)))
    for candidate in candidates:
        if not _lacks(candidate):
            return candidate
    existing = next((c for c in candidates if os.path.lexists(c)), None)
    return existing or (cwd if cwd in bases else root) / folder


def _lacks(folder: Path) -> list[str]:
    """What ``folder`` lacks of :data:`FOLDER_FILES` (each one missing or unreadable)."""
    lacking = []
    for name in FOLDER_FILES:
        try:
            with (folder / name).open("rb") as f:
                f.read(1)
        except OSError:
            lacking.append(name)
    return lacking


class MigrationsFolderError(click.ClickException):
    """A migrations folder that is missing, or exists and cannot be used."""


def check_folder(folder: Path, source: str = "the -d option") -> Path:
    """``folder`` when every command can use it; else an error naming it, what it lacks and
    the fix."""
    if not os.path.lexists(folder):
        raise MigrationsFolderError(
            f"No migrations folder at {folder} ({source}). Create it with `flask complete init` "
            '(or `flask db init`), then `flask db migrate -m "initial"`.'
        )
    if not folder.is_dir():
        raise MigrationsFolderError(
            f"The migrations folder {folder} ({source}) is not a folder. Move it away, or point "
            "MIGRATIONS_DIR (settings.toml) or Migrate(directory=...) at the folder."
        )
    lacking = _lacks(folder)
    if lacking:
        missing = [n for n in lacking if not os.path.lexists(folder / n)]
        unreadable = [n for n in lacking if n not in missing]
        what = "; ".join(
            part
            for part in (
                f"has no {', '.join(missing)}" if missing else "",
                f"cannot read {', '.join(unreadable)}" if unreadable else "",
            )
            if part
        )
        raise MigrationsFolderError(
            f"The migrations folder {folder} ({source}) {what}, so its migrations cannot run "
            "(nothing falls back to create_all). Run `flask db init` to add the missing files "
            "(it keeps those there), make them readable, or point MIGRATIONS_DIR "
            "(settings.toml) or Migrate(directory=...) at the folder that has them."
        )
    return folder


def usable_migrations(app: Flask) -> Path | None:
    """The migrations folder of ``app``; ``None`` when there is none (the schema is built with
    ``create_all``); a :class:`MigrationsFolderError` when one exists but cannot be used."""
    folder = locate(app)
    if not os.path.lexists(folder.path):
        return None
    return check_folder(*folder)


def write_migrations(directory: Path, multidb: bool = False) -> bool:
    """Create a migrations folder from our template (with ``multidb``, the one for several
    databases); in a folder that exists, add only the files of :data:`FOLDER_FILES` (and
    ``versions/``) it lacks, never replacing one. ``False`` when it lacks none."""
    if os.path.lexists(directory) and not directory.is_dir():
        raise click.ClickException(
            f"{directory} is not a folder: move it away, or point MIGRATIONS_DIR (settings.toml)"
            " or Migrate(directory=...) at another path."
        )
    present = directory.is_dir() and any(directory.iterdir())
    if present and not _lacks(directory) and (directory / "versions").is_dir():
        return False
    from alembic import command
    from flask_migrate import Config as MigrateConfig

    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "migrations" if present else directory
        template_root = str(resources.files("flask_complete.migrations"))
        config = MigrateConfig(template_directory=template_root)
        config.set_main_option("script_location", str(fresh))
        config.config_file_name = str(fresh / "alembic.ini")
        with contextlib.redirect_stdout(io.StringIO()):
            # Alembic's messages ("Please edit ... alembic.ini") do not apply here.
            command.init(config, str(fresh), template=TEMPLATE)
        if multidb:
            own = resources.files("flask_complete.migrations") / TEMPLATE / "multidb"
            for name in ("env.py", "script.py.mako"):
                (fresh / name).write_text((own / name).read_text())
        if present:
            for path in fresh.iterdir():
                target = directory / path.name
                if not os.path.lexists(target):
                    shutil.move(path, target)
    return True

"""Migrations across databases: which databases a migrations folder covers, and the drift check
(``flask db check``) on each of them.

A folder made from the single-database template (ours, or Flask-Migrate's ``flask``) migrates
the default database; one made from a multi-database template (``flask db init --multidb``, or
Flask-Migrate's ``flask-multidb``) migrates every database of the app, each with its own
``alembic_version``. The other binds of a single-database folder are built with ``create_all``.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from .folder import usable_migrations
from .migrate import alembic_config, current_revisions, ensure_migrate

if t.TYPE_CHECKING:
    from flask import Flask


def is_multidb(folder: Path) -> bool:
    """Whether the ``env.py`` in ``folder`` migrates several databases (it passes each
    revision an ``engine_name``, as Alembic's and Flask-Migrate's multi-database templates do)."""
    env = folder / "env.py"
    return env.is_file() and "engine_name" in env.read_text(encoding="utf-8")


def covered(app: Flask, directory: str | Path | None = None) -> list[str | None]:
    """The databases (bind keys, ``None`` for the default one) the migrations folder of ``app``
    migrates; empty without a folder, an error for one that cannot be used."""
    from ..database import binds

    folder = Path(directory) if directory is not None else usable_migrations(app)
    if folder is None or not (folder / "env.py").is_file():
        return []
    keys = binds.keys(app)
    if is_multidb(folder):
        return keys
    return [None] if None in keys else []


def check(app: Flask, directory: str | None = None) -> str | None:
    """What differs between the databases, the migrations and the models, or ``None``.

    Like ``alembic check`` (unapplied migrations, then autogenerate's differences) on every
    database the migrations cover, with each difference named (database, table, column, what
    changed).
    """
    from alembic import autogenerate
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    from ..database.binds import label

    with app.app_context():
        config = (
            alembic_config(app) if directory is None else ensure_migrate(app).get_config(directory)
        )
        script = ScriptDirectory.from_config(config)
        heads = set(script.get_heads())
        keys = covered(app, directory)
        several = len(keys) > 1 or keys != [None]
        for key in keys:
            current = current_revisions(app, key)
            if current != heads:
                which = f"the database {label(key)!r}" if several else "the database"
                return (
                    f"{which} is at {', '.join(sorted(current)) or 'no revision'}, the "
                    f"migrations' head is {', '.join(sorted(heads))}. Run `flask db upgrade`."
                )
        context = autogenerate.RevisionContext(
            config,
            script,
            {
                "message": None,
                "autogenerate": True,
                "sql": False,
                "head": "head",
                "splice": False,
                "branch_label": None,
                "version_path": None,
                "rev_id": None,
                "depends_on": None,
            },
        )

        def collect(rev: t.Any, migration_context: t.Any) -> list[t.Any]:
            context.run_autogenerate(rev, migration_context)
            return []

        with EnvironmentContext(
            config,
            script,
            fn=collect,
            as_sql=False,
            template_args=context.template_args,
            revision_context=context,
        ):
            script.run_env()
        lines: list[str] = []
        for ops in context.generated_revisions[-1].upgrade_ops_list:
            name = str(ops.upgrade_token).removesuffix("_upgrades")
            prefix = f"[{name or 'default'}] " if several else ""
            lines.extend(prefix + describe_diff(d) for d in ops.as_diffs())
    if not lines:
        return None
    return (
        "the models and the database differ:\n"
        + "".join(f"  - {line}\n" for line in lines)
        + 'Run `flask db migrate -m "what changed"`, review the new file, then `flask db upgrade`.'
    )


def _show(value: t.Any) -> str:
    if getattr(value, "enums", None) is not None:
        return f"enum({', '.join(value.enums)})"
    arg = getattr(value, "arg", value)
    if arg is None:
        return "none"
    text = getattr(arg, "text", None)
    return str(text if text is not None else arg)


def describe_diff(diff: t.Any) -> str:
    """One line for one Alembic autogenerate difference."""
    if isinstance(diff, list):
        return "; ".join(describe_diff(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        where = (
            "in the models, not the database"
            if kind == "add_table"
            else ("in the database, not the models")
        )
        return f"table {diff[1].name}: {where}"
    if kind in ("add_column", "remove_column"):
        column = diff[3]
        where = (
            "in the models, not the database"
            if kind == "add_column"
            else ("in the database, not the models")
        )
        return f"column {diff[2]}.{column.name} ({column.type}): {where}"
    if kind == "add_enum_values":
        _, table, column, name, values = diff
        return f"column {table}.{column}: enum {name} lacks {', '.join(values)} in the database"
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = diff
        what = kind.removeprefix("modify_")
        return (
            f"column {table}.{column}: {what} is {_show(old)} in the database, "
            f"{_show(new)} in the models"
        )
    if kind in (
        "add_index",
        "remove_index",
        "add_constraint",
        "remove_constraint",
        "add_fk",
        "remove_fk",
    ):
        obj = diff[1]
        label = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[
            kind.partition("_")[2]
        ]
        where = (
            "in the models, not the database"
            if kind.startswith("add")
            else ("in the database, not the models")
        )
        table = getattr(getattr(obj, "table", None), "name", "?")
        return f"{label} {obj.name} on {table}: {where}"
    return repr(diff)

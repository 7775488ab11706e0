"""The public API survives the package's layout: every exported name, the entry points, what
seed files import, and ``env.py`` files written by the released template (0.1.0), single and
multi-database, which import ``flask_complete.migrations`` beside ``migration_env``."""

from __future__ import annotations

import importlib
import shutil
import typing as t
from importlib import metadata
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from dbapps import Apps, apps, run
from test_binds import BindApps

SHAPES = Path(__file__).parent / "shapes" / "released_env"

#: Each public module's ``__all__`` as released: a name may be added, never dropped.
PUBLIC = {
    "flask_complete": {
        "Complete",
        "ConfigError",
        "FlaskCompleteDeprecationWarning",
        "SQLAlchemy",
        "__version__",
        "db",
    },
    "flask_complete.api": {
        "DATABASE_UNAVAILABLE",
        "MAX_JSON_BYTES",
        "MAX_JSON_DEPTH",
        "RETRY_AFTER",
        "BigIdConverter",
        "IdConverter",
        "clean_text",
        "committed",
        "database_error",
        "error_response",
        "fits",
        "init_app",
        "json_body",
        "json_errors",
        "read_body",
        "text",
        "too_deep",
        "unavailable",
        "under_prefix",
    },
    "flask_complete.auth": {
        "ApiTokenMixin",
        "PasswordError",
        "UserMixin",
        "admin_required",
        "csrf_exempt",
        "init_app",
        "login_required",
        "role_required",
    },
    "flask_complete.factories": {"ModelFactory", "current_session"},
    "flask_complete.testing": {
        "DatabaseBlocked",
        "DatabaseRefused",
        "LiveServer",
        "SettingsOverride",
        "TestDatabase",
        "TestDatabases",
        "check_migrations",
        "count_queries",
        "emptied_after",
        "isolated",
        "load_app",
        "test_client",
    },
}

#: What files written for users import: ``env.py`` (both templates) and seed files.
USED_BY_USER_FILES = {
    "flask_complete.migrations": ("bound_url", "connect", "import_models"),
    "flask_complete.migration_env": (
        "check_foreign_keys",
        "configure_options",
        "connections",
        "databases",
        "import_models",
        "metadata_of",
        "sqlite_safety",
    ),
    "flask_complete.seeds": ("get_or_create", "progress"),
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_imports(module: str) -> None:
    imported = importlib.import_module(module)
    missing = PUBLIC[module] - set(imported.__all__)
    assert not missing, f"{module}.__all__ lost {sorted(missing)}"
    for name in imported.__all__:
        assert getattr(imported, name) is not None, f"{module}.{name}"


@pytest.mark.parametrize("module", sorted(USED_BY_USER_FILES))
def test_what_user_files_import_is_there(module: str) -> None:
    imported = importlib.import_module(module)
    for name in USED_BY_USER_FILES[module]:
        assert callable(getattr(imported, name)), f"{module}.{name}"


def test_the_entry_points_load() -> None:
    (plugin,) = metadata.entry_points(group="pytest11", name="flask_complete")
    assert hasattr(plugin.load(), "pytest_addoption")
    (command,) = metadata.entry_points(group="flask.commands", name="complete")
    group = command.load()
    assert isinstance(group, click.Group)
    assert {"check", "config", "credentials", "init", "new", "versions"} <= set(
        group.list_commands(click.Context(group))
    )


def test_the_db_is_the_sqlalchemy_instance_after_every_subpackage_is_imported() -> None:
    # flask_complete.database is a subpackage; flask_complete.db stays the SQLAlchemy instance.
    importlib.import_module("flask_complete.database.engines")
    from flask_sqlalchemy import SQLAlchemy

    from flask_complete import db

    assert isinstance(db, SQLAlchemy)


def test_a_released_env_py_migrates(apps: Apps, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    app = apps.make(url)
    assert run(app, "db", "init").exit_code == 0
    shutil.copyfile(SHAPES / "env.py", tmp_path / "migrations" / "env.py")
    result = run(app, "db", "migrate", "-m", "first")
    assert result.exit_code == 0, result.output
    result = run(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    tables = sa.inspect(sa.create_engine(url)).get_table_names()
    assert {"alembic_version", "team", "member"} <= set(tables), tables


def test_a_released_multidb_env_py_migrates(tmp_path: Path) -> None:
    built = BindApps(tmp_path)
    try:
        urls = {name: f"sqlite:///{tmp_path / f'{name}.sqlite3'}" for name in ("main", "more")}
        app = built.make({"analytics": urls["more"]}, default=urls["main"])
        assert run(app, "db", "init", "--multidb").exit_code == 0
        shutil.copyfile(SHAPES / "multidb_env.py", tmp_path / "migrations" / "env.py")
        for command in (("migrate", "-m", "first"), ("upgrade",)):
            result = run(app, "db", *command)
            assert result.exit_code == 0, result.output
        found: dict[str, t.Any] = {
            name: set(sa.inspect(sa.create_engine(url)).get_table_names())
            for name, url in urls.items()
        }
        assert "alembic_version" in found["main"] and "alembic_version" in found["more"]
        assert found["main"] - {"alembic_version", "flask_complete_metadata"}
        assert found["more"] - {"alembic_version", "flask_complete_metadata"}
    finally:
        built.close()


__all__ = ["apps"]

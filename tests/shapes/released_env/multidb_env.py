"""How `flask db ...` runs Alembic for a flask_complete app with several databases (template
version 2, multiple databases).

Like Flask-Migrate's multi-database template: one chain of revisions, each with an
``upgrade_<bind>()`` / ``downgrade_<bind>()`` pair per database (``upgrade_()`` for the default
one); every database keeps its own ``alembic_version``. Everything comes from the Flask app: the
engines (``db.engines``), each bind's models' metadata (after importing the ``MODELS`` modules)
and the comparison options; SQLite databases are migrated in batch mode, in one transaction with
foreign keys checked before the commit. All databases are migrated in one transaction each,
committed together at the end. ``-x binds=analytics,default`` limits a run to some databases.
Edit freely.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from flask_complete import migration_env, migrations

config = context.config
if config.config_file_name and not logging.getLogger().handlers:
    # Configure logging only when neither the app nor a test run did: theirs wins.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

migrations.import_models(current_app)
db = current_app.extensions["migrate"].db
#: Bind key -> the name in revision files ("" for the default database).
databases = migration_env.databases(context, current_app)


def run_migrations_offline() -> None:
    """Write the SQL of each database to standard output (``flask db upgrade --sql``)."""
    for key, name in databases.items():
        metadata = migration_env.metadata_of(db, key)
        context.configure(
            url=migrations.bound_url(db, key).render_as_string(hide_password=False),
            target_metadata=metadata,
            literal_binds=True,
            upgrade_token=f"{name}_upgrades",
            downgrade_token=f"{name}_downgrades",
            **migration_env.configure_options(context, current_app, metadata, len(databases)),
        )
        with context.begin_transaction():
            context.run_migrations(engine_name=name)


def run_migrations_online() -> None:
    """Run the migrations on every database, committing all of them only when all succeed."""
    with migration_env.connections(db, databases) as connections:
        for key, (connection, extra) in connections.items():
            name = databases[key]
            metadata = migration_env.metadata_of(db, key)
            options = migration_env.configure_options(
                context, current_app, metadata, len(databases)
            )
            context.configure(
                connection=connection,
                target_metadata=metadata,
                upgrade_token=f"{name}_upgrades",
                downgrade_token=f"{name}_downgrades",
                **(options | extra),
            )
            context.run_migrations(engine_name=name)
            migration_env.check_foreign_keys(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

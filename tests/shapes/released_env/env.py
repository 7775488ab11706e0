"""How `flask db ...` runs Alembic for a flask_complete app (template version 2).

Everything comes from the Flask app: the engine (``db.engines[None]``), the models' metadata (after
importing the modules listed in the ``MODELS`` setting) and the comparison options. The helpers
in :mod:`flask_complete.migration_env` add the drop guard (autogenerate never drops a table no
model declares unless told to) and drop PostgreSQL enum types on downgrade. Edit freely.
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
target_metadata = db.metadatas[None]
options = migration_env.configure_options(context, current_app, target_metadata)


def run_migrations_offline() -> None:
    """Write the SQL to standard output (``flask db upgrade --sql``)."""
    context.configure(
        url=migrations.bound_url(db).render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the app's database."""
    # db.engines[None], or the connection standing in for it in an isolated test.
    with migrations.connect(db) as connection, migration_env.sqlite_safety(connection) as extra:
        context.configure(
            connection=connection, target_metadata=target_metadata, **(options | extra)
        )
        with context.begin_transaction():
            context.run_migrations()
            migration_env.check_foreign_keys(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

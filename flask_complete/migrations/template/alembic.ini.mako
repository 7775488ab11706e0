# Alembic settings for `flask db ...`. The database URL comes from the Flask app, not from here.

[alembic]
# Revision file names: %%(rev)s is the revision id, %%(slug)s the message.
# file_template = %%(rev)s_%%(slug)s

# Format each new revision file (needs ruff installed):
# [post_write_hooks]
# hooks = ruff
# ruff.type = exec
# ruff.executable = ruff
# ruff.options = format REVISION_SCRIPT_FILENAME

# Logging for the `flask db` commands (skipped when the app or a test run configured logging).
[loggers]
keys = root,sqlalchemy,alembic,alembic_plugins,flask_migrate

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[logger_alembic_plugins]
level = WARNING
handlers =
qualname = alembic.runtime.plugins

[logger_flask_migrate]
level = INFO
handlers =
qualname = flask_migrate

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S

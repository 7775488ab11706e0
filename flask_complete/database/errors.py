"""What a database error means, in one line that names the fix: the server is down, the
database or a table is missing, the driver is not installed, the credentials are refused."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import sys
import typing as t
from collections.abc import Iterator

import click
from flask import current_app
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from ..settings.config import redact_url
from ..state import get_state
from . import binds
from .urls import bundled_extra

if t.TYPE_CHECKING:
    pass

#: Drivers the ``postgres`` and ``mysql`` extras install.
_BUNDLED = ("psycopg", "pymysql")
_DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def explain(error: BaseException, url: URL) -> str | None:
    """A one-paragraph explanation of a connection ``error`` on ``url``, or ``None``."""
    shown = redact_url(url)
    backend = url.get_backend_name()
    if isinstance(error, NoSuchModuleError):
        return (
            f"Unknown database driver {url.drivername!r} in {shown}. Use postgresql://, mysql:// "
            "or sqlite:// URLs; the drivers come with `pip install flask-complete[postgres]` "
            "or `pip install flask-complete[mysql]`."
        )
    if isinstance(error, ModuleNotFoundError):
        name = (error.name or "").partition(".")[0]
        extra = bundled_extra(backend)
        if name in _BUNDLED and extra:
            return (
                f"The database driver {name!r} for {shown} is not installed. Install it with "
                f"`pip install flask-complete[{extra}]`."
            )
        message = (
            f"The database driver {name!r} for {shown} is not installed. Install it "
            f"(`pip install {name}`)"
        )
        if extra is None:
            return message + "."
        return (
            f"{message}, or use the bundled driver: write the URL as {backend}://... "
            f"and `pip install flask-complete[{extra}]`."
        )
    if not isinstance(error, DBAPIError):
        return None
    orig = error.orig
    text = str(orig).lower()
    code = orig.args[0] if orig is not None and orig.args else None
    where = f"{url.host or 'localhost'}:{url.port or _DEFAULT_PORT.get(backend, '')}"
    table = missing_table(error)
    if table is not None:
        return (
            f"The database {shown} has no table {table!r}: its tables were never made (or it is "
            "behind the migrations). Run `flask db prepare` to create and migrate it."
        )
    if backend == "sqlite":
        if "unable to open database file" in text:
            return (
                f"Cannot open the SQLite file of {shown}: its folder does not exist or is not "
                "writable. Run `flask db create`, or fix the path in DATABASE_URL."
            )
        return None
    if (
        code == 1045
        or "password authentication failed" in text
        or "access denied" in text
        or ("role" in text and "does not exist" in text)
    ):
        return (
            f"The database server at {where} refused the login of user {url.username!r} "
            f"({shown}). Check the user name and password in DATABASE_URL."
        )
    if code == 1049 or ("database" in text and "does not exist" in text):
        from ..database.identity import declared_name

        return (
            f"The database {declared_name(url)!r} does not exist on the server at {where} "
            f"({shown}). Create it with `flask db create` (or `flask db prepare`)."
        )
    unreachable = (
        "connection refused",
        "can't connect",
        "could not translate host",
        "name or service not known",
        "timeout",
        "timed out",
        "no route to host",
        "connection failed",
    )
    if code in (2002, 2003, 2005, 2013) or any(s in text for s in unreachable):
        return (
            f"Cannot reach the database server at {where} ({shown}). Is it running, and are "
            "the host and port in DATABASE_URL right?"
        )
    return None


#: What each server answers for a table that does not exist: PostgreSQL's SQLSTATE, MySQL's and
#: MariaDB's error number; SQLite has no code of its own for it, only its message.
_UNDEFINED_TABLE_STATE = "42P01"
_NO_SUCH_TABLE_ERRNO = 1146
_QUOTED = re.compile(r"""["'`]([^"'`]+)["'`]""")


def missing_table(error: DBAPIError) -> str | None:
    """The table the server said does not exist, or ``None`` for any other error."""
    orig = error.orig
    if orig is None:
        return None
    message = str(orig)
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE_STATE:
        said = getattr(getattr(orig, "diag", None), "message_primary", None) or message
    elif orig.args and orig.args[0] == _NO_SUCH_TABLE_ERRNO:
        said = str(orig.args[-1])  # "Table 'database.name' doesn't exist"
    elif isinstance(orig, sqlite3.OperationalError) and message.startswith("no such table: "):
        return message.removeprefix("no such table: ").rpartition(".")[2]
    else:
        return None
    found = _QUOTED.search(said)
    return found.group(1).rpartition(".")[2] if found else "?"


@contextlib.contextmanager
def database_errors(url: URL | None = None) -> Iterator[None]:
    """Turn connection failures and Alembic errors into a :class:`click.ClickException`."""
    try:
        yield
    except (DBAPIError, NoSuchModuleError, ModuleNotFoundError) as e:
        if url is None and current_app:
            url = _failed_url()
        message = explain(e, url) if url is not None else None
        if message is None:
            raise
        raise click.ClickException(message) from e
    except Exception as e:
        embedded = sys.modules.get(f"{__package__}.embedded")
        if embedded is not None and isinstance(e, embedded.EmbeddedPostgresError):
            raise click.ClickException(str(e)) from e  # its message names the fix
        alembic_util = sys.modules.get("alembic.util")
        if alembic_util is not None and isinstance(e, alembic_util.CommandError):
            raise click.ClickException(str(e)) from e
        raise


def _failed_url() -> URL | None:
    """The URL to explain ``error`` with when the command did not say which database failed:
    the first database of the current app."""
    sqla = get_state().db
    if sqla is None:
        return None
    keys = binds.keys()
    return binds.url(sqla, keys[0]) if keys else None

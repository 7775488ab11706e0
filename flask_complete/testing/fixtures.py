"""Data fixtures in tests, for :mod:`flask_complete.pytest_plugin` to wire: the ``load_fixtures``
fixture, the ``fixtures`` marker and the ``--load-fixtures`` session option.

* ``load_fixtures("users", "notes")`` (a fixture returning a function) loads fixture files
  (names under ``fixtures/testing/`` then ``fixtures/``, which must stay inside ``fixtures/``; a
  ``pathlib.Path`` for a file elsewhere) into the test's transaction: rolled back with it. Call
  it inside the app context the test uses (the plugin's ``app`` fixture pushes one): a new
  context would have a session of its own, ended with it.
* ``@pytest.mark.fixtures("users", "notes")`` does the same before the test.
* ``--load-fixtures users,notes`` (ini ``load_fixtures``) loads them once for the whole run into
  the test database, committed, on top of the migrations.

Everything here runs inside the plugin's database access and isolation; nothing imports pytest at
module level, so the plugin can import it lazily.
"""

from __future__ import annotations

import os
import typing as t

from ..data import fixtures as datafixtures

if t.TYPE_CHECKING:
    from flask import Flask

    from ..data.fixtures import Report

MARKER = "fixtures(*names): load data fixture files into the test's transaction, rolled back after"
OPTION = "--load-fixtures"
INI = "load_fixtures"
OPTION_HELP = (
    "Data fixture files (or names under fixtures/) to load once into the test database, "
    "comma-separated."
)


def names_of(value: str | t.Iterable[str] | None) -> list[str]:
    """The fixture names of an option or ini value (comma- or line-separated)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [n.strip() for item in items for n in item.replace("\n", ",").split(",") if n.strip()]


def loader(app: Flask) -> t.Callable[..., Report]:
    """What the ``load_fixtures`` fixture returns: loads names into the current session's
    transaction (the test's, under the ``db`` fixture's isolation)."""

    def load_fixtures(*names: str | os.PathLike[str]) -> Report:
        from flask import current_app, has_app_context

        if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
            # The test's own session: a new app context would have (and end) another one.
            return datafixtures.load_in_session(app, *names)
        with app.app_context():
            return datafixtures.load_in_session(app, *names)

    return load_fixtures


def for_marker(app: Flask, marker_args: t.Sequence[str]) -> Report:
    """Load the names of a ``@pytest.mark.fixtures(...)`` into the test's transaction."""
    return loader(app)(*marker_args)


def load_for_session(app: Flask, names: t.Sequence[str]) -> Report | None:
    """Load ``names`` into the test database once, committed (after the schema is built)."""
    if not names:
        return None
    with app.app_context():
        paths = [datafixtures.find(app, name) for name in names]
        return datafixtures.load(app, paths)

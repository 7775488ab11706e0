"""The per-app state of flask_complete, at ``app.extensions["complete"]``.

Below every piece: the pieces (database, migrations, auth, CORS, checks, commands) import this
module, never :mod:`flask_complete.extension`, which orders them.
"""

from __future__ import annotations

import contextlib
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Flask, current_app, has_app_context

if t.TYPE_CHECKING:
    from pathlib import Path

    from flask_sqlalchemy import SQLAlchemy

    from .problems import Problem
    from .settings.config import Settings

EXTENSION_KEY = "complete"


@dataclass
class CompleteState:
    """Per-app state, at ``app.extensions["complete"]``."""

    env: str
    root: Path
    settings: Settings
    db: SQLAlchemy | None
    #: The app had bound its own ``SQLAlchemy`` before the call: its URL and pool are its own.
    db_bound_before: bool = False
    user_model: type[t.Any] | None = None
    migrations_dir: Path | None = None
    #: Problems found at init. Non-empty only when init collected instead of raising.
    problems: list[Problem] = field(default_factory=list)
    #: Values of init-time keys right after init, to flag later changes.
    init_values: dict[str, t.Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: ``flask complete check`` builds the app with every refusal collected instead of raised.
collecting = False


def get_state(app: Flask | None = None) -> CompleteState:
    """The :class:`CompleteState` of ``app`` (default: the current app)."""
    app = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return t.cast(CompleteState, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "flask_complete is not initialised on this app: add Complete(app) (or "
            "complete.init_app(app) in the app factory)."
        ) from None


@contextlib.contextmanager
def app_context_of(app: Flask) -> Iterator[None]:
    """``app``'s context for the block: the current one when it is ``app``'s (no push, so none of
    its teardown runs), else a new one."""
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        yield
        return
    with app.app_context():
        yield

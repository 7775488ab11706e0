"""Migrations: the per-app ``flask db`` group over Flask-Migrate (:mod:`.migrate`), which folder
(:mod:`.folder`), every bind's revisions (:mod:`.binds`) and our ``env.py`` template
(``template/``). Imports the database layer, the state and the settings.

``env.py`` files written by ``flask db init`` import this package beside
:mod:`flask_complete.migration_env` and call the three names below: they stay here, imported on
first use.
"""

from __future__ import annotations

import importlib
import typing as t

#: What an ``env.py`` of any released template calls on ``flask_complete.migrations``.
_ENV_PY = ("bound_url", "connect", "import_models")


def __getattr__(name: str) -> t.Any:
    if name in _ENV_PY:
        return getattr(importlib.import_module(f"{__name__}.migrate"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

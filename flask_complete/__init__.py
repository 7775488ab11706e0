"""One init call for the parts every Flask app with a database rebuilds.

The public API is what this package, :mod:`flask_complete.api`, :mod:`flask_complete.auth`,
:mod:`flask_complete.factories` and :mod:`flask_complete.testing` export (their ``__all__``),
with the settings, the commands and the pytest plugin's options and fixtures. Every other module
is internal and may change without a deprecation period.
"""

from __future__ import annotations

import importlib
import typing as t

if t.TYPE_CHECKING:
    from .database.engines import db
    from .database.sqla import SQLAlchemy
    from .deprecation import FlaskCompleteDeprecationWarning
    from .extension import Complete
    from .settings.config import ConfigError

__version__ = "0.1.0"

__all__ = [
    "Complete",
    "ConfigError",
    "FlaskCompleteDeprecationWarning",
    "SQLAlchemy",
    "__version__",
    "db",
]

#: Imported on first use: the pytest plugin is a submodule loaded by every pytest run, so
#: importing the package must not pull in SQLAlchemy and the rest.
_LAZY = {
    "Complete": ".extension",
    "ConfigError": ".settings.config",
    "FlaskCompleteDeprecationWarning": ".deprecation",
    "SQLAlchemy": ".database.sqla",
    "db": ".database.engines",
}


def __getattr__(name: str) -> t.Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

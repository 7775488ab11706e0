"""One init call for the parts every Flask app with a database rebuilds."""

from .config import ConfigError
from .database import db
from .extension import Complete

__version__ = "0.1.0"

__all__ = ["Complete", "ConfigError", "__version__", "db"]

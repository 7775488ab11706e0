"""How auth reads its switches: ``CSRF_PROTECT``. Imports nothing, so that an app without
a user model pays only for this."""

from __future__ import annotations

import typing as t


def csrf_flag(value: t.Any) -> bool | str:
    """``CSRF_PROTECT``: true, false or ``"auto"``; ``"invalid"`` for anything else, which
    callers refuse (never read as off)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "auto"):
        text = value.strip().lower()
        return text if text == "auto" else text == "true"
    return value if isinstance(value, bool) else "invalid"

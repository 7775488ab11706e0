"""The warning of flask_complete's deprecation policy (``CHANGES.md``): a renamed setting or
argument keeps working for one minor release and warns with :class:`FlaskCompleteDeprecationWarning`
naming the replacement.

Its own class, so that a suite can make exactly these errors
(``filterwarnings = ["error::flask_complete.FlaskCompleteDeprecationWarning"]``) without turning
every library's deprecations into failures.
"""

from __future__ import annotations

import typing as t
import warnings

__all__ = ["FlaskCompleteDeprecationWarning", "renamed"]


class FlaskCompleteDeprecationWarning(DeprecationWarning):
    """A setting, argument or name of flask_complete that is going away; the message names the
    replacement and the release that removes it.

    .. versionadded:: 0.1.0
    """


def renamed(
    config: t.MutableMapping[str, t.Any],
    old: str,
    new: str,
    removed_in: str,
    where: str = "the settings",
    stacklevel: int = 3,
) -> None:
    """Move ``config[old]`` to ``config[new]`` (a value already under ``new`` wins) and warn.

    For a keyword argument pass the call's keyword arguments as ``config`` and the function's
    name as ``where``.
    """
    if old not in config:
        return
    value = config.pop(old)
    config.setdefault(new, value)
    warnings.warn(
        f"{old} in {where} is renamed to {new}; {old} stops working in flask_complete "
        f"{removed_in}. Rename it.",
        FlaskCompleteDeprecationWarning,
        stacklevel=stacklevel,
    )

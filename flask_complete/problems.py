"""What is wrong with the settings, and the error that stops an app for it.

Re-exported by :mod:`flask_complete.settings.config`, where the rest of the bundle imports them
from.
"""

from __future__ import annotations

from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: an id, what is wrong, how to fix it."""

    id: str
    key: str
    message: str
    fix: str = ""
    level: str = "error"


class ConfigError(click.ClickException):
    """The settings are invalid or unsafe; the message names each setting and the fix.

    One line per problem, errors first: the first line is the first error itself (what a
    process manager or a log aggregator shows), never a generic header.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        ordered = sorted(problems, key=lambda p: p.level != "error")
        lines = [
            ("" if p.level == "error" else f"{p.level}: ")
            + f"{p.message} {p.fix}".strip()
            + f" [{p.id}]"
            for p in ordered
        ]
        super().__init__("\n".join(lines) or "flask_complete: the settings are invalid.")

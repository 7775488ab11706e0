"""Placeholder: filled in by its own issue."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from flask import Flask

    from .extension import CompleteState


def init_app(app: Flask, state: CompleteState) -> None:
    """Wire this piece into ``app``."""

"""What `flask db seed` / `flask db prepare` put in a new database (the SEEDS setting).

Both functions are idempotent: running them again adds nothing. flask_complete runs them in one
transaction and commits at the end.
"""

from __future__ import annotations

from flask_complete.seeds import get_or_create, progress

from .factories import NoteFactory
from .models import Notebook

#: Development sample data: notebooks and how many notes each holds.
SAMPLE = {"Inbox": 3, "Work": 5, "Ideas": 2}


def development() -> None:
    """Sample notebooks with notes."""
    for name, count in SAMPLE.items():
        notebook = get_or_create(Notebook, name=name)
        for _ in progress(range(count - len(notebook.notes)), f"notes in {name}"):
            NoteFactory.create(notebook=notebook)


def production() -> None:
    """Only what the app needs to be usable: an empty Inbox."""
    get_or_create(Notebook, name="Inbox")

"""What `flask db seed` / `flask db prepare` put in a new database (the SEEDS setting).

Both functions are idempotent: running them again adds nothing. flask_complete runs them in one
transaction and commits at the end.
"""

from __future__ import annotations

from flask_complete.seeds import get_or_create, progress

from .factories import NoteFactory
from .models import Notebook, User

#: Development sample data: notebooks and how many notes each holds.
SAMPLE = {"Inbox": 3, "Work": 5, "Ideas": 2}
#: Who owns the sample data in development: log in with these.
DEMO_LOGIN = DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo-password"


def development() -> None:
    """A demo user owning sample notebooks with notes."""
    owner = get_or_create(User, email=DEMO_EMAIL)
    if owner.password_hash is None:
        owner.set_password(DEMO_PASSWORD)
    for name, count in SAMPLE.items():
        notebook = get_or_create(Notebook, owner=owner, name=name)
        for _ in progress(range(count - len(notebook.notes)), f"notes in {name}"):
            NoteFactory.create(notebook=notebook)


def production() -> None:
    """Nothing: every notebook belongs to a user, and users sign up by `flask users create`."""

"""factory-boy factories for the notes app: importable before the app exists."""

from __future__ import annotations

import factory

from flask_complete.factories import ModelFactory

from .models import Note, Notebook, User


class UserFactory(ModelFactory):
    class Meta:
        model = User
        sqlalchemy_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.test")


class NotebookFactory(ModelFactory):
    class Meta:
        model = Notebook
        # Asking twice for the same name (and owner) gives the same notebook.
        sqlalchemy_get_or_create = ("owner", "name")

    name = factory.Sequence(lambda n: f"Notebook {n}")
    # Notebooks made without an owner share one user; pass owner=... for another's.
    owner = factory.SubFactory(UserFactory, email="owner@example.test")


class NoteFactory(ModelFactory):
    class Meta:
        model = Note

    notebook = factory.SubFactory(NotebookFactory)
    title = factory.Sequence(lambda n: f"Note {n}")
    body = factory.Faker("paragraph", nb_sentences=2)

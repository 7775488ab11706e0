"""factory-boy factories for the notes app: importable before the app exists."""

from __future__ import annotations

import factory

from flask_complete.factories import ModelFactory

from .models import Note, Notebook


class NotebookFactory(ModelFactory):
    class Meta:
        model = Notebook
        # Asking twice for the same name gives the same notebook.
        sqlalchemy_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Notebook {n}")


class NoteFactory(ModelFactory):
    class Meta:
        model = Note

    notebook = factory.SubFactory(NotebookFactory)
    title = factory.Sequence(lambda n: f"Note {n}")
    body = factory.Faker("paragraph", nb_sentences=2)

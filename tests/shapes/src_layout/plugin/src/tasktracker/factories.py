import factory

from flask_complete.factories import ModelFactory

from .models import Project, Task


class ProjectFactory(ModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"project {n}")


class TaskFactory(ModelFactory):
    class Meta:
        model = Task

    title = factory.Sequence(lambda n: f"task {n}")
    project = factory.SubFactory(ProjectFactory)

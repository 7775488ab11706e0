import factory
from app.models import Post, User

from flask_complete.factories import ModelFactory


class UserFactory(ModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")


class PostFactory(ModelFactory):
    class Meta:
        model = Post

    body = factory.Sequence(lambda n: f"post {n}")
    author = factory.SubFactory(UserFactory)

"""factory-boy factories for Django's models."""

import factory
from factory.django import DjangoModelFactory

from .models import Comment, Post, User


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Sequence(lambda n: f"User {n}")


class PostFactory(DjangoModelFactory):
    class Meta:
        model = Post

    author = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Post {n}")
    body = "A post with a few words in it."


class CommentFactory(DjangoModelFactory):
    class Meta:
        model = Comment

    post = factory.SubFactory(PostFactory)
    author = factory.SelfAttribute("post.author")
    body = factory.Sequence(lambda n: f"Comment {n}")

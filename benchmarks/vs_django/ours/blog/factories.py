"""factory-boy factories bound to the test's session (flask_complete's ModelFactory)."""

from __future__ import annotations

import factory

from flask_complete.factories import ModelFactory

from .models import Comment, Post, User


class UserFactory(ModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Sequence(lambda n: f"User {n}")


class PostFactory(ModelFactory):
    class Meta:
        model = Post

    author = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Post {n}")
    body = "A post with a few words in it."


class CommentFactory(ModelFactory):
    class Meta:
        model = Comment

    post = factory.SubFactory(PostFactory)
    author = factory.SelfAttribute("post.author")
    body = factory.Sequence(lambda n: f"Comment {n}")

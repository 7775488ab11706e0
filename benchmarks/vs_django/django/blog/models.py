"""Users, their posts and comments: the same tables as flask_complete's side."""

from django.db import models
from django.utils import timezone


class User(models.Model):
    email = models.CharField(max_length=254, unique=True)
    name = models.CharField(max_length=100, default="")


class Post(models.Model):
    author = models.ForeignKey(User, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    body = models.TextField(default="")
    created_at = models.DateTimeField(default=timezone.now)


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE)
    author = models.ForeignKey(User, on_delete=models.CASCADE)
    body = models.TextField(default="")
    created_at = models.DateTimeField(default=timezone.now)

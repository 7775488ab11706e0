import factory
from flaskr.models import Post, User
from werkzeug.security import generate_password_hash

from flask_complete.factories import ModelFactory


class UserFactory(ModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.LazyFunction(lambda: generate_password_hash("pw", "pbkdf2:sha256:1000"))


class PostFactory(ModelFactory):
    class Meta:
        model = Post

    title = factory.Sequence(lambda n: f"post {n}")
    author = factory.SubFactory(UserFactory)

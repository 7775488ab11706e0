"""What one test costs in SQL under the pytest plugin's ``db`` fixture and the factories, counted
on the real engines, so that the savings cannot regress; and the guarantees kept while saving.

A generated project (users, posts, comments, factories, a JSON view) runs a fixed scenario with
``pytester``: a conftest records every statement the engines send (``before_cursor_execute``),
the DBAPI rollbacks and the pool's checkouts and resets, test by test.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterator

import factory
import pytest
import sqlalchemy as sa
from conftest import SERVERS, drop_database, require_server, unique_name
from dbapps import Apps, Models, apps, fresh_db
from sqlalchemy import ForeignKey, String, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_complete.factories import ModelFactory

pytest_plugins = ["pytester"]
__all__ = ["apps"]  # fixture

QUIET = ("-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:faker", "-p", "no:xdist")

APP = """
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flask_complete import Complete


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)


class Post(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    title: Mapped[str] = mapped_column(String(100))
    author: Mapped[User] = relationship()


class Comment(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    body: Mapped[str] = mapped_column(String(100))
    post: Mapped[Post] = relationship()
    author: Mapped[User] = relationship()


def create_app():
    app = Flask(__name__)
    Complete(app, db=db)

    @app.get("/users/<int:user_id>/posts")
    def posts(user_id):
        found = db.session.scalars(select(Post).where(Post.author_id == user_id).order_by(Post.id))
        return jsonify([p.title for p in found])

    @app.post("/users")
    def add_user():
        db.session.add(User(email=request.json["email"]))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return "taken", 409
        return "", 201

    @app.post("/boom")
    def boom():
        db.session.add(User(email="boom@example.test"))
        db.session.flush()
        raise RuntimeError("the view failed after writing")

    return app
"""

FACTORIES = """
import factory
from flask_complete.factories import ModelFactory
from blog import Comment, Post, User


class UserFactory(ModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")


class PostFactory(ModelFactory):
    class Meta:
        model = Post

    author = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Post {n}")


class CommentFactory(ModelFactory):
    class Meta:
        model = Comment

    post = factory.SubFactory(PostFactory)
    author = factory.SelfAttribute("post.author")
    body = factory.Sequence(lambda n: f"Comment {n}")
"""

#: Records what each test sends, as JSON in the file named by STATEMENTS_LOG.
CONFTEST = """
import json
import os

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

found = {}
current = None


def note(text):
    if current is not None:
        current.append(" ".join(text.split()))


@event.listens_for(Engine, "before_cursor_execute")
def _statement(conn, cursor, statement, *args):
    note(statement)


@event.listens_for(Engine, "rollback")
def _rollback(conn):
    note("rollback()")


@event.listens_for(Engine, "commit")
def _commit(conn):
    note("commit()")


@event.listens_for(Pool, "checkout")
def _checkout(*args):
    note("pool checkout")


@event.listens_for(Pool, "reset")
def _reset(*args):
    note("pool reset")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global current
    current = found.setdefault(item.name, [])
    yield
    current = None


def pytest_sessionfinish(session):
    with open(os.environ["STATEMENTS_LOG"], "w", encoding="utf-8") as stream:
        json.dump(found, stream)
"""

#: The fixed scenario (the benchmark's: a user, a post, three comments, a commit, a count
#: through a join, a GET), then the guarantees.
TESTS = """
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from blog import Comment, Post, User
from factories import CommentFactory, PostFactory, UserFactory


def make_post(db):
    user = UserFactory()
    post = PostFactory(author=user)
    CommentFactory.create_batch(3, post=post, author=user)
    db.session.commit()
    joined = select(func.count()).select_from(Comment).join(Post).where(Post.author_id == user.id)
    assert db.session.scalar(joined) == 3
    return user


def emails(db):
    return db.session.scalars(select(User.email).order_by(User.email)).all()


def test_0_builds_the_database(db):
    make_post(db)


def test_1_finds_it(db):
    make_post(db)


@pytest.mark.parametrize("n", range(2))
def test_post(db, n):
    make_post(db)


@pytest.mark.parametrize("n", range(2))
def test_post_view(db, client, n):
    user = make_post(db)
    assert len(client.get(f"/users/{user.id}/posts").json) == 1


def test_nested_factories(db):
    comment = CommentFactory()
    assert comment.post.author_id == comment.author.id


def test_commit_then_rollback_undoes_only_what_followed(db):
    UserFactory(email="kept@example.test")
    db.session.commit()
    UserFactory(email="gone@example.test")
    db.session.rollback()
    assert emails(db) == ["kept@example.test"]
    db.session.commit()
    db.session.commit()
    UserFactory(email="gone@example.test")
    db.session.rollback()
    assert emails(db) == ["kept@example.test"]


def test_a_failing_statement_in_the_test_is_rolled_back_alone(db):
    UserFactory(email="a@example.test")
    db.session.commit()
    with pytest.raises(IntegrityError):
        UserFactory(email="a@example.test")
    db.session.rollback()
    assert emails(db) == ["a@example.test"]


def test_requests_see_the_test_data_and_their_failures_undo_only_theirs(db, client):
    UserFactory(email="a@example.test")
    db.session.commit()
    assert client.post("/users", json={"email": "a@example.test"}).status_code == 409
    assert client.post("/users", json={"email": "b@example.test"}).status_code == 201
    with pytest.raises(RuntimeError, match="after writing"):
        client.post("/boom")
    UserFactory(email="c@example.test")  # flushed, not committed: the request sees it
    assert client.post("/users", json={"email": "c@example.test"}).status_code == 409
    assert emails(db) == ["a@example.test", "b@example.test", "c@example.test"]
    db.session.rollback()
    assert emails(db) == ["a@example.test", "b@example.test"]


def test_engine_connect_and_begin_join_the_test(db):
    UserFactory(email="a@example.test")
    with db.engine.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(User)) == 1
        conn.execute(User.__table__.insert().values(email="b@example.test"))
    with db.engine.connect() as conn:
        conn.execute(User.__table__.insert().values(email="c@example.test"))
    assert emails(db) == ["a@example.test", "b@example.test"]


def test_a_listener_on_db_engine(db):
    event.listen(db.engine, "before_cursor_execute", fail_in_other_tests)
    assert emails(db) == []


def fail_in_other_tests(conn, cursor, statement, *args):
    if "test_a_listener_on_db_engine" not in __import__("os").environ["PYTEST_CURRENT_TEST"]:
        raise AssertionError("a listener on db.engine outlived its test")


def test_each_test_starts_empty(db):
    assert emails(db) == []
    assert db.session.scalar(select(func.count()).select_from(Comment)) == 0


def test_losing_the_connection(db):
    if db.engine.dialect.name != "postgresql":
        db.engine.invalidate()
        return
    with pytest.raises(DBAPIError):
        db.session.execute(select(func.pg_terminate_backend(func.pg_backend_pid())))


def test_after_losing_the_connection(db):
    make_post(db)
    assert len(emails(db)) == 1


def test_closing_db_engine(db):
    UserFactory()
    db.engine.close()  # ends the outer transaction: the connection is not kept


def test_after_closing_db_engine(db):
    assert emails(db) == []
"""

SCENARIO = ("test_post[0]", "test_post[1]", "test_post_view[0]", "test_post_view[1]")


def _shape(statement: str) -> str:
    """A statement as its kind and first table: ``INSERT comment``, ``SAVEPOINT``."""
    words = statement.replace('"', "").split()
    head = words[0].upper()
    if head in ("SAVEPOINT", "RELEASE", "BEGIN") or statement in ("rollback()", "commit()"):
        return head if head in ("SAVEPOINT", "RELEASE", "BEGIN") else statement
    if statement.upper().startswith("ROLLBACK TO"):
        return "ROLLBACK TO"
    if head == "INSERT":
        return f"INSERT {words[2]}"
    if head == "SELECT":
        upper = [w.upper() for w in words]
        return f"SELECT {words[upper.index('FROM') + 1]}" if "FROM" in upper else statement
    return statement


class Run(t.NamedTuple):
    kind: str
    result: pytest.RunResult
    statements: dict[str, list[str]]

    def shapes(self, test: str) -> list[str]:
        return [_shape(s) for s in self.statements[test]]


_runs: dict[str, Run] = {}


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def run(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> Run:
    """The generated project's suite, run on SQLite, PostgreSQL or MariaDB (once per process)."""
    kind = request.param
    if kind in _runs:
        return _runs[kind]
    name = unique_name("fc_cost")
    if kind == "sqlite":
        url = f"sqlite:///{pytester.path / 'instance' / (name + '.sqlite3')}"
    else:
        require_server(kind)
        url = f"{SERVERS[kind]}/{name}"
    pytester.makepyfile(blog=APP, factories=FACTORIES, test_scenario=TESTS)
    pytester.makeconftest(CONFTEST)
    (pytester.path / "settings.toml").write_text(f'[default]\nDATABASE_URL = "{url}"\n')
    pytester.makeini("[pytest]\nflask_app = blog:create_app\nfilterwarnings = error\n")
    log = pytester.path / "statements.json"
    clean_env.setenv("STATEMENTS_LOG", str(log))
    try:
        # --reuse-db: a SQLite test database is named by its file, which the first prepare
        # recreates; reused, the second finds it as it is (the first two tests are warm-ups).
        result = pytester.runpytest_subprocess(*QUIET, "-v", "--reuse-db")
    finally:
        if kind != "sqlite":
            drop_database(kind, f"test_{name}")
    statements = json.loads(log.read_text()) if log.exists() else {}
    _runs[kind] = Run(kind, result, statements)
    return _runs[kind]


def test_the_guarantees_hold(run: Run) -> None:
    run.result.assert_outcomes(passed=17)


def expected(kind: str, view: bool) -> list[str]:
    """What one scenario test sends. Before: a pre-ping at checkout, SAVEPOINT, five INSERTs,
    RELEASE, SAVEPOINT, two SELECTs, (the GET: SAVEPOINT, SELECT, ROLLBACK TO,) ROLLBACK TO,
    ROLLBACK."""
    return [
        *(["BEGIN"] if kind == "sqlite" else []),  # the pysqlite SAVEPOINT fix's own BEGIN
        "SAVEPOINT",  # the test's session, at its first flush
        "INSERT user",  # UserFactory()
        "INSERT post",  # PostFactory(author=user)
        # create_batch(3): one flush; one statement where the database can return the keys of
        # several rows in order (PostgreSQL, MariaDB; SQLite's RETURNING cannot promise it).
        *(["INSERT comment"] * (3 if kind == "sqlite" else 1)),
        "SAVEPOINT",  # after commit(), whose RELEASE is not sent
        "SELECT user",  # user.id, expired by commit() as in production
        "SELECT comment",  # the count
        # The GET: the request's session joins with its own SAVEPOINT, rolled back at its end.
        *(["SAVEPOINT", "SELECT post", "ROLLBACK TO"] if view else []),
        "rollback()",  # the test's outer transaction, with no ROLLBACK TO right before it
    ]


def test_statements_per_test(run: Run) -> None:
    for test in SCENARIO:
        assert run.shapes(test) == expected(run.kind, "view" in test), (test, run.statements[test])


def test_one_connection_per_engine_for_the_run(run: Run) -> None:
    """The test database's connection is checked out (and pinged) once, not once per test; a
    lost one is replaced, and so is one whose test ended the outer transaction itself."""
    for test in SCENARIO:
        shapes = run.shapes(test)
        assert "pool checkout" not in shapes and "pool reset" not in shapes, (test, shapes)
    assert "pool checkout" in run.shapes("test_after_losing_the_connection")
    assert "pool checkout" in run.shapes("test_after_closing_db_engine")


def test_nested_factories_flush_once(run: Run) -> None:
    """CommentFactory(), its post and user made by sub-factories: one flush, one INSERT per
    table."""
    begin = ["BEGIN"] if run.kind == "sqlite" else []
    assert run.shapes("test_nested_factories") == [
        *begin,
        "SAVEPOINT",
        "INSERT user",
        "INSERT post",
        "INSERT comment",
        "rollback()",
    ]


# -- factories, in-process: one flush per call, objects as persistent as before -------------------

db = fresh_db()


class Author(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), default="")
    books = relationship("Book", back_populates="author")


class Book(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    code: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(20), server_default="new")
    author = relationship(Author, back_populates="books")


class AuthorFactory(ModelFactory):
    class Meta:
        model = Author

    email = factory.Sequence(lambda n: f"author{n}@example.test")


class BookFactory(ModelFactory):
    class Meta:
        model = Book

    author = factory.SubFactory(AuthorFactory)
    code = factory.Sequence(lambda n: f"B{n}")


class KeyedBookFactory(BookFactory):
    # Reads the key of the author the sub-factory made, before the book exists.
    code = factory.LazyAttribute(lambda book: f"A{book.author.id}")


class AuthorWithBooksFactory(AuthorFactory):
    books = factory.RelatedFactoryList(KeyedBookFactory, "author", size=2)

    @factory.post_generation
    def slugged(obj: Author, create: bool, extracted: t.Any, **kwargs: t.Any) -> None:
        obj.slug = f"author-{obj.id}"  # the key, read in a post-generation hook


@pytest.fixture
def flushes(database_url: str, apps: Apps) -> Iterator[list[int]]:
    """An app context on a fresh database; the number of objects each flush wrote."""
    app = apps.make(database_url, Models(db), SEEDS=[])
    with app.app_context():
        db.create_all()
        found: list[int] = []

        def count(session: t.Any, context: t.Any, objects: t.Any) -> None:
            found.append(len(session.new))

        session = db.session()
        event.listen(session, "before_flush", count)
        try:
            yield found
        finally:
            event.remove(session, "before_flush", count)
            db.session.rollback()


def test_one_flush_per_factory_call(flushes: list[int]) -> None:
    """A call flushes once, however many objects its sub-factories and batch make."""
    book = BookFactory()
    assert flushes == [2]
    BookFactory.create_batch(3, author=book.author)
    assert flushes == [2, 3]
    assert all(sa.inspect(b).persistent for b in book.author.books)


def test_a_key_read_while_the_factory_runs_flushes_first(flushes: list[int]) -> None:
    """A declaration or hook that reads a key the database gives gets it: what is pending is
    flushed at that read, the rest at the end of the call."""
    book = KeyedBookFactory()
    assert book.code == f"A{book.author.id}" and book.author.id is not None
    assert flushes == [1, 1]
    author = AuthorWithBooksFactory()
    assert author.slug == f"author-{author.id}"
    assert [b.code for b in author.books] == [f"A{author.id}"] * 2
    assert flushes == [1, 1, 1, 2]


def test_created_objects_are_persistent(flushes: list[int]) -> None:
    """What a factory returns is in the database: its keys, defaults and server defaults are
    there, and the session can refresh or delete it, as before the flushes were batched."""
    book = BookFactory()
    state = sa.inspect(book)
    assert state.persistent and sa.inspect(book.author).persistent
    assert book.id is not None and book.author_id == book.author.id
    assert book.note == "new"
    db.session.refresh(book)
    db.session.delete(book)
    db.session.flush()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Book)) == 0
    # Other connections of the transaction see the rows without a flush of their own.
    author = AuthorFactory()
    conn = db.session.connection()
    assert conn.scalar(sa.select(Author.email).where(Author.id == author.id)) == author.email


def test_a_constraint_fails_in_the_factory_call(flushes: list[int]) -> None:
    AuthorFactory(email="taken@example.test")
    with pytest.raises(IntegrityError):
        AuthorFactory(email="taken@example.test")
    db.session.rollback()


def test_explicit_persistence_is_kept(flushes: list[int]) -> None:
    """A factory that sets ``sqlalchemy_session_persistence`` gets factory-boy's own."""

    class LazyAuthorFactory(AuthorFactory):
        class Meta:
            sqlalchemy_session_persistence = None

    author = LazyAuthorFactory()
    assert flushes == [] and sa.inspect(author).pending


def test_statement_shapes() -> None:
    """The shapes the assertions above compare."""
    assert _shape('INSERT INTO "user" (email) VALUES (%(email)s)') == "INSERT user"
    assert _shape("SELECT count(*) AS n FROM comment JOIN post ON x") == "SELECT comment"
    assert _shape("ROLLBACK TO SAVEPOINT sa_savepoint_2") == "ROLLBACK TO"
    assert _shape("RELEASE SAVEPOINT sa_savepoint_1") == "RELEASE"

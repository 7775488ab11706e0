"""The database piece: URLs, engine options per dialect, SQLite pragmas, pools, adoption, fork."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import track
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column

import flask_complete
from flask_complete import Complete, ConfigError
from flask_complete.database.engines import engine_options
from flask_complete.database.gate import derive_test_url
from flask_complete.database.urls import absolute_sqlite, normalize_url


class Base(DeclarativeBase):
    pass


sqla = SQLAlchemy(model_class=Base)


class Parent(sqla.Model):
    id: Mapped[int] = mapped_column(primary_key=True)


class Child(sqla.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(sa.ForeignKey("parent.id"))


def make_app(root: Path, env: str = "development", **config: t.Any) -> Flask:
    app = Flask("dbapp", root_path=str(root), instance_path=str(root / "instance"))
    app.config.update(config)
    Complete(app, db=sqla, env=env, root=root)
    track(app)
    return app


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("mysql://root@h/db", "mysql+pymysql://root@h/db?charset=utf8mb4"),
        ("mariadb://root@h/db", "mariadb+pymysql://root@h/db?charset=utf8mb4"),
        ("mysql+pymysql://r@h/db?charset=latin1", "mysql+pymysql://r@h/db?charset=latin1"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_bad_url_says_the_form() -> None:
    with pytest.raises(ConfigError, match=r"not a database URL.*dialect://user:password@host"):
        normalize_url("localhost/db")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+psycopg://u:p@h/app", "postgresql+psycopg://u:p@h/test_app"),
        ("postgresql+psycopg://u@h/test_app", "postgresql+psycopg://u@h/test_app"),
        ("sqlite:///app-dev.sqlite3", "sqlite:///test_app-dev.sqlite3"),
        ("sqlite:////srv/data/app.db", "sqlite:////srv/data/test_app.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_test_url(given: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_complete.settings import config

    monkeypatch.setattr(config, "_forced_worker", "")
    assert derive_test_url(given) == expected
    monkeypatch.setattr(config, "_forced_worker", "gw3")
    worker = derive_test_url(given)
    assert worker == expected if given == "sqlite://" else worker != expected and "_gw3" in worker


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///app.db", "sqlite:////srv/instance/app.db"),
        ("sqlite:///data/app.db", "sqlite:////srv/instance/data/app.db"),
        ("sqlite:////var/app.db", "sqlite:////var/app.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:///file:app.db?uri=true", "sqlite:///file:/srv/instance/app.db?uri=true"),
        ("postgresql+psycopg://h/app.db", "postgresql+psycopg://h/app.db"),
    ],
)
def test_relative_sqlite_paths_resolve_against_the_instance_folder(
    given: str, expected: str
) -> None:
    assert absolute_sqlite(given, "/srv/instance") == expected


def test_pool_options_dropped_where_rejected() -> None:
    config = {"DATABASE_POOL_SIZE": 3}
    assert "pool_size" not in engine_options("sqlite://", config, {"pool_size": 9})
    null = engine_options("postgresql+psycopg://h/db", {"DATABASE_POOL": "null"}, {})
    assert null["poolclass"].__name__ == "NullPool"
    assert null["connect_args"] == {"prepare_threshold": None, "connect_timeout": 10}
    assert "pool_size" not in null
    mysql = engine_options("mysql+pymysql://h/db", {"DATABASE_MYSQL_POOL_RECYCLE": 280}, {})
    assert mysql["pool_recycle"] == 280


@pytest.mark.parametrize(
    ("url", "config", "user", "expected"),
    [
        ("postgresql+psycopg://h/db", {}, {}, 10),
        ("postgresql://h/db", {"DATABASE_CONNECT_TIMEOUT": 3}, {}, 3),
        ("mysql+pymysql://h/db", {}, {}, 10),
        ("mariadb+pymysql://h/db", {}, {}, 10),
        ("postgresql+psycopg://h/db", {"DATABASE_CONNECT_TIMEOUT": 0}, {}, None),
        ("postgresql+psycopg://h/db?connect_timeout=4", {}, {}, None),
        ("postgresql+psycopg://h/db", {}, {"connect_args": {"connect_timeout": 1}}, 1),
        ("sqlite:///a.db", {}, {}, None),
    ],
)
def test_connect_timeout(
    url: str, config: dict[str, t.Any], user: dict[str, t.Any], expected: int | None
) -> None:
    """None: the driver's own (or the URL's) timeout applies."""
    options = engine_options(url, config, user)
    assert (options.get("connect_args") or {}).get("connect_timeout") == expected


def test_user_engine_options_win_and_merge() -> None:
    options = engine_options(
        "postgresql+psycopg://h/db", {"DATABASE_POOL_SIZE": 5}, {"POOL_SIZE": 20, "echo": True}
    )
    assert options["pool_size"] == 20
    assert options["echo"] is True
    assert options["pool_pre_ping"] is True


@pytest.mark.usefixtures("clean_env")
class TestSQLite:
    def test_default_is_a_file_in_the_instance_folder(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        with app.app_context():
            assert sqla.engine.url.database == str(tmp_path / "instance" / "dbapp-dev.sqlite3")

    def test_testing_gets_its_own_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from flask_complete.settings import config

        monkeypatch.setattr(config, "_forced_worker", "")  # no pytest-xdist suffix
        app = make_app(tmp_path, env="testing")
        with app.app_context():
            assert sqla.engine.url.database == str(tmp_path / "instance" / "test_dbapp-dev.sqlite3")

    def test_relative_path_resolves_against_instance_whatever_the_cwd(
        self, tmp_path: Path, clean_env: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "settings.toml").write_text('[default]\nDATABASE_URL = "sqlite:///rel.db"\n')
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        clean_env.chdir(elsewhere)
        app = make_app(tmp_path)
        with app.app_context():
            assert sqla.engine.url.database == str(tmp_path / "instance" / "rel.db")

    def test_foreign_keys_enforced_and_wal(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        with app.app_context():
            sqla.create_all()
            assert sqla.session.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            sqla.session.add(Child(parent_id=42))
            with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
                sqla.session.commit()
            sqla.session.rollback()

    def test_in_memory_database(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI="sqlite://")
        with app.app_context():
            sqla.create_all()
            assert sqla.session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_server_pool_is_configured(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url" if kind == "postgres" else "mysql_url")
    (tmp_path / "settings.toml").write_text(
        f'[development]\nDATABASE_URL = "{url}"\nDATABASE_POOL_SIZE = 3\n'
        "DATABASE_MAX_OVERFLOW = 1\n"
    )
    app = make_app(tmp_path)
    with app.app_context():
        pool = sqla.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.size() == 3
        assert pool._max_overflow == 1
        assert pool._pre_ping is True
        assert pool._recycle == (280 if kind == "mysql" else 1800)
        sqla.create_all()
        sqla.session.add(Parent(id=1))
        sqla.session.commit()
        sqla.session.add(Child(parent_id=99))
        with pytest.raises(sa.exc.IntegrityError):
            sqla.session.commit()
        sqla.session.rollback()
        sqla.drop_all()


@pytest.mark.usefixtures("clean_env")
def test_production_on_postgres(pg_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECRET_KEY", secrets.token_urlsafe(40))
    clean_env.setenv("DATABASE_URL", pg_url.replace("postgresql+psycopg://", "postgres://"))
    app = make_app(tmp_path, env="production")
    with app.app_context():
        assert sqla.session.execute(sa.text("select 1")).scalar() == 1
        assert sqla.engine.url.drivername == "postgresql+psycopg"


@pytest.mark.usefixtures("clean_env")
def test_adopts_a_bound_instance(tmp_path: Path) -> None:
    own = SQLAlchemy(model_class=Base)
    app = Flask("bound", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///own.db"
    own.init_app(app)
    Complete(app, env="development", root=tmp_path)
    state = app.extensions["complete"]
    assert state.db is own and state.db_bound_before
    assert any("bound to the app before" in note for note in state.notes)
    with app.app_context():
        assert own.engine.url.database == str(tmp_path / "instance" / "own.db")
        own.create_all()
        own.session.add(Child(parent_id=7))
        with pytest.raises(sa.exc.IntegrityError):
            own.session.commit()


@pytest.mark.usefixtures("clean_env")
def test_different_instance_refused(tmp_path: Path) -> None:
    app = Flask("x", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    SQLAlchemy(app)
    with pytest.raises(RuntimeError, match="different SQLAlchemy instance"):
        Complete(app, db=SQLAlchemy(), env="development", root=tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_dataclass_models_work(tmp_path: Path) -> None:
    class DataBase(MappedAsDataclass, DeclarativeBase):
        pass

    # The bundle's class: Flask-SQLAlchemy 3.1.1's own refuses this base on SQLAlchemy 2.1.
    dc = flask_complete.SQLAlchemy(model_class=DataBase)

    class Item(dc.Model):
        id: Mapped[int] = mapped_column(primary_key=True, init=False)
        name: Mapped[str] = mapped_column(default="x")

    app = Flask("dc", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    Complete(app, db=dc, env="development", root=tmp_path)
    with app.app_context():
        dc.create_all()
        dc.session.add(Item(name="a"))
        dc.session.commit()
        assert dc.session.scalar(sa.select(Item.name)) == "a"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_connections(pg_url: str, tmp_path: Path) -> None:
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=pg_url)
    with app.app_context():
        parent_pid = sqla.session.execute(sa.text("select pg_backend_pid()")).scalar()
        sqla.session.remove()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                child = sqla.session.execute(sa.text("select pg_backend_pid()")).scalar()
                os.write(write, str(child).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        child_pid = int(os.read(read, 64))
        os.close(read)
        assert child_pid != parent_pid
        # The parent's pooled connection survives the child's exit.
        assert sqla.session.execute(sa.text("select pg_backend_pid()")).scalar() == parent_pid


# -- the README's model on every engine -----------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_app() -> str:
    """The README's first Python block (the app with its ``Note`` model), as written there."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = next(b for b in blocks if "class Note(db.Model)" in b)
    # A second model: a unique and an indexed plain `str`, which need a bounded type on MySQL.
    return found + textwrap.dedent(
        """

        class Tag(db.Model):
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str] = mapped_column(unique=True)
            group: Mapped[str] = mapped_column(index=True)
        """
    )


def _columns(url: str) -> dict[str, tuple[str, bool]]:
    """``{"note.title": ("VARCHAR(255)", nullable)}`` of the database at ``url``, as reflected."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        return {
            f"{table}.{c['name']}": (str(c["type"].compile(engine.dialect)), c["nullable"])
            for table in ("note", "tag")
            for c in inspector.get_columns(table)
            if c["name"] not in ("id",)
        }
    finally:
        engine.dispose()


def _store_longest_title(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO note (title) VALUES (:t)"), {"t": "é" * 255})
            return str(conn.execute(sa.text("SELECT title FROM note")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.usefixtures("clean_env")
def test_quickstart_model_on_every_engine(database_url: str, tmp_path: Path) -> None:
    """The README's `title: Mapped[str]` builds on SQLite, PostgreSQL and MariaDB, through
    create_all and through a migration, as a VARCHAR(255) that holds 255 characters (MariaDB
    refused an unbounded one: "VARCHAR requires a length")."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(quickstart_app())
    (project / "settings.toml").write_text("[default]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    env.update(FLASK_APP="app", DATABASE_URL=database_url, PYTHONPATH=path)

    def flask(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    url = normalize_url(database_url)
    wanted = {
        "note.title": ("VARCHAR(255)", False),
        "tag.name": ("VARCHAR(255)", False),
        "tag.group": ("VARCHAR(255)", False),
    }
    # No migrations folder: create_all.
    assert "create_all" in flask("db", "prepare")
    assert _columns(url) == wanted
    assert _store_longest_title(url) == "é" * 255
    flask("db", "drop", "--yes")
    # The README's path: init, then a migration.
    flask("complete", "init")
    flask("db", "create")
    flask("db", "migrate", "-m", "notes")
    flask("db", "upgrade")
    assert "matches the models" in flask("db", "check")
    assert _columns(url) == wanted
    assert _store_longest_title(url) == "é" * 255

"""The one gate of the test run judges the database a connection is really on, as the server (or
the filesystem) names it, never how its URL is spelled.

A development database holding a sentinel row is named through generated spellings (query
parameters, hosts, ports, sockets, ``PG*`` variables, percent-encoding, service files, links);
each time an app is built in the testing environment, as the pytest plugin builds it, and a
``transactional_db`` test empties every table it can reach. The sentinel row survives every time.
"""

from __future__ import annotations

import contextlib
import os
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import drop_database, new_database, require_server, unique_name
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, delete
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete
from flask_complete.database import stamp as dbenv
from flask_complete.settings.config import force_env
from flask_complete.testing import DatabaseRefused, TestDatabases, emptied_after


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Item(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


SENTINEL = "sentinel"
#: Under pytest-xdist every derived test database carries the worker's name.
WORKER = f"_{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else ""
#: Variables that choose a server or a database behind a URL's back.
CONNECTION_VARIABLES = ("PGDATABASE", "PGHOST", "PGPORT", "PGSERVICE", "PGSERVICEFILE", "PGUSER")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> t.Iterator[None]:
    """``values`` in ``os.environ`` for the block, and no other connection variable."""
    saved = {name: os.environ.get(name) for name in {*CONNECTION_VARIABLES, *values}}
    for name in CONNECTION_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_settings(root: Path, **sections: str) -> None:
    """``settings.toml`` with ``DATABASE_URL`` in each of ``sections`` (env -> URL)."""
    lines = []
    for env, url in sections.items():
        lines += [f"[{env}]", f"DATABASE_URL = {url!r}"]
    (root / "settings.toml").write_text("\n".join(lines) + "\n")


def run_emptying_test(root: Path, code_url: str | None = None, **kwargs: t.Any) -> str:
    """Build an app in testing as the plugin does and run a ``transactional_db`` test that
    deletes every row it sees, then end the run. ``"ran"``, or why it was refused."""
    from flask_complete.settings import config

    saved = config._forced_env, config._forced_worker
    force_env("testing", saved[1])
    try:
        app = Flask("gateapp", root_path=str(root), **kwargs)
        if code_url is not None:
            app.config["SQLALCHEMY_DATABASE_URI"] = code_url
        try:
            Complete(app, db=db, root=root)
        except Exception as e:  # a URL the bundle refuses outright is not a test that ran
            return f"init: {e}"
        databases = TestDatabases()
        outcome = "ran"
        try:
            databases.prepare(app)
            with app.app_context(), emptied_after(app):
                db.session.execute(delete(Item))
                db.session.commit()
        except DatabaseRefused as e:
            outcome = f"refused: {e}"
        except sa.exc.OperationalError as e:  # a spelling nothing answers on
            outcome = f"unreachable: {e}"
        finally:
            with contextlib.suppress(DatabaseRefused):
                databases.teardown()
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
        return outcome
    finally:
        # The run stays pinned as the plugin pinned it.
        config._forced_env, config._forced_worker = saved


def sentinel(url: str, connect_args: dict[str, t.Any] | None = None) -> tuple[list[str], t.Any]:
    """The rows of the development database and its stamp."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args or {})
    try:
        with engine.connect() as conn:
            rows = list(conn.execute(sa.text("SELECT name FROM item")).scalars())
        return rows, dbenv.read_stamp(url)
    finally:
        engine.dispose()


def make_development(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(50))")
            conn.exec_driver_sql(f"INSERT INTO item (id, name) VALUES (1, '{SENTINEL}')")
    finally:
        engine.dispose()


def _development(kind: str, socket_query: str) -> t.Iterator[dict[str, str]]:
    """An unstamped development database on the ``kind`` server with a sentinel row, and the
    server's socket (as the server reports it), dropped after with every test copy."""
    require_server(kind)
    name = unique_name("fc_dev")
    url = new_database(kind, name)
    make_development(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        socket = str(conn.exec_driver_sql(socket_query).scalar_one()).split(",")[0].strip()
    engine.dispose()
    try:
        yield {"name": name, "url": url, "socket": socket}
    finally:
        for each in (name, f"test_{name}", f"test_{name}{WORKER}"):
            drop_database(kind, each)


@pytest.fixture(scope="module")
def pg_dev() -> t.Iterator[dict[str, str]]:
    yield from _development("postgres", "SHOW unix_socket_directories")


@pytest.fixture(scope="module")
def mysql_dev() -> t.Iterator[dict[str, str]]:
    yield from _development("mysql", "SELECT @@socket")


# -- the reproductions of the issue ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "postgresql://postgres@127.0.0.1/?dbname={name}",
        "postgresql://postgres@127.0.0.1/test_x?dbname={name}",
    ],
)
def test_query_dbname_does_not_empty_the_development_database(
    pg_dev: dict[str, str], tmp_path: Path, spelling: str
) -> None:
    write_settings(tmp_path, development=spelling.format(name=pg_dev["name"]))
    outcome = run_emptying_test(tmp_path)
    assert sentinel(pg_dev["url"]) == ([SENTINEL], None), outcome
    # The test database is derived from the name the server reported.
    assert outcome == "ran"


@pytest.mark.filterwarnings("ignore:'db' is deprecated:DeprecationWarning")
@pytest.mark.parametrize("key", ["database", "db"])
def test_query_database_does_not_empty_the_development_database(
    mysql_dev: dict[str, str], tmp_path: Path, key: str
) -> None:
    write_settings(tmp_path, development=f"mysql://root@127.0.0.1/?{key}={mysql_dev['name']}")
    outcome = run_emptying_test(tmp_path)
    assert sentinel(mysql_dev["url"]) == ([SENTINEL], None), outcome
    assert outcome == "ran"


# -- the property: generated spellings ------------------------------------------------------------


@st.composite
def pg_spelling(draw: st.DrawFn, dev: dict[str, str]) -> tuple[str, dict[str, str], Path | None]:
    """A URL and environment variables that reach ``dev`` on the PostgreSQL server, and the
    service file to write (its text is in the variables under ``_service``)."""
    name = dev["name"]
    query: dict[str, str] = {}
    env: dict[str, str] = {}
    path = ""
    placement = draw(st.sampled_from(["path", "query", "environ", "service", "encoded"]))
    if placement == "path":
        path = name
    elif placement == "encoded":
        path = "".join(f"%{ord(c):02X}" if draw(st.booleans()) else c for c in name)
    elif placement == "query":
        path = draw(st.sampled_from(["", "test_x", "test_"]))
        query["dbname"] = name
    elif placement == "environ":
        env["PGDATABASE"] = name
    else:
        query["service"] = "fcdev"
        env["_service"] = f"[fcdev]\ndbname={name}\n"
    host = draw(st.sampled_from(["127.0.0.1", "localhost", "LocalHost", "query", "socket", ""]))
    authority = "postgres@"
    if host in ("127.0.0.1", "localhost", "LocalHost"):
        authority += host
    elif host == "query":
        query["host"] = "127.0.0.1"
    elif host == "socket":
        query["host"] = dev["socket"]
    else:
        env["PGHOST"] = draw(st.sampled_from(["127.0.0.1", dev["socket"]]))
    port = draw(st.sampled_from(["", "url", "query", "environ"]))
    if port == "url" and host in ("127.0.0.1", "localhost", "LocalHost"):
        authority += ":5432"
    elif port == "query":
        query["port"] = "5432"
    elif port == "environ":
        env["PGPORT"] = "5432"
    if draw(st.booleans()):
        query["application_name"] = "fc"
    items = list(query.items())
    draw(st.randoms()).shuffle(items)
    text = f"postgresql://{authority}/{path}"
    if items:
        text += "?" + urllib.parse.urlencode(items)
    return text, env, None


@st.composite
def mysql_spelling(draw: st.DrawFn, dev: dict[str, str]) -> tuple[str, dict[str, str], None]:
    name = dev["name"]
    query: dict[str, str] = {}
    path = ""
    placement = draw(st.sampled_from(["path", "database", "db", "both"]))
    if placement == "path":
        path = name
    elif placement == "both":
        path = draw(st.sampled_from(["test_x", "test_"]))
        query[draw(st.sampled_from(["database", "db"]))] = name
    else:
        path = draw(st.sampled_from(["", "test_x"]))
        query[placement] = name
    host = draw(st.sampled_from(["127.0.0.1", "localhost", "LOCALHOST", "query", "socket"]))
    authority = "root@"
    if host == "query":
        authority += "127.0.0.1"
        query["host"] = "127.0.0.1"
    elif host == "socket":
        authority += "localhost"
        query["unix_socket"] = dev["socket"]
    else:
        authority += host
    if draw(st.booleans()) and host != "socket":
        authority += ":3306"
    items = list(query.items())
    draw(st.randoms()).shuffle(items)
    text = f"mysql://{authority}/{path}"
    if items:
        text += "?" + urllib.parse.urlencode(items)
    return text, {}, None


def _server_property(
    dev: dict[str, str], spelling: tuple[str, dict[str, str], Path | None], where: str, root: Path
) -> None:
    url, env, _ = spelling
    service = env.pop("_service", None)
    if service is not None:
        service_file = root / "pg_service.conf"
        service_file.write_text(service)
        env["PGSERVICEFILE"] = str(service_file)
    code_url = None
    if where == "code":
        write_settings(root, development=dev["url"])
        code_url = url
    else:
        write_settings(root, **{where: url})
    with environment(env):
        outcome = run_emptying_test(root, code_url)
    assert sentinel(dev["url"]) == ([SENTINEL], None), (url, env, where, outcome)


PROPERTY = settings(
    max_examples=int(os.environ.get("GATE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@pytest.mark.filterwarnings("ignore:'db' is deprecated:DeprecationWarning")
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
@PROPERTY
@given(data=st.data(), where=st.sampled_from(["development", "testing", "code"]))
def test_development_database_survives_every_spelling(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    where: str,
    kind: str,
) -> None:
    dev = request.getfixturevalue(f"{'pg' if kind == 'postgres' else kind}_dev")
    spelling = pg_spelling if kind == "postgres" else mysql_spelling
    root = tmp_path_factory.mktemp("project")
    _server_property(dev, data.draw(spelling(dev)), where, root)


# -- SQLite: the file, whatever path names it -----------------------------------------------------


@st.composite
def sqlite_spelling(draw: st.DrawFn, real: Path, base: Path) -> str:
    """A path to the file ``real`` through links, dot segments and ``file:`` URIs, made under
    ``base`` (which the test empties between examples)."""
    kind = draw(st.sampled_from(["same", "dots", "folder_link", "file_link", "hard_link", "uri"]))
    name = draw(st.sampled_from([real.name, f"test_{real.name}", "test_x.sqlite3"]))
    if kind == "same":
        path = str(real)
    elif kind == "dots":
        path = f"{real.parent}/./../{real.parent.name}//{real.name}"
    elif kind == "folder_link":
        link = base / "linked"
        link.symlink_to(real.parent, target_is_directory=True)
        path = str(link / real.name)
    elif kind == "file_link":
        (base / name).symlink_to(real)
        path = str(base / name)
    elif kind == "hard_link":
        os.link(real, base / name)
        path = str(base / name)
    else:
        return f"sqlite:///file:{real}?uri=true"
    return f"sqlite:///{path}"


@pytest.mark.parametrize("inside", [True, False], ids=["in-project", "outside-project"])
@PROPERTY
@given(data=st.data(), where=st.sampled_from(["testing", "code"]))
def test_sqlite_development_file_survives_every_path(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, where: str, inside: bool
) -> None:
    """The development file, named through symlinks, hard links and dot segments, inside the
    project or outside it (where a temporary file would be a test database), under a test_
    name or not."""
    root = tmp_path_factory.mktemp("project")
    folder = root / "instance" if inside else tmp_path_factory.mktemp("elsewhere")
    folder.mkdir(exist_ok=True)
    real = folder / "dev.sqlite3"
    dev_url = f"sqlite:///{real}"
    make_development(dev_url)
    links = tmp_path_factory.mktemp("links")
    url = data.draw(sqlite_spelling(real, links))
    write_settings(root, development=dev_url, **({"testing": url} if where == "testing" else {}))
    outcome = run_emptying_test(root, url if where == "code" else None)
    assert sentinel(dev_url) == ([SENTINEL], None), (url, where, outcome)


# -- section 9: the production database, relative SQLite URLs --------------------------------------


def test_production_file_outside_the_project_is_protected(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """[production] and [testing] naming one SQLite file outside the project (where a
    temporary file would pass as a test database): the tests never get it."""
    root = tmp_path_factory.mktemp("project")
    prod = tmp_path_factory.mktemp("srv") / "prod.sqlite3"
    make_development(f"sqlite:///{prod}")
    write_settings(root, production=f"sqlite:///{prod}", testing=f"sqlite:///{prod}")
    outcome = run_emptying_test(root)
    assert sentinel(f"sqlite:///{prod}") == ([SENTINEL], None), outcome
    # The tests ran on a test_ copy beside it.
    assert outcome == "ran"


def test_relative_production_url_is_resolved_in_the_instance_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A relative production SQLite URL names a file in the instance folder, as the app opens
    it: a testing URL naming that file is refused, wherever the tests run from."""
    root = tmp_path_factory.mktemp("project")
    instance = tmp_path_factory.mktemp("instance")
    prod = instance / "prod.sqlite3"
    make_development(f"sqlite:///{prod}")
    write_settings(root, production="sqlite:///prod.sqlite3", testing=f"sqlite:///{prod}")
    outcome = run_emptying_test(root, instance_path=str(instance))
    assert sentinel(f"sqlite:///{prod}") == ([SENTINEL], None), outcome
    assert outcome == "ran"


def test_a_test_database_stamped_development_is_refused(
    pg_dev: dict[str, str], tmp_path: Path
) -> None:
    """A test_ name is not enough: a database that records development is refused."""
    name = unique_name()
    url = new_database("postgres", name)
    try:
        make_development(url)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            dbenv.stamp(conn, "development")
        engine.dispose()
        # Named in code: used as it is (a [testing] URL gets a per-worker copy under xdist).
        write_settings(tmp_path)
        outcome = run_emptying_test(tmp_path, url)
        assert outcome.startswith("refused") and "development" in outcome, outcome
        assert sentinel(url) == ([SENTINEL], "development")
    finally:
        drop_database("postgres", name)

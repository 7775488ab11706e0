"""A PostgreSQL restart under load, on an instance this test starts itself (never the shared
server): a temporary cluster on a spare loopback port, made with Debian's ``initdb``/``pg_ctl``
(run as the ``postgres`` user when the tests run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REQUIRE, free_port, poll
from test_faults import Writers, _stored, _table, serve


class Cluster(t.NamedTuple):
    url: str
    ctl: t.Callable[..., None]


def _binaries() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(Path(folder, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh PostgreSQL cluster on a free port; stopped and deleted after the test."""
    binaries = _binaries()
    if binaries is None:
        reason = "PostgreSQL's initdb and pg_ctl are not installed (Debian: postgresql)"
        if REQUIRE:
            pytest.fail(f"{reason} (REQUIRE_TEST_SERVERS=1: servers are required)")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="fc-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root: the cluster belongs to the postgres user.
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    def ctl(*args: str) -> None:
        # -l: the server's output never holds this process's pipes open.
        log = str(folder / "server.log")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", log, "-w", "-t", "30", *args)

    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        ctl("-o", options, "start")
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE faults"))
        admin.dispose()
        yield Cluster(f"postgresql+psycopg://postgres@127.0.0.1:{port}/faults", ctl)
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_a_restart_under_load_loses_no_acknowledged_write(cluster: Cluster, tmp_path: Path) -> None:
    _table(cluster.url)
    with serve(tmp_path, cluster.url, "postgres") as (port, _), Writers(port, threads=3) as load:
        poll(lambda: load.count(status=201) >= 30, 20, "30 writes before the restart")
        cluster.ctl("-m", "fast", "restart")  # returns once the server accepts connections
        after = time.monotonic()
        poll(lambda: load.count(since=after) >= 60, 30, "60 requests after the restart")
    later = [r for r in load.results if r.start >= after]
    assert [r.status for r in later if r.status != 201] == []
    acknowledged = {r.name for r in load.results if r.status == 201}
    assert acknowledged <= _stored(cluster.url)
    assert len(acknowledged) >= 90

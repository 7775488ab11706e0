"""What the benchmarks that serve an app share: a free loopback port, waiting for gunicorn to
boot its workers, and stopping it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import typing as t
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    return False


def wait_booted(
    proc: subprocess.Popen[t.Any], port: int, log: Path, workers: int, timeout: float, what: str
) -> None:
    """Until gunicorn on ``port`` answers and its log shows ``workers`` booted workers."""
    deadline = time.monotonic() + timeout
    while not (answers(port) and log.read_text().count("Booting worker") >= workers):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start:\n{log.read_text()}")
        time.sleep(0.05)  # polling interval


def stop(proc: subprocess.Popen[t.Any], timeout: float = 10) -> None:
    """Terminate ``proc``; kill it if it has not exited in ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

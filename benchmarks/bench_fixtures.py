"""Data fixtures: ``flask db dump`` / ``flask db load`` against Django's ``dumpdata`` /
``loaddata`` on the same rows and schema.

The example app's models (notebooks and their notes) are filled with ``--rows`` rows (1 notebook
per 100 notes), and a Django app whose models mirror them (same columns, types and foreign key)
gets the very same rows, in the same database. Each phase runs in a fresh process (set-up not
timed): dump every row to a JSON file, then empty the tables and load the file back. Memory is the
growth of the peak resident set of that process during the phase (Linux: ``/proc/self/status``
``VmHWM`` after ``clear_refs``). Targets: load >= 3x faster than ``loaddata``, dump >= 2x faster
than ``dumpdata``, and less than 100 MB of peak memory growth at 100,000 rows (streaming).

Run: ``python benchmarks/bench_fixtures.py [--rows 100000] [--no-postgres]``, with Django
installed (the ``bench-fixtures`` dependency group). PostgreSQL: ``TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432``); a database is created and dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
SECRET = "bE7kQ2vN9xL4mP1sR8tW3yZ6aC0dF5gH2jK7lM4nP9qR6sT3uV0wX8yZ1aB5cD2e"
PER_NOTEBOOK = 100

DJANGO_MODELS = """
from django.db import models


class Notebook(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        db_table = "dj_notebook"


class Note(models.Model):
    notebook = models.ForeignKey(Notebook, on_delete=models.CASCADE, db_index=True)
    title = models.CharField(max_length=200)
    body = models.TextField(default="")
    created_at = models.DateTimeField()

    class Meta:
        db_table = "dj_note"
"""


# -- memory ---------------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Peak:
    """Peak resident memory growth of this process inside the block, in bytes."""

    def __enter__(self) -> Peak:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.before = _status("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.growth = max(_status("VmHWM") - self.before, 0)


# -- the two sides (each in its own process) ------------------------------------------------------


def _our_app(url: str) -> tuple[object, object]:
    sys.path.insert(0, str(ROOT))
    os.environ["FLASK_ENV"] = "development"
    from example_app import create_app
    from flask_complete import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET})
    return app, db


def _django(url: str, folder: str) -> None:
    sys.path.insert(0, folder)
    import django
    from django.conf import settings

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.database}
    else:
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.database,
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.host or "",
            "PORT": str(parsed.port or ""),
        }
    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=["djbench"],
        USE_TZ=False,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def phase(name: str, url: str, folder: str) -> dict[str, float]:
    """Run one timed phase; its seconds and peak memory growth."""
    work = Path(folder)
    if name.startswith("ours"):
        app, db = _our_app(url)
        from flask_complete.data import fixtures as datafixtures

        path = work / "ours.json"
        with app.app_context():  # type: ignore[attr-defined]
            if name == "ours-dump":
                with path.open("w", encoding="utf-8") as stream, Peak() as peak:
                    datafixtures.dump(app, stream, ["Notebook", "Note"])  # type: ignore[arg-type]
            else:
                with db.engine.begin() as conn:  # type: ignore[attr-defined]
                    conn.execute(sa.text("DELETE FROM note"))
                    conn.execute(sa.text("DELETE FROM notebook"))
                with Peak() as peak:
                    datafixtures.load(app, [path])  # type: ignore[arg-type]
        return {"seconds": peak.seconds, "growth": peak.growth}
    _django(url, folder)
    from django.core.management import call_command
    from django.db import connection

    path = work / "django.json"
    if name == "django-dump":
        with Peak() as peak:
            call_command("dumpdata", "djbench", output=str(path), verbosity=0)
    else:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM dj_note")
            cursor.execute("DELETE FROM dj_notebook")
        with Peak() as peak:
            call_command("loaddata", str(path), verbosity=0)
    return {"seconds": peak.seconds, "growth": peak.growth}


# -- set-up and report ----------------------------------------------------------------------------


def fill(url: str, folder: str, rows: int) -> None:
    """Create both schemas and put the same rows in both (not timed)."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import bench_fixtures as b
        app, db = b._our_app({url!r})
        with app.app_context():
            db.create_all()
        b._django({url!r}, {folder!r})
        from django.core.management import call_command
        call_command("migrate", run_syncdb=True, verbosity=0)
        b._rows({url!r}, {rows})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _rows(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    notebooks = max(rows // (PER_NOTEBOOK + 1), 1)
    notes = rows - notebooks
    when = dt.datetime(2024, 1, 1, 12, 0, 0)
    with engine.begin() as conn:
        for table in ("notebook", "dj_notebook"):
            conn.execute(
                sa.text(f"INSERT INTO {table} (id, name) VALUES (:id, :name)"),
                [{"id": i, "name": f"Notebook {i}"} for i in range(1, notebooks + 1)],
            )
        for table, fk in (("note", "notebook_id"), ("dj_note", "notebook_id")):
            batch = []
            for i in range(1, notes + 1):
                batch.append(
                    {
                        "id": i,
                        "nb": (i % notebooks) + 1,
                        "title": f"Note {i}",
                        "body": f"Body of note {i}, with some words to carry. " * 2,
                        "at": when + dt.timedelta(seconds=i),
                    }
                )
                if len(batch) == 10_000 or i == notes:
                    conn.execute(
                        sa.text(
                            f"INSERT INTO {table} (id, {fk}, title, body, created_at) "
                            "VALUES (:id, :nb, :title, :body, :at)"
                        ),
                        batch,
                    )
                    batch = []
    engine.dispose()


def run_phase(name: str, url: str, folder: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--url", url, "--folder", folder],
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def bench(label: str, url: str, rows: int) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "djbench"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "models.py").write_text(DJANGO_MODELS)
        fill(url, folder, rows)
        found = {
            name: run_phase(name, url, folder)
            for name in ("ours-dump", "django-dump", "ours-load", "django-load")
        }
    lines = []
    for what, target in (("dump", 2.0), ("load", 3.0)):
        ours, theirs = found[f"ours-{what}"], found[f"django-{what}"]
        ratio = theirs["seconds"] / ours["seconds"]
        lines.append(
            f"{label:<10} {what:<4}  flask_complete {rows / ours['seconds']:>9,.0f} rows/s "
            f"{ours['growth'] / 2**20:>6.1f} MB   Django {rows / theirs['seconds']:>9,.0f} rows/s "
            f"{theirs['growth'] / 2**20:>6.1f} MB   {ratio:>5.1f}x faster "
            f"(target >= {target:.0f}x: {'ok' if ratio >= target else 'MISSED'}; memory "
            f"{'ok' if ours['growth'] < 100 * 2**20 else 'MISSED'})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url, args.folder)))
        return
    try:
        import django  # noqa: F401
    except ImportError:
        sys.exit("Django is needed for the comparison: install the bench-fixtures group.")
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        lines += bench("SQLite", f"sqlite:///{Path(folder) / 'bench.sqlite3'}", args.rows)
    if not args.no_postgres:
        name = f"bench_fixtures_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            lines += bench("PostgreSQL", f"{POSTGRES}/{name}", args.rows)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"{args.rows:,} rows (notebooks and notes), each phase in its own process")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()

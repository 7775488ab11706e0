"""Seeds: the rows a database of an environment starts with, run by ``flask db seed``/``prepare``.

The ``SEEDS`` setting names a callable (``"myapp.seeds:run"``), a module with a ``run()``
function, or a list of them, per environment (``[development]`` sample data, ``[production]``
only essential rows). They run in one transaction that this module commits at the end: an error
half-way leaves the database as it was. Write them idempotent, e.g. with :func:`get_or_create`.
"""

from __future__ import annotations

import sys
import typing as t
from collections.abc import Callable, Iterable, Iterator

import click
import sqlalchemy as sa
from sqlalchemy import event

from .migrations.migrate import import_string
from .state import get_state

if t.TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

T = t.TypeVar("T")
M = t.TypeVar("M")
#: Fewer items than this never show a progress bar.
PROGRESS_THRESHOLD = 50


def resolve(app: Flask) -> list[Callable[[], t.Any]]:
    """The callables named by the ``SEEDS`` setting of ``app`` (empty when it has none)."""
    setting = app.config.get("SEEDS") or []
    items = setting if isinstance(setting, list | tuple) else [setting]
    found = []
    for item in items:
        if isinstance(item, str):
            target = import_string(item, "SEEDS")
            if not callable(target):
                target = getattr(target, "run", None)
                if not callable(target):
                    raise click.ClickException(
                        f"SEEDS = {item!r} names a module without a run() function. Add one, or "
                        'name the function: SEEDS = "package.module:function".'
                    )
            found.append(target)
        elif callable(item):
            found.append(item)
        else:
            raise click.ClickException(
                f'SEEDS = {item!r} is not a seed: use "package.module:function" or a list of them.'
            )
    return found


def _commit_refused(name: str) -> Callable[[t.Any], None]:
    def before_commit(session: t.Any) -> None:
        raise click.ClickException(
            f"The seed {name} called db.session.commit(). Seeds run in one transaction that "
            "flask_complete commits at the end; remove the commit (db.session.flush() gives ids)."
        )

    return before_commit


def count_rows(sqla: SQLAlchemy) -> dict[str, int]:
    """Rows per table of the models' tables that exist, in every database, inside the current
    session."""
    session = sqla.session
    counts: dict[str, int] = {}
    for key, metadata in sqla.metadatas.items():
        if key not in sqla.engines:
            continue  # models of a bind the app does not configure
        # A new dict each time: SQLAlchemy pops "bind" out of it.
        bind = sqla.engines[key]
        connection = session.connection(bind_arguments={"bind": bind})
        present = set(sa.inspect(connection).get_table_names())
        for table in metadata.sorted_tables:
            if table.name in present:
                query = sa.select(sa.func.count()).select_from(table)
                found = session.execute(query, bind_arguments={"bind": bind}).scalar_one()
                counts[table.name] = found
    return counts


def run(app: Flask) -> dict[str, int] | None:
    """Run the seeds of ``app`` in one transaction; rows added per table, or ``None`` when the
    ``SEEDS`` setting is empty. Call it inside an app context."""
    seeds = resolve(app)
    if not seeds:
        return None
    sqla = get_state(app).db
    assert sqla is not None
    session = sqla.session()
    before = count_rows(sqla)
    try:
        for seed in seeds:
            guard = _commit_refused(getattr(seed, "__qualname__", repr(seed)))
            event.listen(session, "before_commit", guard)
            try:
                seed()
                session.flush()
            finally:
                event.remove(session, "before_commit", guard)
        after = count_rows(sqla)
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return {name: after.get(name, 0) - before.get(name, 0) for name in after}


def get_or_create(model: type[M], defaults: dict[str, t.Any] | None = None, **keys: t.Any) -> M:
    """The ``model`` row matching ``keys``, created (with ``defaults``) and flushed if missing:
    the building block of an idempotent seed."""
    session = get_state().db.session  # type: ignore[union-attr]
    found = session.execute(sa.select(model).filter_by(**keys)).scalars().first()
    if found is not None:
        return found
    obj = model(**keys, **(defaults or {}))
    session.add(obj)
    session.flush()
    return obj


def progress(items: Iterable[T], label: str, length: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a click progress bar when standard output is a terminal and there
    are many of them."""
    if length is None:
        length = len(items) if isinstance(items, t.Sized) else None
    if length is None or length < PROGRESS_THRESHOLD or not sys.stdout.isatty():
        yield from items
        return
    with click.progressbar(items, length=length, label=label) as bar:
        yield from bar


def create_batch(
    factory: t.Any, size: int, label: str | None = None, **kwargs: t.Any
) -> list[t.Any]:
    """``factory.create_batch(size, **kwargs)`` with a progress bar on a terminal."""
    name = label or getattr(getattr(factory._meta, "model", None), "__name__", "rows")
    return [factory.create(**kwargs) for _ in progress(range(size), f"seeding {name}")]

"""factory-boy factories bound to the current app's database session, found on each create.

Define factories at import time, before any app exists::

    from flask_complete.factories import ModelFactory

    class NoteFactory(ModelFactory):
        class Meta:
            model = Note

        title = factory.Sequence(lambda n: f"Note {n}")

Objects are flushed, not committed: they get their ids, and the test's rollback or the seed's
transaction decides whether they stay. One call flushes once: ``create()`` with its
sub-factories and related factories, and ``create_batch()``, write their rows together when the
call returns, or earlier where a declaration reads a key the database gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import typing as t
import weakref
from collections.abc import Iterator

from factory import enums
from factory.alchemy import SQLAlchemyModelFactory
from flask import current_app

if t.TYPE_CHECKING:
    from sqlalchemy.orm import Session, scoped_session

__all__ = ["ModelFactory", "current_session"]


def current_session() -> scoped_session[t.Any]:
    """The session of the current app's database (the one the pytest plugin isolates)."""
    if not current_app:
        raise RuntimeError(
            "A factory needs an app context to find the database session: create objects "
            "inside `with app.app_context():` (the pytest plugin pushes one for each test)."
        )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get("complete")
    sqla = state.db if state is not None else app.extensions.get("sqlalchemy")
    if sqla is None:
        raise RuntimeError(
            "The current app has no database: add Complete(app) (or bind Flask-SQLAlchemy)."
        )
    return t.cast("scoped_session[t.Any]", sqla.session)


class ModelFactory(SQLAlchemyModelFactory):
    """Abstract base for model factories: the current app's session, objects flushed once per
    call (``sqlalchemy_session_persistence = "flush"``; ``None`` or ``"commit"`` in a factory's
    ``Meta`` give factory-boy's own behaviour)."""

    class Meta:
        abstract = True
        sqlalchemy_session_factory = current_session
        sqlalchemy_session_persistence = "flush"

    @classmethod
    def _generate(cls, strategy: str, params: dict[str, t.Any]) -> t.Any:
        generate = super()._generate
        if strategy != enums.CREATE_STRATEGY:
            return generate(strategy, params)  # type: ignore[no-untyped-call]
        with _one_flush():
            return generate(strategy, params)  # type: ignore[no-untyped-call]

    @classmethod
    def create_batch(cls, size: int, **kwargs: t.Any) -> list[t.Any]:
        """``size`` objects, written in one flush."""
        with _one_flush():
            return super().create_batch(size, **kwargs)

    @classmethod
    def _save(cls, model_class: type[t.Any], session: Session, args: t.Any, kwargs: t.Any) -> t.Any:
        call = _call.get()
        meta: t.Any = cls._meta
        if (
            call is None
            or meta.sqlalchemy_session_persistence != "flush"
            # factory-boy's get-or-create recovers from an IntegrityError raised right here.
            or meta.sqlalchemy_get_or_create
        ):
            return super()._save(model_class, session, args, kwargs)  # type: ignore[no-untyped-call]
        obj = model_class(*args, **kwargs)
        session.add(obj)
        call.defer(session, obj)
        return obj


# -- one flush per call ---------------------------------------------------------------------------


class _Call:
    """The objects a factory call has added and not flushed yet, by session."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        #: id(obj) -> obj: what a read of an unset attribute flushes first.
        self.pending: dict[int, t.Any] = {}

    def defer(self, session: Session, obj: t.Any) -> None:
        if session not in self.sessions:
            self.sessions.append(session)
        self.pending[id(obj)] = obj
        _watch(type(obj))

    def flush(self) -> None:
        self.pending.clear()
        for session in self.sessions:
            session.flush()


_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "flask_complete_factory_call", default=None
)


@contextlib.contextmanager
def _one_flush() -> Iterator[None]:
    """The outermost factory call flushes what it and the calls inside it added, on return."""
    if _call.get() is not None:
        yield
        return
    call = _Call()
    token = _call.set(call)
    try:
        yield
    finally:
        _call.reset(token)
    # Not after an error: what was added stays in the session, as it did when each object was
    # flushed on its own, and the error is the caller's to see.
    call.flush()


#: Mapped classes whose unset scalar attributes flush a pending factory object when read.
_watched: weakref.WeakSet[type[t.Any]] = weakref.WeakSet()


def _watch(cls: type[t.Any]) -> None:
    """Make a read of a key, default or many-to-one attribute of ``cls`` that is unset on an
    object a factory call has not flushed yet flush it first, as it was flushed before: a
    ``LazyAttribute`` reading ``obj.author.id``, a post-generation hook reading ``obj.id``."""
    if cls in _watched:
        return
    from sqlalchemy import event, inspect
    from sqlalchemy.orm import ColumnProperty, RelationshipProperty

    _watched.add(cls)
    for prop in inspect(cls).attrs:
        scalar = isinstance(prop, ColumnProperty) or (
            isinstance(prop, RelationshipProperty) and not prop.uselist
        )
        if scalar:
            attribute = getattr(cls, prop.key)
            event.listen(attribute, "init_scalar", _flush_on_read(prop.key), retval=True)


def _flush_on_read(key: str) -> t.Callable[[t.Any, t.Any, t.Any], t.Any]:
    def read_unset(target: t.Any, value: t.Any, dict_: t.Any) -> t.Any:
        call = _call.get()
        if call is None or id(target) not in call.pending:
            return value
        from sqlalchemy import inspect

        state = inspect(target)
        session = state.session
        if session is None or state.key is not None or getattr(session, "_flushing", False):
            return value
        call.flush()
        # Persistent now: the flush filled the keys and defaults, a lazy load does the rest.
        return getattr(target, key) if state.key is not None else value

    return read_unset

"""The connection that stands in for an engine while a test runs in one outer transaction.

Flask-SQLAlchemy's session finds its bind in ``db.engines``, so per-test isolation puts a
connection there, and ``db.engine`` is that connection during the test. App code written for an
engine (``db.engine.url``, ``.name``, ``connect()``, ``begin()``, ``dispose()``,
``repr(db)``) must work there as in production: :class:`EngineConnection` is a real
:class:`~sqlalchemy.engine.Connection` (the session joins it with SAVEPOINTs) that also answers
as its engine, and whose ``connect()`` and ``begin()`` open SAVEPOINTs inside the test's
transaction instead of new transactions.

What the isolation sends is kept to what its guarantees need (see :func:`connect`): the
connection of an engine is checked out (and pinged) once for the run and reused by every test,
``RELEASE SAVEPOINT`` is not sent, and neither is a ``ROLLBACK TO SAVEPOINT`` right before the
test's rollback.
"""

from __future__ import annotations

import contextlib
import functools
import typing as t
import weakref
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, NestedTransaction

if t.TYPE_CHECKING:
    from sqlalchemy.pool import PoolProxiedConnection


class EngineConnection(Connection):
    """A connection in the test's outer transaction that answers as its :class:`Engine`."""

    #: Set at the end of the test: its rollback follows, so savepoints need no SQL of their own.
    ending = False

    def __getattr__(self, name: str) -> t.Any:
        # What an Engine has and a Connection lacks: url, name, driver, pool, echo, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.engine, name)

    def connect(self) -> JoinedConnection:
        """Like :meth:`Engine.connect`: a connection inside the test's transaction, whose
        ``commit()`` keeps its work in the test and whose ``close()`` drops what it did not
        commit."""
        return JoinedConnection(self)

    @contextlib.contextmanager
    def begin(self) -> Iterator[JoinedConnection]:  # type: ignore[override]
        """Like :meth:`Engine.begin`: committed (into the test's transaction) at the end of the
        block, rolled back on an error."""
        with self.connect() as connection, connection.begin():
            yield connection

    def begin_outer(self) -> t.Any:
        """Start the test's outer transaction (``Connection.begin``)."""
        return Connection.begin(self)

    def dispose(self, close: bool = True) -> None:
        """Nothing to close while the test holds the connection: the pool is disposed after."""

    def _release_savepoint_impl(self, name: str) -> None:
        # Not sent. SQLAlchemy never rolls back to a savepoint it has released, and what was done
        # in it stays in the enclosing transaction either way: a ROLLBACK TO an older savepoint,
        # or the test's rollback, undoes it with or without the RELEASE. (The event still fires.)
        if self._has_events or self.engine._has_events:
            self.dispatch.release_savepoint(self, name, None)

    def _rollback_to_savepoint_impl(self, name: str) -> None:
        if not self.ending:
            super()._rollback_to_savepoint_impl(name)
        elif self._has_events or self.engine._has_events:
            self.dispatch.rollback_savepoint(self, name, None)

    def __repr__(self) -> str:
        return f"EngineConnection({self.engine.url!r})"


class JoinedConnection:
    """What :meth:`EngineConnection.connect` returns: the test's connection, each transaction a
    SAVEPOINT (2.0 style: work autobegins one; ``commit()`` releases it)."""

    def __init__(self, connection: EngineConnection) -> None:
        self._connection = connection
        self._savepoint: NestedTransaction | None = None

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._connection, name)

    def _autobegin(self) -> None:
        if self._savepoint is None or not self._savepoint.is_active:
            self._savepoint = self._connection.begin_nested()

    def execute(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self._autobegin()
        return self._connection.execute(*args, **kwargs)

    def exec_driver_sql(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self._autobegin()
        return self._connection.exec_driver_sql(*args, **kwargs)

    def scalar(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self._autobegin()
        return self._connection.scalar(*args, **kwargs)

    def scalars(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self._autobegin()
        return self._connection.scalars(*args, **kwargs)

    @contextlib.contextmanager
    def begin(self) -> Iterator[JoinedConnection]:
        """A transaction of this connection: a SAVEPOINT, released at the end of the block."""
        self._autobegin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def commit(self) -> None:
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.commit()
        self._savepoint = None

    def rollback(self) -> None:
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()
        self._savepoint = None

    def close(self) -> None:
        self.rollback()

    @property
    def closed(self) -> bool:
        return self._connection.closed

    def __enter__(self) -> JoinedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the connection of a run ----------------------------------------------------------------------


class _Kept:
    """The pool connection an engine keeps checked out between tests, as pytest-django keeps
    Django's: each test wraps it in a new :class:`EngineConnection` (nothing a test sets on
    ``db.engine``, listeners or options, reaches the next), and it is pinged only when checked
    out, not once per test. Lost (invalidated) or disposed with its engine, it is replaced."""

    def __init__(self) -> None:
        self.connection: PoolProxiedConnection | None = None
        #: The test's connection on it, while a test runs.
        self.lent: EngineConnection | None = None

    def lend(self, engine: Engine) -> EngineConnection:
        """A connection for one test, given back with :meth:`give_back`."""
        if self.lent is not None:  # two isolations of one engine at once: a connection each
            return EngineConnection(engine)
        if self.connection is None or not self.connection.is_valid:
            self.release()
            self.connection = engine.raw_connection()
        # A second checkout of the same pool connection: closing the test's Connection gives it
        # back to this holder, not to the pool (no reset now, no ping next time).
        self.connection._checkout_existing()
        self.lent = EngineConnection(engine, connection=self.connection)
        return self.lent

    def give_back(self, conn: Connection, keep: bool) -> None:
        """``conn``'s test is over; ``keep`` false drops the connection (the test ended the
        outer transaction itself, or its rollback failed: its state is unknown)."""
        conn.close()
        if conn is self.lent:
            self.lent = None
            if not keep or (self.connection is not None and not self.connection.is_valid):
                self.release()

    def release(self) -> None:
        """Take the connection out of the pool and close it (when its test is done, if one is
        running)."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if connection.is_valid:
            connection.detach()
        connection.close()


_kept: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()


@functools.cache
def _lendable() -> bool:
    """Whether this SQLAlchemy's pool connections can be checked out twice (else each test
    checks one out of the pool)."""
    from sqlalchemy.pool.base import _ConnectionFairy

    return hasattr(_ConnectionFairy, "_checkout_existing")


def _keeper(engine: Engine) -> _Kept | None:
    kept = _kept.get(engine)
    if kept is None and _lendable():
        kept = _kept[engine] = _Kept()
        # Disposing the engine (as before its test database is dropped) closes the connection;
        # so does the engine going away.
        event.listen(engine, "engine_disposed", lambda _: kept.release())
        weakref.finalize(engine, kept.release)
    return kept


def connect(engine: Engine) -> Connection:
    """The test's connection to ``engine``: an :class:`EngineConnection` on the connection the
    engine keeps for tests (a plain connection should SQLAlchemy's ``Connection(engine)``
    constructor ever change)."""
    try:
        kept = _keeper(engine)
        return kept.lend(engine) if kept is not None else EngineConnection(engine)
    except TypeError:
        return engine.connect()


def begin_outer(connection: Connection) -> t.Any:
    """Begin the test's outer transaction on ``connection``."""
    if isinstance(connection, EngineConnection):
        return connection.begin_outer()
    return connection.begin()


def ending(connection: Connection) -> None:
    """Say that the test's rollback comes next: its sessions' savepoints end without SQL."""
    if isinstance(connection, EngineConnection):
        connection.ending = True


def close(connection: Connection, outer: t.Any) -> None:
    """End the test on ``connection``: roll its outer transaction back and give the connection
    back to its engine's keeper."""
    kept = _kept.get(connection.engine) if isinstance(connection, EngineConnection) else None
    rolled_back = False
    try:
        if outer is not None and outer.is_active:
            outer.rollback()
            rolled_back = True
    finally:
        if kept is not None:
            kept.give_back(connection, keep=rolled_back)
        else:
            connection.close()

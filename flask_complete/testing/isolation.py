"""The connection that stands in for an engine while a test runs in one outer transaction.

Flask-SQLAlchemy's session finds its bind in ``db.engines``, so per-test isolation puts a
connection there, and ``db.engine`` is that connection during the test. App code written for an
engine (``db.engine.url``, ``.name``, ``connect()``, ``begin()``, ``dispose()``,
``repr(db)``) must work there as in production: :class:`EngineConnection` is a real
:class:`~sqlalchemy.engine.Connection` (the session joins it with SAVEPOINTs) that also answers
as its engine, and whose ``connect()`` and ``begin()`` open SAVEPOINTs inside the test's
transaction instead of new transactions.
"""

from __future__ import annotations

import contextlib
import typing as t
from collections.abc import Iterator

from sqlalchemy.engine import Connection, Engine, NestedTransaction


class EngineConnection(Connection):
    """A connection in the test's outer transaction that answers as its :class:`Engine`."""

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


def connect(engine: Engine) -> Connection:
    """A connection of ``engine`` that also answers as the engine (a plain connection should
    SQLAlchemy's ``Connection(engine)`` constructor ever change)."""
    try:
        return EngineConnection(engine)
    except TypeError:
        return engine.connect()


def begin_outer(connection: Connection) -> t.Any:
    """Begin the test's outer transaction on ``connection``."""
    if isinstance(connection, EngineConnection):
        return connection.begin_outer()
    return connection.begin()

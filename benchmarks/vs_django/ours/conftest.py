"""With BENCH_SQL_LOG set (a file path), record every test's SQL statements (cursor executes)
and the round trips beside them (DBAPI commit and rollback, the pool's pre-ping), as JSON. (The
pool's rollback when a connection is returned is left out: after the test's rollback the
connection is idle, and neither driver sends anything then.)"""

from __future__ import annotations

import json
import os
import typing as t
from collections.abc import Iterator

import pytest

LOG = os.environ.get("BENCH_SQL_LOG")
found: dict[str, list[list[str]]] = {}
current: list[list[str]] | None = None


def note(kind: str, text: str) -> None:
    if current is not None:
        current.append([kind, " ".join(text.split())])


if LOG:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.engine.default import DefaultDialect

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        note("sql", statement)

    @event.listens_for(Engine, "commit")
    def _commit(conn: t.Any) -> None:
        note("dbapi", "commit()")

    @event.listens_for(Engine, "rollback")
    def _rollback(conn: t.Any) -> None:
        note("dbapi", "rollback()")

    ping = DefaultDialect._do_ping_w_event

    def _ping(self: t.Any, dbapi_connection: t.Any) -> bool:
        note("dbapi", "pool checkout: pre-ping (SELECT 1)")
        return ping(self, dbapi_connection)

    DefaultDialect._do_ping_w_event = _ping  # type: ignore[method-assign]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        global current
        current = found.setdefault(item.nodeid, [])
        yield
        current = None

    def pytest_sessionfinish(session: pytest.Session) -> None:
        with open(LOG, "w", encoding="utf-8") as stream:
            json.dump(found, stream)

"""With BENCH_SQL_LOG set (a file path), record every test's SQL statements (through
connection.execute_wrapper) and the DBAPI-level commits and rollbacks beside them, as JSON."""

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


def _statement(execute: t.Callable[..., t.Any], sql: str, *args: t.Any) -> t.Any:
    note("sql", sql)
    return execute(sql, *args)


if LOG:
    from django.db.backends.base.base import BaseDatabaseWrapper

    def _counted(name: str) -> None:
        original = getattr(BaseDatabaseWrapper, name)

        def wrapper(self: t.Any) -> t.Any:
            if self.connection is not None:
                note("dbapi", f"{name.strip('_')}()")
            return original(self)

        setattr(BaseDatabaseWrapper, name, wrapper)

    _counted("_commit")
    _counted("_rollback")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        from django.db import connection

        global current
        current = found.setdefault(item.nodeid, [])
        with connection.execute_wrapper(_statement):
            yield
        current = None

    def pytest_sessionfinish(session: pytest.Session) -> None:
        with open(LOG, "w", encoding="utf-8") as stream:
            json.dump(found, stream)

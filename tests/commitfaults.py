"""Real backend kills at a chosen point of a request's write, for the commit-fault tests.

A request names the point in its ``X-Kill-At`` header; the hooks installed by :func:`install`
end that request's own server connection there, through a separate admin connection
(``pg_terminate_backend`` on PostgreSQL, ``KILL`` on MariaDB), and wait until the server has
ended it. Nothing is mocked: the driver meets a dead connection as it would after a failover.

- ``query``: the first connection the request checks out (after the pool's pre-ping);
- ``flush``: the session's connection, before the INSERTs are sent;
- ``commit``: the connection about to send COMMIT (the writes are sent, not committed);
- ``after-commit``: the connection that committed, and every connection the request checks out
  after the commit (after the pool's pre-ping, as a kill landing between ping and query would).

:func:`add_readback` adds a view that answers from expired attributes after its commit;
:func:`create` builds the example app with both for gunicorn (``FAULT_ADMIN_URL`` names the
admin connection).
"""

from __future__ import annotations

import os
import threading
import time
import typing as t

import sqlalchemy as sa
from flask import Flask, has_request_context, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event

POINTS = ("none", "query", "flush", "commit", "after-commit")
HEADER = "X-Kill-At"
_STATE = "commitfaults"


class Killer:
    """Ends server connections by id through one admin connection (thread-safe)."""

    def __init__(self, admin_url: str) -> None:
        self.engine = sa.create_engine(
            admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        self.kind = self.engine.dialect.name
        self.lock = threading.Lock()
        self.conn: sa.Connection | None = None
        self.killed = 0
        #: (target, event, function) to remove at close: the shared session outlives the app.
        self.hooks: list[tuple[t.Any, str, t.Callable[..., t.Any]]] = []

    def backend(self, dbapi_connection: t.Any) -> int:
        """The server's id of a driver connection (asked of the driver, not the server)."""
        if self.kind == "postgresql":
            return int(dbapi_connection.info.backend_pid)
        return int(dbapi_connection.thread_id())

    def kill(self, dbapi_connection: t.Any) -> None:
        """End the server side of ``dbapi_connection`` and wait until the server has."""
        pid = self.backend(dbapi_connection)
        if self.kind == "postgresql":
            kill = f"SELECT pg_terminate_backend({pid})"
            alive = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        else:
            kill = f"KILL {pid}"
            alive = f"SELECT count(*) FROM information_schema.processlist WHERE id = {pid}"
        with self.lock:
            if self.conn is None:
                self.conn = self.engine.connect()
            self.conn.execute(sa.text(kill))
            deadline = time.monotonic() + 10
            while self.conn.execute(sa.text(alive)).scalar():
                if time.monotonic() > deadline:
                    raise AssertionError(f"backend {pid} still alive 10 s after the kill")
                time.sleep(0.005)  # a polling interval, not a wait for an outcome
            self.killed += 1

    def close(self) -> None:
        for target, name, fn in self.hooks:
            event.remove(target, name, fn)
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        self.engine.dispose()


def _point() -> str:
    return request.headers.get(HEADER, "none") if has_request_context() else "none"


def _once(name: str) -> bool:
    """True the first time ``name`` is asked in this request."""
    done = request.environ.setdefault(f"{_STATE}.done", set())
    if name in done:
        return False
    done.add(name)
    return True


def install(app: Flask, sqla: SQLAlchemy, admin_url: str) -> Killer:
    """Hook ``app``'s engine and ``sqla``'s session so that each request is killed at the
    point its ``X-Kill-At`` header names; returns the killer (close it when done: that removes
    the hooks too)."""
    killer = Killer(admin_url)
    with app.app_context():
        engine = sqla.engine

    def hook(target: t.Any, name: str) -> t.Callable[[t.Any], t.Any]:
        def register(fn: t.Any) -> t.Any:
            event.listen(target, name, fn)
            killer.hooks.append((target, name, fn))
            return fn

        return register

    @hook(engine, "checkout")
    def checkout(dbapi_connection: t.Any, record: t.Any, proxy: t.Any) -> None:
        point = _point()
        first = point == "query" and _once("query")
        if first or (point == "after-commit" and request.environ.get(f"{_STATE}.committed")):
            killer.kill(dbapi_connection)

    @hook(sqla.session, "before_flush")
    def before_flush(session: t.Any, context: t.Any, instances: t.Any) -> None:
        if _point() == "flush" and _once("flush"):
            killer.kill(session.connection().connection.dbapi_connection)

    @hook(engine, "commit")
    def commit(conn: sa.Connection) -> None:
        point = _point()
        if point == "commit" and _once("commit"):
            killer.kill(conn.connection.dbapi_connection)
        elif point == "after-commit":
            request.environ[f"{_STATE}.committing"] = conn.connection.dbapi_connection

    @hook(sqla.session, "after_commit")
    def after_commit(session: t.Any) -> None:
        if _point() == "after-commit" and _once("after-commit"):
            request.environ[f"{_STATE}.committed"] = True
            committed = request.environ.pop(f"{_STATE}.committing", None)
            if committed is not None:
                killer.kill(committed)

    return killer


def add_readback(app: Flask) -> None:
    """``POST /api/readback/<notebook_id>`` on the example app: a note answered from its
    expired attributes after the commit (a round trip to the database after the commit)."""
    from example_app.models import Note, Notebook
    from flask_complete import api, db
    from flask_complete.auth import login_required

    @app.post("/api/readback/<id:notebook_id>")
    @login_required
    def readback(notebook_id: int) -> t.Any:
        notebook = db.get_or_404(Notebook, notebook_id)
        note = Note(notebook=notebook, title=api.text(api.json_body(), "title"))
        db.session.add(note)
        db.session.commit()
        return jsonify(note.to_dict()), 201


def create() -> Flask:
    """The example app with the read-back view and the hooks (for gunicorn)."""
    from example_app import create_app
    from flask_complete import db

    app = create_app()
    add_readback(app)
    install(app, db, os.environ["FAULT_ADMIN_URL"])
    return app

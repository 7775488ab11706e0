"""A health endpoint for load balancers: the database answers and is at the migrations' head.

Off by default; ``HEALTH_ENDPOINT = "/-/health"`` turns it on. ``200 {"status": "ok",
"database": "ok", "migrations": "head"}``, or ``503`` naming the part that failed. Cheap: the
head revision is read from the migrations folder once; the database's revision is read until it
has been seen at the head (a deploy that starts before ``flask db upgrade`` answers 503 until
the upgrade), then each request costs one ``SELECT 1``. No session, no cookie, no login.
"""

from __future__ import annotations

import threading
import typing as t

from flask import Flask, current_app, jsonify

from .config import Problem

if t.TYPE_CHECKING:
    from flask import Response

    from .extension import CompleteState

ENDPOINT = "flask_complete_health"


class _Health:
    """The view of one app, with what it has learnt about the migrations."""

    def __init__(self) -> None:
        self.heads: set[str] | None = None
        self.at_head = False
        self.lock = threading.Lock()

    def __call__(self) -> Response:
        import sqlalchemy as sa

        from .extension import get_state

        app = current_app._get_current_object()  # type: ignore[attr-defined]
        sqla = get_state(app).db
        if sqla is None or "sqlalchemy" not in app.extensions:
            return self._answer(200, database="not used", migrations="not used")
        try:
            if self.at_head or not self._uses_migrations(app):
                # The session, not the engine: it follows the test plugin's per-test connection.
                sqla.session.execute(sa.text("SELECT 1"))
                return self._answer(200, migrations="head" if self.at_head else "not used")
            from . import migrations

            # Reading the revision also proves the database answers.
            current = migrations.current_revisions(app)
        except sa.exc.SQLAlchemyError as e:
            app.logger.warning("health: the database failed: %s", e)
            return self._answer(503, database="unreachable", migrations="unknown")
        if current != self.heads:
            return self._answer(503, migrations="not at head")
        self.at_head = True
        return self._answer(200, migrations="head")

    def _uses_migrations(self, app: Flask) -> bool:
        if self.heads is None:
            with self.lock:
                if self.heads is None:
                    heads: set[str] = set()
                    if app.config.get("COMPLETE_MIGRATE", True):
                        from . import migrations

                        heads = migrations.head_revisions(app)
                    self.heads = heads
        return bool(self.heads)

    @staticmethod
    def _answer(status: int, database: str = "ok", migrations: str = "head") -> Response:
        ok = status == 200
        response = jsonify(status="ok" if ok else "error", database=database, migrations=migrations)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response


def init_app(app: Flask, state: CompleteState) -> None:
    """Add the endpoint at ``HEALTH_ENDPOINT``."""
    path = app.config.get("HEALTH_ENDPOINT")
    if not isinstance(path, str) or not path.startswith("/"):
        state.problems.append(
            Problem(
                "config.type",
                "HEALTH_ENDPOINT",
                f"HEALTH_ENDPOINT = {path!r} is not a URL path.",
                'Set it to a path such as "/-/health", or to "" to turn the endpoint off.',
            )
        )
        return
    app.add_url_rule(path, ENDPOINT, _Health(), methods=["GET"])

"""A health endpoint for load balancers: the database answers and is at the migrations' head.

Off by default; ``HEALTH_ENDPOINT = "/-/health"`` turns it on. ``200 {"status": "ok",
"database": "ok", "migrations": "head"}``, or ``503`` naming the part that failed; an app with
``SQLALCHEMY_BINDS`` also gets ``"databases": {"default": {...}, "<bind>": {...}}``, and the top
level shows the first database that fails. Cheap: the
head revision is read from the migrations folder once; the database's revision is read until it
has been seen at the head (a deploy that starts before ``flask db upgrade`` answers 503 until
the upgrade), then each request costs one ``SELECT 1``. No session, no cookie, no login.
"""

from __future__ import annotations

import threading
import typing as t

from flask import Flask, current_app, jsonify

from ..settings.config import Problem

if t.TYPE_CHECKING:
    from flask import Response
    from flask_sqlalchemy import SQLAlchemy

    from ..state import CompleteState

ENDPOINT = "flask_complete_health"
#: Seconds a 503 tells the client to wait.
RETRY_AFTER = 5


class _Health:
    """The view of one app, with what it has learnt about the migrations."""

    def __init__(self) -> None:
        self.heads: set[str] | None = None
        #: The databases the migrations cover.
        self.covered: set[str | None] = set()
        #: The databases seen at the head.
        self.at_head: set[str | None] = set()
        self.lock = threading.Lock()

    def __call__(self) -> Response:
        from ..database import binds
        from ..state import get_state

        app = current_app._get_current_object()  # type: ignore[attr-defined]
        sqla = get_state(app).db
        if sqla is None or "sqlalchemy" not in app.extensions:
            return self._answer(200, {None: ("not used", "not used")})
        from ..migrations.folder import MigrationsFolderError

        try:
            self._learn(app)
        except MigrationsFolderError as e:
            # A folder that exists and cannot be used: the migrations are unknown, not absent.
            app.logger.error("health: %s", e.format_message())
            return self._answer(503, {None: ("ok", "unusable folder")})
        return self._answer(0, {key: self._one(app, sqla, key) for key in binds.keys(app)})

    def _one(self, app: Flask, sqla: SQLAlchemy, key: str | None) -> tuple[str, str]:
        """``(database, migrations)`` of the database ``key``."""
        import sqlalchemy as sa

        try:
            if key in self.at_head or key not in self.covered:
                # The session, not the engine: it follows the test plugin's per-test connection.
                bind = sqla.engines[key]
                sqla.session.execute(sa.text("SELECT 1"), bind_arguments={"bind": bind})
                return "ok", "head" if key in self.at_head else "not used"
            from ..migrations import migrate as migrations

            # Reading the revision also proves the database answers.
            current = migrations.current_revisions(app, key)
        except sa.exc.SQLAlchemyError as e:
            app.logger.warning("health: the database %s failed: %s", key or "default", e)
            return "unreachable", "unknown"
        if current != self.heads:
            return "ok", "not at head"
        self.at_head.add(key)
        return "ok", "head"

    def _learn(self, app: Flask) -> None:
        if self.heads is None:
            with self.lock:
                if self.heads is None:
                    heads: set[str] = set()
                    if app.config.get("COMPLETE_MIGRATE", True):
                        from ..migrations import binds as migration_binds
                        from ..migrations import migrate as migrations

                        heads = migrations.head_revisions(app)
                        self.covered = set(migration_binds.covered(app)) if heads else set()
                    self.heads = heads

    @staticmethod
    def _answer(status: int, parts: dict[str | None, tuple[str, str]]) -> Response:
        """The answer; ``status`` 0: 200 when every database is ok and at head (or has no
        migrations), else 503. With several databases, each is reported under its bind."""
        ok = all(d in ("ok", "not used") and m in ("head", "not used") for d, m in parts.values())
        status = status or (200 if ok else 503)
        worst = next(
            (p for p in parts.values() if p[0] not in ("ok", "not used")),
            next((p for p in parts.values() if p[1] not in ("head", "not used")), None),
        )
        database, migrations = worst or next(iter(parts.values()), ("ok", "not used"))
        body: dict[str, t.Any] = {
            "status": "ok" if status == 200 else "error",
            "database": database,
            "migrations": migrations,
        }
        if list(parts) != [None]:
            body["databases"] = {
                key or "default": {"database": d, "migrations": m} for key, (d, m) in parts.items()
            }
        response = jsonify(body)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        if status == 503:
            # As every 503 of the bundle: a client (or a deploy script) may try again soon.
            response.headers["Retry-After"] = str(RETRY_AFTER)
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

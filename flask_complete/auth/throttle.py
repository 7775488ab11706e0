"""Failed-login throttling per account and per client address, shared by every worker.

After ``limit`` failures inside ``AUTH_THROTTLE_WINDOW`` seconds a key is locked for
``AUTH_THROTTLE_DELAY`` seconds, doubled with each further failure up to
``AUTH_THROTTLE_MAX_DELAY``. A locked key answers ``429`` with ``Retry-After`` without checking the
password. State lives in the database (table ``auth_throttle``, part of the app's metadata so that
migrations create it) or in Redis (``AUTH_THROTTLE_STORAGE = "redis"`` or a ``redis://`` URL, or
``REDIS_URL`` set).
"""

from __future__ import annotations

import hashlib
import logging
import math
import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    case,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .models import utcnow

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

TABLE = "auth_throttle"
log = logging.getLogger("flask_complete.auth")


def table(metadata: MetaData) -> Table:
    """The throttle table in ``metadata`` (declared once)."""
    existing = metadata.tables.get(TABLE)
    if existing is not None:
        return existing
    return Table(
        TABLE,
        metadata,
        Column("key", String(100), primary_key=True),
        Column("failures", Integer, nullable=False),
        Column("last_failure", DateTime, nullable=False),
        Column("locked_until", DateTime, nullable=True),
    )


@dataclass(frozen=True)
class Policy:
    """Limits and delays, from the ``AUTH_THROTTLE_*`` settings."""

    account_limit: int = 5
    address_limit: int = 20
    delay: int = 30
    max_delay: int = 900
    window: int = 900

    def lock_seconds(self, failures: int, limit: int) -> int:
        """How long a key with ``failures`` failures stays locked (0: not locked)."""
        if failures < limit:
            return 0
        # Cap the exponent too: 2**10000 is a big integer for nothing.
        return int(min(self.max_delay, self.delay * 2 ** min(failures - limit, 30)))


def account_key(login: str) -> str:
    """The key of an account: a digest, so that the table does not collect typed addresses."""
    return "a:" + hashlib.sha256(login.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def address_key(address: str) -> str:
    """The key of a client address."""
    return "ip:" + address[:90]


class Throttle(t.Protocol):
    """Where failures are counted."""

    def retry_after(self, keys: t.Sequence[str]) -> int:
        """Seconds until the most locked of ``keys`` is free; 0 when none is locked."""

    def failure(self, keys: t.Sequence[tuple[str, int]]) -> None:
        """Count a failure for each ``(key, limit)``, locking those at their limit."""

    def success(self, key: str) -> None:
        """Forget the failures of ``key`` (the account, after a correct password)."""


class DatabaseThrottle:
    """Counts in the ``auth_throttle`` table through the app's session; row updates are atomic,
    so concurrent workers on PostgreSQL or MySQL do not lose counts."""

    def __init__(self, db: SQLAlchemy, tbl: Table, policy: Policy) -> None:
        self.db = db
        self.table = tbl
        self.policy = policy

    def retry_after(self, keys: t.Sequence[str]) -> int:
        now = utcnow()
        c = self.table.c
        try:
            until = self.db.session.execute(
                select(c.locked_until).where(c.key.in_(list(keys)), c.locked_until > now)
            ).scalars()
            latest = max(until, default=None)
        except SQLAlchemyError as e:
            # PostgreSQL refuses every later statement of a failed transaction.
            self.db.session.rollback()
            return self._failed_open(e)
        return _seconds(latest, now)

    def failure(self, keys: t.Sequence[tuple[str, int]]) -> None:
        session = self.db.session
        c = self.table.c
        now = utcnow()
        cutoff = now - timedelta(seconds=self.policy.window)
        try:
            for key, limit in keys:
                bump = (
                    update(self.table)
                    .where(c.key == key)
                    .values(
                        failures=case((c.last_failure < cutoff, 1), else_=c.failures + 1),
                        last_failure=now,
                    )
                )
                if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
                    try:
                        session.execute(
                            insert(self.table).values(key=key, failures=1, last_failure=now)
                        )
                    except IntegrityError:
                        # Another worker inserted it first: count on its row.
                        session.rollback()
                        session.execute(bump)
                failures = session.execute(select(c.failures).where(c.key == key)).scalar_one()
                seconds = self.policy.lock_seconds(failures, limit)
                if seconds:
                    session.execute(
                        update(self.table)
                        .where(c.key == key)
                        .values(locked_until=now + timedelta(seconds=seconds))
                    )
                # Per key: a rollback after a lost insert race must not undo another key.
                session.commit()
            # Forget keys whose failures are out of the window and not locked, so that the
            # table holds only recent failures (a scan of a small table, on failures only).
            session.execute(
                delete(self.table).where(
                    c.last_failure < cutoff,
                    (c.locked_until.is_(None)) | (c.locked_until < now),
                )
            )
            session.commit()
        except SQLAlchemyError as e:
            session.rollback()
            self._failed_open(e)

    def success(self, key: str) -> None:
        try:
            self.db.session.execute(delete(self.table).where(self.table.c.key == key))
        except SQLAlchemyError as e:
            self.db.session.rollback()
            self._failed_open(e)

    def _failed_open(self, error: Exception) -> int:
        # Without its table the throttle lets logins through rather than locking everyone out.
        log.error(
            "login throttling is off: %s. Create the %r table: run `flask db migrate` and "
            "`flask db upgrade` (or set AUTH_THROTTLE_STORAGE to a Redis URL).",
            str(error).splitlines()[0],
            TABLE,
        )
        return 0


class RedisThrottle:
    """Counts in Redis: ``INCR`` with an expiry for failures, a key with a TTL for a lock."""

    def __init__(self, url: str, prefix: str, policy: Policy) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix
        self.policy = policy
        self.errors: tuple[type[Exception], ...] = (redis.RedisError,)

    def retry_after(self, keys: t.Sequence[str]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(f"{self.prefix}lock:{key}")
        try:
            ttls = pipe.execute()
        except self.errors as e:
            log.error("login throttling is off: Redis failed: %s", e)
            return 0
        longest = max((int(ms) for ms in ttls if int(ms) > 0), default=0)
        return math.ceil(longest / 1000)

    def failure(self, keys: t.Sequence[tuple[str, int]]) -> None:
        try:
            for key, limit in keys:
                count_key = f"{self.prefix}count:{key}"
                pipe = self.client.pipeline(transaction=True)
                pipe.incr(count_key)
                pipe.expire(count_key, self.policy.window)
                failures = int(pipe.execute()[0])
                seconds = self.policy.lock_seconds(failures, limit)
                if seconds:
                    self.client.set(f"{self.prefix}lock:{key}", failures, ex=seconds)
        except self.errors as e:
            log.error("login throttling is off: Redis failed: %s", e)

    def success(self, key: str) -> None:
        try:
            self.client.delete(f"{self.prefix}count:{key}", f"{self.prefix}lock:{key}")
        except self.errors as e:
            log.error("login throttling is off: Redis failed: %s", e)


def _seconds(until: datetime | None, now: datetime) -> int:
    if until is None or until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))

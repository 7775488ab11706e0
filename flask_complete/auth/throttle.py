"""Failed-login throttling per account and per client address, shared by every worker.

Each attempt is reserved before the password is checked: one atomic step counts it and, at the
``limit``-th attempt inside ``AUTH_THROTTLE_WINDOW`` seconds, locks the key for
``AUTH_THROTTLE_DELAY`` seconds (doubled with each further attempt, up to
``AUTH_THROTTLE_MAX_DELAY``). So however many attempts arrive at once, at most ``limit`` passwords
are checked; the rest answer ``429`` with ``Retry-After``. A correct password gives its
reservation back (and clears the account's count). State lives in the database (table
``auth_throttle``, part of the app's metadata so that migrations create it) or in Redis
(``AUTH_THROTTLE_STORAGE = "redis"`` or a ``redis://`` URL, or ``REDIS_URL`` set).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import typing as t
from dataclasses import dataclass, field
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

from .models import normalise_email, utcnow

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
    """The key of an account: a digest of its normalised form (one counter per identity,
    however it is typed), so that the table does not collect typed addresses."""
    identity = normalise_email(login)
    return "a:" + hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def address_key(address: str) -> str:
    """The key of a client address."""
    return "ip:" + address[:90]


@dataclass
class Reservation:
    """The attempts one login holds: ``(key, count after reserving, lock mark)`` per key; the
    mark is set when this attempt locked the key (so that a success can lift that lock)."""

    held: list[tuple[str, int, str | None]] = field(default_factory=list)


class Throttle(t.Protocol):
    """Where attempts are counted."""

    def reserve(self, keys: t.Sequence[tuple[str, int]]) -> Reservation | int:
        """Count an attempt for each ``(key, limit)`` before the password is checked: a
        :class:`Reservation`, or the seconds to wait when a key is locked (nothing held then)."""

    def release(self, reservation: Reservation) -> None:
        """A correct password: forget the first key's count (the account) and give the others
        their attempt back."""


def _lock_mark() -> str:
    return secrets.token_hex(8)


class DatabaseThrottle:
    """Counts in the ``auth_throttle`` table through the app's session. A reservation updates
    the key's row first, which locks it (a row lock on PostgreSQL and MySQL, the write lock on
    SQLite) until the commit a few statements later: concurrent workers queue on the row, and
    each sees the count and lock the previous one left."""

    def __init__(self, db: SQLAlchemy, tbl: Table, policy: Policy) -> None:
        self.db = db
        self.table = tbl
        self.policy = policy

    def reserve(self, keys: t.Sequence[tuple[str, int]]) -> Reservation | int:
        reservation = Reservation()
        try:
            for key, limit in keys:
                wait = self._reserve_one(key, limit, reservation)
                if wait:
                    self.release(reservation, success=False)
                    return wait
            self._forget_stale()
        except SQLAlchemyError as e:
            self.db.session.rollback()
            self._failed_open(e)
            return Reservation()
        return reservation

    def _reserve_one(self, key: str, limit: int, reservation: Reservation) -> int:
        session = self.db.session
        c = self.table.c
        now = utcnow()
        cutoff = now - timedelta(seconds=self.policy.window)
        free = (c.locked_until.is_(None)) | (c.locked_until <= now)
        bump = (
            update(self.table)
            .where(c.key == key, free)
            .values(
                failures=case((c.last_failure < cutoff, 1), else_=c.failures + 1),
                last_failure=now,
            )
        )
        for _ in range(3):
            if session.execute(bump).rowcount:  # type: ignore[attr-defined]
                break
            # Locked, or no row yet. FOR UPDATE: the latest row, not a snapshot (MySQL).
            row = session.execute(
                select(c.locked_until).where(c.key == key).with_for_update()
            ).first()
            if row is not None:
                wait = _seconds(row[0], now)
                if wait:
                    session.commit()
                    return wait
                continue  # created by another worker since the update: count on it
            # Create the row on its own, then count on it: on MySQL the missed update holds a
            # gap lock until the rollback, and inserting under it would deadlock other workers.
            session.rollback()
            try:
                session.execute(insert(self.table).values(key=key, failures=0, last_failure=now))
                session.commit()
            except IntegrityError:
                session.rollback()  # another worker created it first
        else:
            raise SQLAlchemyError(f"the {TABLE!r} row of a key could not be reserved")
        count = session.execute(select(c.failures).where(c.key == key)).scalar_one()
        seconds = self.policy.lock_seconds(count, limit)
        mark = None
        if seconds:
            mark = _lock_mark()
            session.execute(
                update(self.table)
                .where(c.key == key)
                .values(locked_until=now + timedelta(seconds=seconds))
            )
        # Per key, at once: the row lock is held only for these few statements.
        session.commit()
        reservation.held.append((key, count, mark))
        return 0

    def release(self, reservation: Reservation, success: bool = True) -> None:
        session = self.db.session
        c = self.table.c
        try:
            for i, (key, count, mark) in enumerate(reservation.held):
                if success and i == 0:
                    session.execute(delete(self.table).where(c.key == key))
                    continue
                values: dict[str, t.Any] = {"failures": c.failures - 1}
                if mark is not None:
                    # This attempt set the lock. Unchanged count: nobody counted since, so the
                    # lock is ours to lift (the earlier one, if any, had run out).
                    values["locked_until"] = case((c.failures == count, None), else_=c.locked_until)
                session.execute(
                    update(self.table).where(c.key == key, c.failures > 0).values(**values)
                )
            session.commit()
        except SQLAlchemyError as e:
            session.rollback()
            self._failed_open(e)

    def _forget_stale(self) -> None:
        # Keys whose attempts are out of the window and not locked: the table holds only recent
        # attempts (a scan of a small table, once per login).
        c = self.table.c
        now = utcnow()
        cutoff = now - timedelta(seconds=self.policy.window)
        self.db.session.execute(
            delete(self.table).where(
                c.last_failure < cutoff, (c.locked_until.is_(None)) | (c.locked_until < now)
            )
        )
        self.db.session.commit()

    def _failed_open(self, error: Exception) -> int:
        # Without its storage the throttle lets logins through rather than locking everyone out.
        from ..api import DATABASE_UNAVAILABLE

        first = str(error).splitlines()[0]
        # SQLite reports a missing table as an OperationalError too.
        if isinstance(error, DATABASE_UNAVAILABLE) and "no such table" not in first:
            log.error("login throttling is off: the database is unavailable: %s", first)
        else:
            log.error(
                "login throttling is off: %s. Create the %r table: run `flask db migrate` and "
                "`flask db upgrade` (or set AUTH_THROTTLE_STORAGE to a Redis URL).",
                first,
                TABLE,
            )
        return 0


#: Reserve an attempt: count it (the window starts at the first), lock at the limit.
#: KEYS: count, lock. ARGV: window, limit, delay, max delay, lock mark. Returns
#: {count, seconds locked by this attempt} or {-1, milliseconds the lock has left}.
_RESERVE = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {-1, left} end
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[2])
if count < limit then return {count, 0} end
local seconds = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(count - limit, 30))
redis.call('SET', KEYS[2], ARGV[5], 'EX', math.floor(seconds))
return {count, math.floor(seconds)}
"""
#: Give an attempt back: uncount it, and lift the lock it set (its mark) if nobody counted since.
#: KEYS: count, lock. ARGV: count after reserving, lock mark or "".
_RELEASE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[2] ~= '' and count == tonumber(ARGV[1]) and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
"""


class RedisThrottle:
    """Counts in Redis: one script per key reserves (``INCR`` with an expiry, a lock key with
    a TTL at the limit), atomically on the server."""

    def __init__(self, client: t.Any, prefix: str, policy: Policy) -> None:
        import redis

        self.client = client
        self.prefix = prefix
        self.policy = policy
        self.errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}count:{key}", f"{self.prefix}lock:{key}"]

    def reserve(self, keys: t.Sequence[tuple[str, int]]) -> Reservation | int:
        policy = self.policy
        reservation = Reservation()
        try:
            for key, limit in keys:
                mark = _lock_mark()
                count, seconds = self._reserve(
                    keys=self._keys(key),
                    args=[policy.window, limit, policy.delay, policy.max_delay, mark],
                )
                if int(count) < 0:
                    self.release(reservation, success=False)
                    return max(1, math.ceil(int(seconds) / 1000))
                reservation.held.append((key, int(count), mark if int(seconds) else None))
        except self.errors as e:
            log.error("login throttling is off: Redis failed: %s", e)
            return Reservation()
        return reservation

    def release(self, reservation: Reservation, success: bool = True) -> None:
        try:
            for i, (key, count, mark) in enumerate(reservation.held):
                if success and i == 0:
                    self.client.delete(*self._keys(key))
                else:
                    self._release(keys=self._keys(key), args=[count, mark or ""])
        except self.errors as e:
            log.error("login throttling is off: Redis failed: %s", e)


def _seconds(until: datetime | None, now: datetime) -> int:
    if until is None or until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))

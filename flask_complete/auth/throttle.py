"""Failed-login throttling per account and per client address, shared by every worker.

Each attempt is reserved before the password is checked: one atomic step counts it and, at the
``limit``-th attempt inside ``AUTH_THROTTLE_WINDOW`` seconds, locks the key for
``AUTH_THROTTLE_DELAY`` seconds (doubled with each further attempt, up to
``AUTH_THROTTLE_MAX_DELAY``). So however many attempts arrive at once, at most ``limit`` passwords
are checked; the rest answer ``429`` with ``Retry-After``. A correct password gives its
reservation back (and clears the account's count). State lives in the database (table
``auth_throttle``, part of the app's metadata so that migrations create it) or in Redis
(``AUTH_THROTTLE_STORAGE = "redis"`` or a ``redis://`` URL, or ``REDIS_URL`` set).

It never fails open by accident: a deadlock or lock timeout is retried, then refused; a storage
that is down raises :class:`StoreUnavailable`, and the login answers ``503`` before checking
the password unless ``AUTH_THROTTLE_FAIL_OPEN`` chooses otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
import secrets
import time
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
from sqlalchemy import inspect as sa_inspect
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
    #: Let logins through unthrottled while the storage is down (``AUTH_THROTTLE_FAIL_OPEN``);
    #: by default they answer 503 before any password is checked.
    fail_open: bool = False

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
        :class:`Reservation`, or the seconds to wait when a key is locked (nothing held then).
        Raises :class:`StoreUnavailable` when the storage fails."""

    def release(self, reservation: Reservation) -> None:
        """A correct password: forget the first key's count (the account) and give the others
        their attempt back."""


def _lock_mark() -> str:
    return secrets.token_hex(8)


class StoreUnavailable(Exception):
    """The throttle's storage failed (down, or its table missing): no attempt can be counted.
    The message names the cause and the fix."""


#: Tries of one step that meets contention (a deadlock, a lock timeout, a serialization
#: failure) before the attempt is refused with ``429``: never let through uncounted.
CONTENTION_TRIES = 3
#: PostgreSQL's deadlock_detected, lock_not_available and serialization_failure.
_PG_CONTENTION = {"40P01", "55P03", "40001"}
#: MySQL and MariaDB: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
_MYSQL_CONTENTION = {1205, 1213}
#: SQLite's primary result codes SQLITE_BUSY (its busy timeout ran out) and SQLITE_LOCKED.
_SQLITE_CONTENTION = {5, 6}


def contended(error: BaseException, dialect: str) -> bool:
    """Whether ``error`` (from a database of ``dialect``) is contention for locks, which a new
    transaction may not meet, rather than a lost or broken store: judged by the driver's error
    code, never by the message."""
    cause = getattr(error, "orig", None) or error
    if dialect == "postgresql":
        # psycopg 3 names it sqlstate, psycopg2 pgcode.
        return (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) in (
            _PG_CONTENTION
        )
    if dialect in ("mysql", "mariadb"):
        args: tuple[t.Any, ...] = getattr(cause, "args", ())
        return bool(args) and args[0] in _MYSQL_CONTENTION
    if dialect == "sqlite":
        code = getattr(cause, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_CONTENTION
    return False


T = t.TypeVar("T")


class _Again(Exception):
    """The key's row was forgotten between two statements of the step: take it again."""


class DatabaseThrottle:
    """Counts in the ``auth_throttle`` table through the app's session, one short transaction
    per key. Each first makes sure the key's row exists and locks it (an upsert that writes
    nothing when the row is there), then reads it with ``FOR UPDATE`` and writes the new count:
    concurrent workers queue on the row, and each sees the count and lock the previous one
    left. MariaDB has no ``UPDATE ... RETURNING``, and an ``UPDATE`` that missed, a locking read
    and an ``INSERT`` of the missing row deadlocked under its gap locks; the upsert works alike
    on PostgreSQL, MySQL, MariaDB and SQLite (whose write lock serialises the whole step).
    Contention that still happens is retried, and refused after :data:`CONTENTION_TRIES`; any
    other failure raises :class:`StoreUnavailable`."""

    def __init__(self, db: SQLAlchemy, tbl: Table, policy: Policy) -> None:
        self.db = db
        self.table = tbl
        self.policy = policy

    def reserve(self, keys: t.Sequence[tuple[str, int]]) -> Reservation | int:
        reservation = Reservation()
        for key, limit in keys:
            wait = self._retrying(functools.partial(self._reserve_one, key, limit), reservation)
            if wait is None:
                log.warning(
                    "a login attempt was refused: its throttle row stayed contended after %d "
                    "tries (many attempts for one account or address at once)",
                    CONTENTION_TRIES,
                )
                wait = 1
            if isinstance(wait, int):
                self.release(reservation, success=False)
                return wait
            reservation.held.append(wait)
        self._forget_stale()
        return reservation

    def _retrying(self, step: t.Callable[[], T], reservation: Reservation) -> T | None:
        """``step()`` in its own transaction, tried again on contention; ``None`` when every
        try met it. Any other failure gives back ``reservation`` and raises
        :class:`StoreUnavailable`."""
        session = self.db.session
        dialect = self._dialect()
        for n in range(1, CONTENTION_TRIES + 1):
            try:
                return step()
            except _Again:
                continue
            except SQLAlchemyError as e:
                session.rollback()
                if not contended(e, dialect):
                    if reservation.held:
                        self.release(reservation, success=False)
                    raise self._unavailable(e) from e
                if n < CONTENTION_TRIES:
                    # Apart from the others that met it, so that they do not meet again.
                    time.sleep(random.uniform(0, 0.02 * n))
        return None

    def _dialect(self) -> str:
        return str(self.db.session.get_bind(clause=self.table.select()).dialect.name)

    def _claim(self, key: str, now: datetime) -> t.Any:
        """A statement that creates the key's row if missing and locks it either way."""
        values = {"key": key, "failures": 0, "last_failure": now}
        dialect = self._dialect()
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            # A no-op update takes the duplicate's exclusive lock; INSERT IGNORE would take a
            # shared one, and workers upgrading theirs at once deadlock.
            upsert = mysql_insert(self.table).values(values)
            return upsert.on_duplicate_key_update(key=self.table.c.key)
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(self.table).values(values).on_conflict_do_nothing()
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(self.table).values(values).on_conflict_do_nothing()
        return None

    def _reserve_one(self, key: str, limit: int) -> tuple[str, int, str | None] | int:
        """Count an attempt on ``key``: what the reservation holds for it, or the seconds its
        lock has left."""
        session = self.db.session
        c = self.table.c
        now = utcnow()
        claim = self._claim(key, now)
        if claim is not None:
            session.execute(claim)
        read = select(c.failures, c.last_failure, c.locked_until).where(c.key == key)
        row = session.execute(read.with_for_update()).first()
        if row is None and claim is None:
            # Another database: insert, and let a worker that inserted first win.
            try:
                with session.begin_nested():
                    session.execute(
                        insert(self.table).values(key=key, failures=0, last_failure=now)
                    )
            except IntegrityError:
                pass
            row = session.execute(read.with_for_update()).first()
        if row is None:
            session.rollback()  # forgotten as stale since the claim
            raise _Again
        failures, last_failure, locked_until = row
        wait = _seconds(locked_until, now)
        if wait:
            session.commit()
            return wait
        cutoff = now - timedelta(seconds=self.policy.window)
        count = 1 if last_failure < cutoff else failures + 1
        seconds = self.policy.lock_seconds(count, limit)
        mark = _lock_mark() if seconds else None
        session.execute(
            update(self.table)
            .where(c.key == key)
            .values(
                failures=count,
                last_failure=now,
                locked_until=now + timedelta(seconds=seconds) if seconds else None,
            )
        )
        session.commit()
        return (key, count, mark)

    def release(self, reservation: Reservation, success: bool = True) -> None:
        if not reservation.held:
            return
        c = self.table.c

        def give_back() -> bool:
            session = self.db.session
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
            return True

        try:
            if self._retrying(give_back, Reservation()) is None:
                log.warning("a login's throttle count was not given back: its row stayed contended")
        except StoreUnavailable as e:
            # The password was judged already: the count it leaves errs on the safe side.
            log.error("a login's throttle count was not given back: %s", e)

    def _forget_stale(self) -> None:
        """Delete the keys whose attempts are out of the window and not locked, so that the
        table holds only recent attempts. Found by a plain read, deleted by key: a locking scan
        would lock every row (MySQL) and queue or deadlock with the logins."""
        c = self.table.c
        session = self.db.session
        now = utcnow()
        stale = (c.last_failure < now - timedelta(seconds=self.policy.window)) & (
            (c.locked_until.is_(None)) | (c.locked_until < now)
        )
        try:
            keys = session.scalars(select(c.key).where(stale).limit(100)).all()
            if keys:
                session.execute(delete(self.table).where(c.key.in_(keys), stale))
            session.commit()
        except SQLAlchemyError as e:
            # Housekeeping only: the next login tries again.
            session.rollback()
            log.debug("stale throttle rows were left for later: %s", e)

    def _unavailable(self, error: SQLAlchemyError) -> StoreUnavailable:
        """The failure, named: a lost database, or the table to create."""
        from ..api import DATABASE_UNAVAILABLE

        first = str(error).splitlines()[0]
        if isinstance(error, DATABASE_UNAVAILABLE) and not self._table_missing():
            return StoreUnavailable(f"the database is unavailable: {first}")
        return StoreUnavailable(
            f"{first}. Create the {TABLE!r} table: run `flask db migrate` and `flask db "
            "upgrade` (or set AUTH_THROTTLE_STORAGE to a Redis URL)."
        )

    def _table_missing(self) -> bool:
        # Asked of the database, not read from the error's wording (SQLite reports a missing
        # table as an OperationalError, like a lost connection).
        session = self.db.session
        try:
            return not sa_inspect(session.connection()).has_table(TABLE, schema=self.table.schema)
        except SQLAlchemyError:
            return False
        finally:
            session.rollback()


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
            if reservation.held:
                self.release(reservation, success=False)
            raise StoreUnavailable(f"Redis failed: {e}") from e
        return reservation

    def release(self, reservation: Reservation, success: bool = True) -> None:
        try:
            for i, (key, count, mark) in enumerate(reservation.held):
                if success and i == 0:
                    self.client.delete(*self._keys(key))
                else:
                    self._release(keys=self._keys(key), args=[count, mark or ""])
        except self.errors as e:
            # The password was judged already: the count it leaves errs on the safe side.
            log.error("a login's throttle count was not given back: Redis failed: %s", e)


def _seconds(until: datetime | None, now: datetime) -> int:
    if until is None or until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))

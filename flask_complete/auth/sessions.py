"""Server-side sessions: a record per login, so that logging out ends it on every worker at once.

Flask's session lives in its cookie: logging out deletes only the browser's copy, and a captured
cookie keeps working until it expires. With ``AUTH_SESSIONS = true`` (the default, with the
bundle's login manager or the app's own: :mod:`.adopted`) every login gets a random id,
carried in the session (``_auth_session``) and in the remember cookie, and a record in the
database (table ``auth_session``) or in Redis, wherever the throttle counts
(``AUTH_SESSION_STORAGE``). The user loader accepts a session or a remember cookie only while
its record exists: ``logout_user()`` deletes it, ``?everywhere=1`` and ``flask users
sessions`` delete others. Records hold a SHA-256 of the id, never the id.

The cost per authenticated request: none in the database (the user loader's one query joins the
record; one more query with the app's own loader), one Redis ``HGET`` with Redis.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import after_this_request, current_app, request
from flask import session as cookie_session
from flask_login.utils import decode_cookie
from werkzeug.exceptions import ServiceUnavailable

from .models import utcnow

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from werkzeug.wrappers import Response

    from .state import AuthState

#: Where the login's id is kept in Flask's session.
SESSION_KEY = "_auth_session"
TABLE = "auth_session"
#: Characters of the record's digest that name it in ``flask users sessions``.
HANDLE_LENGTH = 12
log = logging.getLogger("flask_complete.auth")


class SessionsUnavailable(ServiceUnavailable):
    """The session storage failed: the login cannot be recorded or checked (``503``)."""

    description = "Logins are unavailable right now; try again shortly."

    def __init__(self) -> None:
        from ..api import RETRY_AFTER

        super().__init__(retry_after=RETRY_AFTER)


def digest(sid: str) -> str:
    """The stored form of a login's id."""
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


def table(metadata: sa.MetaData, user_model: type[t.Any]) -> sa.Table:
    """The ``auth_session`` table in ``metadata`` (declared once), its ``user_id`` a foreign key
    to the user model's primary key that deletes the records with the user."""
    existing = metadata.tables.get(TABLE)
    if existing is not None:
        return existing
    user_pk = sa.inspect(user_model).primary_key[0]
    return sa.Table(
        TABLE,
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        # No type: it follows the user's primary key.
        sa.Column(
            "user_id",
            sa.ForeignKey(user_pk, ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("remember", sa.Boolean, nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=True),
    )


@dataclass(frozen=True)
class Login:
    """A live session, as ``flask users sessions`` lists it."""

    handle: str
    created_at: datetime
    expires_at: datetime
    remember: bool
    address: str | None
    user_agent: str | None


class Store(t.Protocol):
    """Where the records live."""

    def create(self, user_pk: t.Any, remember: bool, lifetime: timedelta) -> str:
        """Record a login of ``user_pk`` and return its new id."""

    def user(self, model: type[t.Any], user_pk: t.Any, sid: str) -> t.Any:
        """The user ``user_pk`` if ``sid`` is a live login of theirs, else ``None``."""

    def owner(self, sid: str) -> str | None:
        """The primary key (as text) of the user whose live login ``sid`` is, else ``None``."""

    def revoke(self, sid: str) -> None:
        """End the login ``sid`` (nothing if there is none)."""

    def revoke_user(self, user_pk: t.Any) -> int:
        """End every login of ``user_pk``; return how many there were."""

    def logins(self, user_pk: t.Any) -> list[Login]:
        """The live logins of ``user_pk``, newest first."""

    def revoke_handle(self, user_pk: t.Any, handle: str) -> bool:
        """End the login of ``user_pk`` named ``handle``; whether there was one."""


def _describe() -> tuple[str | None, str | None]:
    agent = request.headers.get("User-Agent")
    if agent is not None:
        # Header text is Latin-1 by the time WSGI has it; keep what any column stores.
        agent = "".join(c for c in agent if c.isprintable())[:200]
    return (request.remote_addr or None), agent


class DatabaseSessions:
    """Records in the ``auth_session`` table, written in the request's transaction (committed
    with the login, or right after a view that does not commit: see :func:`commit_after`)."""

    def __init__(self, db: SQLAlchemy, tbl: sa.Table, user_model: type[t.Any]) -> None:
        self.db = db
        self.table = tbl
        self.user_pk = sa.inspect(user_model).primary_key[0]
        c = tbl.c
        # Built once: a statement made per request costs more than the query itself.
        self._load = (
            sa.select(user_model)
            .join(tbl, c.user_id == self.user_pk)
            .where(
                self.user_pk == sa.bindparam("pk"),
                c.id == sa.bindparam("digest"),
                c.expires_at > sa.bindparam("now"),
            )
        )
        self._owner = sa.select(c.user_id).where(
            c.id == sa.bindparam("digest"), c.expires_at > sa.bindparam("now")
        )

    def create(self, user_pk: t.Any, remember: bool, lifetime: timedelta) -> str:
        sid = secrets.token_urlsafe(32)
        now = utcnow()
        address, agent = _describe()
        c = self.table.c
        session = self.db.session
        # Expired records of this user go as a new one comes: the table holds live logins.
        session.execute(sa.delete(self.table).where(c.user_id == user_pk, c.expires_at <= now))
        session.execute(
            sa.insert(self.table).values(
                id=digest(sid),
                user_id=user_pk,
                created_at=now,
                expires_at=now + lifetime,
                remember=remember,
                address=address,
                user_agent=agent,
            )
        )
        return sid

    def user(self, model: type[t.Any], user_pk: t.Any, sid: str) -> t.Any:
        params = {"pk": user_pk, "digest": digest(sid), "now": utcnow()}
        return self.db.session.execute(self._load, params).scalar()

    def owner(self, sid: str) -> str | None:
        params = {"digest": digest(sid), "now": utcnow()}
        found = self.db.session.execute(self._owner, params).scalar()
        return None if found is None else str(found)

    def revoke(self, sid: str) -> None:
        self.db.session.execute(sa.delete(self.table).where(self.table.c.id == digest(sid)))

    def revoke_user(self, user_pk: t.Any) -> int:
        c = self.table.c
        live = self.db.session.execute(
            sa.delete(self.table).where(c.user_id == user_pk, c.expires_at > utcnow())
        ).rowcount  # type: ignore[attr-defined]
        self.db.session.execute(sa.delete(self.table).where(c.user_id == user_pk))
        return int(live)

    def logins(self, user_pk: t.Any) -> list[Login]:
        c = self.table.c
        rows = self.db.session.execute(
            sa.select(self.table)
            .where(c.user_id == user_pk, c.expires_at > utcnow())
            .order_by(c.created_at.desc(), c.id)
        ).all()
        return [
            Login(
                r.id[:HANDLE_LENGTH],
                r.created_at,
                r.expires_at,
                r.remember,
                r.address,
                r.user_agent,
            )
            for r in rows
        ]

    def revoke_handle(self, user_pk: t.Any, handle: str) -> bool:
        c = self.table.c
        ids = self.db.session.scalars(sa.select(c.id).where(c.user_id == user_pk)).all()
        found = [i for i in ids if handle and i.startswith(handle)]
        if len(found) != 1:
            return False
        self.db.session.execute(sa.delete(self.table).where(c.id == found[0]))
        return True


class RedisSessions:
    """Records in Redis: a hash per login with the login's lifetime as its TTL, and a set per
    user of their logins' digests (for listing and ending them all)."""

    def __init__(
        self,
        client: t.Any,
        prefix: str,
        db: SQLAlchemy,
        user_model: type[t.Any],
        longest: timedelta,
    ) -> None:
        import redis

        self.client = client
        self.prefix = prefix
        self.db = db
        user_pk = sa.inspect(user_model).primary_key[0]
        self._load = sa.select(user_model).where(user_pk == sa.bindparam("pk"))
        #: The user's set outlives their longest possible login.
        self.longest = max(1, int(longest.total_seconds()))
        self.errors: tuple[type[Exception], ...] = (redis.RedisError,)

    def _key(self, hashed: str) -> str:
        return f"{self.prefix}s:{hashed}"

    def _user_key(self, user_pk: t.Any) -> str:
        return f"{self.prefix}u:{user_pk}"

    def _call(self, action: t.Callable[[], t.Any]) -> t.Any:
        try:
            return action()
        except self.errors as e:
            log.error("server-side sessions are unavailable: Redis failed: %s", e)
            raise SessionsUnavailable() from None

    def create(self, user_pk: t.Any, remember: bool, lifetime: timedelta) -> str:
        sid = secrets.token_urlsafe(32)
        hashed = digest(sid)
        now = utcnow()
        address, agent = _describe()
        seconds = max(1, int(lifetime.total_seconds()))
        record = {
            "user": str(user_pk),
            "created": now.isoformat(),
            "expires": (now + lifetime).isoformat(),
            "remember": "1" if remember else "",
            "address": address or "",
            "agent": agent or "",
        }

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self._key(hashed), mapping=record)
            pipe.expire(self._key(hashed), seconds)
            pipe.sadd(self._user_key(user_pk), hashed)
            pipe.expire(self._user_key(user_pk), self.longest)
            pipe.execute()

        self._call(write)
        return sid

    def user(self, model: type[t.Any], user_pk: t.Any, sid: str) -> t.Any:
        owner = self._call(lambda: self.client.hget(self._key(digest(sid)), "user"))
        if owner is None or owner.decode() != str(user_pk):
            return None
        return self.db.session.execute(self._load, {"pk": user_pk}).scalar()

    def owner(self, sid: str) -> str | None:
        found = self._call(lambda: self.client.hget(self._key(digest(sid)), "user"))
        return None if found is None else str(found.decode())

    def revoke(self, sid: str) -> None:
        hashed = digest(sid)

        def delete() -> None:
            owner = self.client.hget(self._key(hashed), "user")
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key(hashed))
            if owner is not None:
                pipe.srem(self._user_key(owner.decode()), hashed)
            pipe.execute()

        self._call(delete)

    def revoke_user(self, user_pk: t.Any) -> int:
        def delete_all() -> int:
            members = self.client.smembers(self._user_key(user_pk))
            keys = [self._key(m.decode()) for m in members]
            live = int(self.client.delete(*keys)) if keys else 0
            self.client.delete(self._user_key(user_pk))
            return live

        return int(self._call(delete_all))

    def logins(self, user_pk: t.Any) -> list[Login]:
        def read() -> list[tuple[str, dict[bytes, bytes]]]:
            members = sorted(m.decode() for m in self.client.smembers(self._user_key(user_pk)))
            pipe = self.client.pipeline(transaction=False)
            for hashed in members:
                pipe.hgetall(self._key(hashed))
            records = list(zip(members, pipe.execute(), strict=True))
            gone = [hashed for hashed, record in records if not record]
            if gone:
                self.client.srem(self._user_key(user_pk), *gone)
            return [(hashed, record) for hashed, record in records if record]

        found = []
        for hashed, record in self._call(read):
            text = {k.decode(): v.decode() for k, v in record.items()}
            found.append(
                Login(
                    hashed[:HANDLE_LENGTH],
                    datetime.fromisoformat(text["created"]),
                    datetime.fromisoformat(text["expires"]),
                    bool(text["remember"]),
                    text["address"] or None,
                    text["agent"] or None,
                )
            )
        return sorted(found, key=lambda login: login.created_at, reverse=True)

    def revoke_handle(self, user_pk: t.Any, handle: str) -> bool:
        members = self._call(lambda: self.client.smembers(self._user_key(user_pk)))
        found = [m.decode() for m in members if handle and m.decode().startswith(handle)]
        if len(found) != 1:
            return False
        hashed = found[0]

        def delete() -> bool:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key(hashed))
            pipe.srem(self._user_key(user_pk), hashed)
            return bool(pipe.execute()[0])

        return bool(self._call(delete))


# --- the login's life: Flask-Login's signals, the remember cookie ----------------------------


def decode(cookie: str | None) -> str | None:
    """The payload of a remember cookie this app signed, else ``None``. Flask-Login's
    ``decode_cookie`` raises ``TypeError`` for a non-ASCII cookie (``hmac.compare_digest``)."""
    if not cookie or not cookie.isascii():
        return None
    return t.cast("str | None", decode_cookie(cookie))


def remembered_id(cookie: str | None) -> tuple[str, str] | None:
    """``(user id, login id)`` from a remember cookie this app signed, else ``None``."""
    payload = decode(cookie)
    if not payload:
        return None
    user_id, sep, sid = payload.rpartition("|")
    return (user_id, sid) if sep and user_id and sid else None


def start_afresh(auth: AuthState) -> None:
    """Before a login: end this browser's previous login (session and remember cookie) and
    empty the session but for ``AUTH_SESSION_CARRY_OVER``, so that nothing planted before the
    login (session fixation) carries into it."""
    config = current_app.config
    keep = config.get("AUTH_SESSION_CARRY_OVER") or ()
    kept = {key: cookie_session[key] for key in keep if key in cookie_session}
    _end_browser_logins(auth)
    cookie_session.clear()
    cookie_session.update(kept)


def _end_browser_logins(auth: AuthState) -> None:
    store = auth.sessions
    if store is None:
        return
    previous = cookie_session.pop(SESSION_KEY, None)
    if isinstance(previous, str) and previous:
        store.revoke(previous)
    cookie = request.cookies.get(current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token"))
    remembered = remembered_id(cookie)
    if remembered is not None and remembered[1] != previous:
        store.revoke(remembered[1])


def on_login(app: t.Any, user: t.Any = None, **extra: t.Any) -> None:
    """``user_logged_in``: record the login and keep its id in the session."""
    from .state import state_or_none

    auth = state_or_none(app)
    if auth is None or auth.sessions is None or user is None:
        return
    _end_browser_logins(auth)
    remember = cookie_session.get("_remember") == "set"
    if remember:
        seconds = cookie_session.get("_remember_seconds")
        duration = app.config.get("REMEMBER_COOKIE_DURATION", timedelta(days=14))
        lifetime = timedelta(seconds=seconds) if seconds else as_timedelta(duration)
    else:
        # The browser drops the cookie when it closes; a captured copy ends here.
        lifetime = as_timedelta(app.config.get("PERMANENT_SESSION_LIFETIME", timedelta(days=31)))
    sid = cookie_session[SESSION_KEY] = auth.sessions.create(_pk(user), remember, lifetime)
    if auth.on_recorded is not None:
        auth.on_recorded(sid)
    commit_after(auth)


def on_logout(app: t.Any, user: t.Any = None, **extra: t.Any) -> None:
    """``user_logged_out``: end the login of this session and of its remember cookie."""
    from .state import state_or_none

    auth = state_or_none(app)
    if auth is None or auth.sessions is None:
        return
    _end_browser_logins(auth)
    commit_after(auth)


def commit_after(auth: AuthState) -> None:
    """Commit the record's change once the view is done, if the view left it uncommitted (an
    app's own login view calling ``login_user()`` rarely commits); not for an error answer."""
    if not isinstance(auth.sessions, DatabaseSessions):
        return
    db = auth.db

    @after_this_request
    def commit(response: Response) -> Response:
        if response.status_code >= 400 or not db.session().in_transaction():
            return response
        try:
            db.session.commit()
        except sa.exc.SQLAlchemyError as e:
            log.error("the login's session record could not be saved: %s", e)
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                db.session.rollback()
            from ..api import error_response, under_prefix

            failed = SessionsUnavailable()
            return error_response(failed) if under_prefix() else failed.get_response()
        return response


def as_timedelta(value: t.Any) -> timedelta:
    """A duration setting (a ``timedelta`` or seconds) as a ``timedelta``."""
    return value if isinstance(value, timedelta) else timedelta(seconds=int(value))


def _pk(user: t.Any) -> t.Any:
    return sa.inspect(user).identity[0]

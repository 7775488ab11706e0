"""Mixins for the user model and the API token model (SQLAlchemy 2 typed declarative)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import typing as t
import unicodedata
from datetime import UTC, datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, validates

from . import passwords

#: Prefix of every API token, so that a leaked one is recognisable (e.g. by secret scanners).
TOKEN_PREFIX = "fct_"


def utcnow() -> datetime:
    """Now in UTC, naive (the form the columns store on every database)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_session_token() -> str:
    """A fresh random session token."""
    return secrets.token_urlsafe(24)


def normalise_email(email: str) -> str:
    """The stored form of an email address, one per identity: surrounding space removed, case
    folded and NFKC-normalised (full-width letters become ASCII, ``"STRASSE"`` and ``"straße"``
    are one). Accents are kept: ``"ànn@"`` is another address than ``"ann@"``."""
    folded = unicodedata.normalize("NFKC", email.strip()).casefold()
    # Case folding can leave a form NFKC changes again (e.g. some Greek letters).
    return unicodedata.normalize("NFKC", folded)


def _setting(name: str, default: t.Any) -> t.Any:
    return current_app.config.get(name, default) if has_app_context() else default


class UserMixin:
    """Columns and behaviour of a user model: mix into ``db.Model``.

    ``get_id()`` returns ``"<id>:<session_token>"``: sessions and remember cookies carry the
    token, and :meth:`set_password` rotates it, so a password change ends every other session.

    ::

        class User(UserMixin, db.Model):
            pass
    """

    #: The column a user logs in with (the request field has the same name).
    login_field: t.ClassVar[str] = "email"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)

    # Flask-Login's protocol.
    is_authenticated: t.ClassVar[bool] = True
    is_anonymous: t.ClassVar[bool] = False

    @validates("email")
    def _normalise_email(self, key: str, value: str) -> str:
        # Stored as typed at login, so that "Ann@Example.com" and "ann@example.com" are one user.
        return normalise_email(value) if isinstance(value, str) else value

    @property
    def is_active(self) -> bool:
        """Whether the user may log in (the ``active`` column)."""
        return bool(self.active)

    def get_id(self) -> str:
        """The session identity: primary key and the current session token."""
        if self.session_token is None:
            self.session_token = new_session_token()
        return f"{self.id}:{self.session_token}"

    def set_password(self, password: str) -> None:
        """Check ``password`` against ``AUTH_PASSWORD_MIN_LENGTH``, store its hash and rotate the
        session token (logging out every session and remember cookie of this user)."""
        min_length = int(_setting("AUTH_PASSWORD_MIN_LENGTH", 10))
        passwords.check_strength(password, min_length)
        self.password_hash = passwords.hash_password(password, self.password_method())
        self.session_token = new_session_token()

    def check_password(self, password: object) -> bool:
        """Whether ``password`` is right; one KDF run whatever the input."""
        return passwords.verify(self.password_hash, password, self.password_method())

    def password_needs_rehash(self) -> bool:
        """Whether the stored hash was made with other parameters than the current setting."""
        return passwords.needs_rehash(self.password_hash, self.password_method())

    def rehash_password(self, password: str) -> None:
        """Store a new hash of a just-verified ``password`` without rotating the session token."""
        self.password_hash = passwords.hash_password(password, self.password_method())

    @staticmethod
    def password_method() -> str:
        """The configured hash method (``AUTH_PASSWORD_METHOD``)."""
        return str(_setting("AUTH_PASSWORD_METHOD", passwords.DEFAULT_METHOD))

    def has_role(self, role: str) -> bool:
        """Whether the user has ``role``; the mixin knows one role, ``admin``."""
        return role == "admin" and bool(self.is_admin)

    def auth_dict(self) -> dict[str, t.Any]:
        """What ``GET /auth/me`` shows of the user."""
        return {
            "id": self.id,
            "email": self.email,
            "is_admin": bool(self.is_admin),
            "created_at": _iso(self.created_at),
            "last_login_at": _iso(self.last_login_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def token_digest(token: str) -> str:
    """The stored form of an API token: SHA-256. Tokens carry 256 random bits, so a fast digest
    is safe, and a token request never runs the password KDF."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenMixin:
    """Columns of an API token model: mix into ``db.Model`` next to the user model.

    ::

        class ApiToken(ApiTokenMixin, db.Model):
            pass

    ``__user_table__`` names the user table for the foreign key (default ``"user"``).
    """

    __user_table__: t.ClassVar[str] = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 hex of the token; the token itself is shown once and never stored.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, to tell tokens apart in lists.
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    @declared_attr
    def user_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey(f"{cls.__user_table__}.id", ondelete="CASCADE"), index=True)

    @classmethod
    def issue(cls, user: t.Any, name: str, expires_in: timedelta | None) -> tuple[t.Self, str]:
        """A new token for ``user`` (not yet added to the session) and its secret value."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls()
        token.user_id = user.id
        token.name = name
        token.digest = token_digest(secret)
        token.hint = secret[: len(TOKEN_PREFIX) + 4]
        token.created_at = utcnow()
        token.expires_at = None if expires_in is None else token.created_at + expires_in
        return token, secret

    def is_valid(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired."""
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def auth_dict(self) -> dict[str, t.Any]:
        """What ``GET /auth/tokens`` shows of a token (never the secret)."""
        return {
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked": self.revoked_at is not None,
        }


def constant_equal(a: str, b: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def find_token_model(user_model: type[t.Any]) -> type[ApiTokenMixin] | None:
    """The ``ApiTokenMixin`` model declared in the same registry as ``user_model``."""
    registry = getattr(user_model, "registry", None)
    if registry is None:
        return None
    found = [m.class_ for m in registry.mappers if issubclass(m.class_, ApiTokenMixin)]
    if len(found) > 1:
        names = ", ".join(sorted(c.__name__ for c in found))
        raise RuntimeError(
            f"More than one API token model ({names}): keep one ApiTokenMixin model per app."
        )
    return found[0] if found else None

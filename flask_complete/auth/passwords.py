"""Password hashing: scrypt through Werkzeug, with rehash on parameter change and no timing leaks.

Why scrypt and not argon2: it is in the standard library (``hashlib.scrypt``) and is Werkzeug's
default, so it needs no compiled extra; both are memory-hard. ``AUTH_PASSWORD_METHOD`` takes any
Werkzeug method string (``scrypt:32768:8:1``, ``pbkdf2:sha256:1000000``); hashes made with other
parameters are upgraded at the next successful login.
"""

from __future__ import annotations

import secrets
import typing as t
import unicodedata

from werkzeug.security import DEFAULT_PBKDF2_ITERATIONS, check_password_hash, generate_password_hash

DEFAULT_METHOD = "scrypt"
#: Longer inputs are refused before hashing: a megabyte "password" is a denial of service.
MAX_LENGTH = 1024

_dummy_hashes: dict[str, str] = {}


class PasswordError(ValueError):
    """A password the settings do not allow (too short, too long, not text)."""


def normalise_method(method: str) -> str:
    """The full Werkzeug method string with its parameters, e.g. ``scrypt`` ->
    ``scrypt:32768:8:1``. Raises :class:`ValueError` for an unknown or malformed method."""
    name, *args = method.strip().split(":")
    if name == "scrypt":
        if not args:
            return "scrypt:32768:8:1"
        if len(args) != 3 or not all(a.isdigit() for a in args):
            raise ValueError(f"'scrypt' takes three whole numbers (scrypt:N:r:p), not {method!r}")
        n, r, p = map(int, args)
        if n < 2 or n & (n - 1):
            raise ValueError(f"scrypt's N must be a power of 2 above 1, not {n}")
        return f"scrypt:{n}:{r}:{p}"
    if name == "pbkdf2":
        if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
            raise ValueError(f"use pbkdf2:HASH:ITERATIONS, not {method!r}")
        hash_name = args[0] if args else "sha256"
        iterations = int(args[1]) if len(args) == 2 else DEFAULT_PBKDF2_ITERATIONS
        return f"pbkdf2:{hash_name}:{iterations}"
    raise ValueError(f"unknown password hash method {method!r}; use scrypt or pbkdf2")


def hash_password(password: str, method: str = DEFAULT_METHOD) -> str:
    """Hash ``password`` with ``method`` (a Werkzeug method string)."""
    return generate_password_hash(password, method=method)


def usable(password: object) -> str | None:
    """``password`` if it is one a user can type (text, UTF-8 encodable, bounded, no NUL or
    other control characters), else ``None``."""
    if not isinstance(password, str) or not password or len(password) > MAX_LENGTH:
        return None
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if not password.isprintable() and any(unicodedata.category(c) == "Cc" for c in password):
        return None
    return password


def verify(stored: str | None, password: object, method: str = DEFAULT_METHOD) -> bool:
    """Whether ``password`` matches ``stored``; costs one KDF run whatever the input, so that a
    missing user, a missing hash and a wrong password take the same time."""
    text = usable(password)
    if stored is None or text is None:
        dummy_verify(method)
        return False
    try:
        return check_password_hash(stored, text)
    except (ValueError, TypeError):
        # A malformed stored hash is a failed login, not a server error.
        dummy_verify(method)
        return False


def dummy_verify(method: str = DEFAULT_METHOD) -> None:
    """Spend the time of one verification (used when the email is unknown)."""
    stored = _dummy_hashes.get(method)
    if stored is None:
        # The first call pays the hash instead of the check: one KDF run either way.
        _dummy_hashes[method] = hash_password(secrets.token_urlsafe(16), method)
        return
    check_password_hash(stored, secrets.token_urlsafe(16))


def needs_rehash(stored: str | None, method: str) -> bool:
    """Whether ``stored`` was made with other parameters than ``method``."""
    if not stored:
        return False
    used = stored.partition("$")[0]
    try:
        return normalise_method(used) != normalise_method(method)
    except ValueError:
        return True


def check_strength(password: t.Any, min_length: int) -> str:
    """Return ``password`` if the settings allow it, else raise :class:`PasswordError`."""
    if not isinstance(password, str):
        raise PasswordError("The password must be text.")
    if len(password) < min_length:
        raise PasswordError(
            f"The password is {len(password)} characters; at least {min_length} are required "
            "(AUTH_PASSWORD_MIN_LENGTH)."
        )
    if usable(password) is None:
        if len(password) <= MAX_LENGTH and any(unicodedata.category(c) == "Cc" for c in password):
            raise PasswordError(
                "The password must not hold control characters (NUL, tab, escape ...)."
            )
        raise PasswordError(f"The password must be at most {MAX_LENGTH} characters of valid text.")
    if not password.strip():
        raise PasswordError("The password must not be only spaces.")
    return password

"""The settings flask_complete knows: its own, with a type and the allowed values of each, and
those of Flask and the bundled libraries, so that a misspelt name is caught.

Pure data and functions of values: :mod:`flask_complete.settings.config` turns the answers into
problems.
"""

from __future__ import annotations

import functools
import typing as t
from dataclasses import dataclass

from flask import Flask

#: The top-level tables of a settings file that are sections, not settings.
SECTIONS = ("default", "development", "testing", "production", "global")


@dataclass(frozen=True)
class Spec:
    """A declared setting: a test of its value, the form it must have, and how a bad value is
    described (``AUTH_URL_PREFIX = 5 is not a URL path``)."""

    valid: t.Callable[[t.Any], bool]
    expected: str
    problem: str = "is not valid"


def _boolean(value: t.Any) -> bool:
    # Only real booleans: the string "false" is truthy, 1 and "yes" are guesses.
    return isinstance(value, bool)


BOOLEAN = "true or false (without quotes)"


def boolean() -> Spec:
    return Spec(_boolean, BOOLEAN)


def optional_boolean() -> Spec:
    return Spec(lambda v: v is None or isinstance(v, bool), BOOLEAN)


def integer(minimum: int, unit: str = "", note: str = "") -> Spec:
    def valid(value: t.Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    of = f" of {unit}" if unit else ""
    return Spec(valid, f"a whole number{of} >= {minimum}{note}")


def choice(*allowed: t.Any, expected: str) -> Spec:
    # ``True == 1``: compare types too, so that 1 is not taken for true.
    def valid(value: t.Any) -> bool:
        return any(type(value) is type(a) and value == a for a in allowed)

    return Spec(valid, expected)


def string(expected: str = "a string", problem: str = "is not valid") -> Spec:
    return Spec(lambda v: isinstance(v, str), expected, problem)


def path(expected: str, *, empty: bool = False) -> Spec:
    """A URL path: a string starting with ``/`` (``""`` too when ``empty``)."""

    def valid(value: t.Any) -> bool:
        return isinstance(value, str) and (value.startswith("/") or (empty and value == ""))

    return Spec(valid, expected, "is not a URL path")


def strings(
    expected: str,
    problem: str = "is not valid",
    *,
    one: bool = True,
    none: bool = True,
    item: t.Callable[[str], bool] = lambda s: True,
    extra: t.Callable[[t.Any], bool] | None = None,
) -> Spec:
    """A list of strings each passing ``item``; also one string when ``one``, ``None`` (nothing)
    when ``none``; ``extra`` admits other entries (a callable ``SEEDS`` item set in code)."""

    def entry(value: t.Any) -> bool:
        if isinstance(value, str):
            return item(value)
        return extra is not None and extra(value)

    def valid(value: t.Any) -> bool:
        if isinstance(value, list | tuple | set | frozenset):
            return all(entry(v) for v in value)
        if value is None:
            return none
        return (one or not isinstance(value, str)) and entry(value)

    return Spec(valid, expected, problem)


def table(expected: str) -> Spec:
    return Spec(lambda v: isinstance(v, dict), expected)


_SAMESITE = choice(
    None, "Lax", "Strict", "None", expected='"Lax", "Strict" or "None" (capitalised like that)'
)

#: flask_complete's own settings (every key of ``defaults.toml`` and the URLs and secret it
#: reads). A bad value is an error wherever it was set: the bundle reads these.
BUNDLE: dict[str, Spec] = {
    "COMPLETE_DATABASE": boolean(),
    "COMPLETE_MIGRATE": boolean(),
    "COMPLETE_AUTH": boolean(),
    "COMPLETE_CORS": boolean(),
    "COMPLETE_OWN_SETTINGS": strings("a list of setting names", one=False, none=False),
    "SECRET_KEY": Spec(lambda v: isinstance(v, str | bytes), "a string"),
    "DATABASE_URL": string("a database URL string"),
    "REDIS_URL": string("a redis:// URL string"),
    "DATABASE_POOL": choice("queue", "null", expected='"queue" or "null"'),
    "DATABASE_POOL_SIZE": integer(0),
    "DATABASE_MAX_OVERFLOW": integer(0),
    "DATABASE_POOL_TIMEOUT": integer(0, "seconds"),
    "DATABASE_POOL_RECYCLE": integer(-1, "seconds", ", -1 for never"),
    "DATABASE_MYSQL_POOL_RECYCLE": integer(-1, "seconds", ", -1 for never"),
    "DATABASE_POOL_PRE_PING": boolean(),
    "DATABASE_CONNECT_TIMEOUT": integer(0, "seconds", ", 0 for the driver's own"),
    "SQLITE_BUSY_TIMEOUT": integer(0, "milliseconds"),
    "SQLALCHEMY_ENGINE_OPTIONS": table("a table, e.g. {pool_size = 5}"),
    "SQLALCHEMY_BINDS": table('a table of URLs, e.g. {reports = "sqlite:///reports.db"}'),
    "MIGRATIONS_DIR": string("a folder name, relative to the root"),
    "MODELS": strings('a list of module names, e.g. ["myapp.models"]'),
    "SEEDS": strings(
        'a "package.module:function" string, a module name, or a list of them',
        extra=callable,
    ),
    "CORS_ORIGINS": strings(
        'a list of origins, e.g. ["https://app.example.com"]', "is not a list of origins"
    ),
    "CORS_RESOURCES": strings(
        'a list of path globs starting with "/", e.g. ["/api/*", "/auth/*"]',
        item=lambda s: s.startswith("/"),
    ),
    "CORS_SUPPORTS_CREDENTIALS": boolean(),
    "CORS_MAX_AGE": Spec(
        lambda v: v is None or integer(0).valid(v), "a whole number of seconds >= 0"
    ),
    "CORS_EXPOSE_HEADERS": strings('a list of names, e.g. ["X-Total-Count"]'),
    "HEALTH_ENDPOINT": path(
        'a path starting with "/", e.g. "/-/health", or "" for none', empty=True
    ),
    "AUTH_URL_PREFIX": path('a path starting with "/", e.g. "/auth"'),
    "AUTH_ENDPOINTS": boolean(),
    "AUTH_PASSWORD_METHOD": string('a hash method, e.g. "scrypt"'),
    "AUTH_PASSWORD_MIN_LENGTH": integer(1),
    "AUTH_REMEMBER_DAYS": integer(1),
    "AUTH_TOKEN_DAYS": integer(1),
    "AUTH_TOKEN_MAX_DAYS": integer(1),
    "AUTH_THROTTLE": boolean(),
    "AUTH_THROTTLE_ACCOUNT_LIMIT": integer(1),
    "AUTH_THROTTLE_ADDRESS_LIMIT": integer(1),
    "AUTH_THROTTLE_DELAY": integer(1),
    "AUTH_THROTTLE_MAX_DELAY": integer(1),
    "AUTH_THROTTLE_WINDOW": integer(1),
    "AUTH_THROTTLE_STORAGE": string('"database", "redis", a redis:// URL, or "" to choose'),
    "AUTH_THROTTLE_PREFIX": string("a key prefix string"),
    "AUTH_THROTTLE_FAIL_OPEN": boolean(),
    # A security switch: anything but these three is an error, never "off".
    "CSRF_PROTECT": choice(True, False, "auto", expected='true, false or "auto"'),
    "AUTH_TRUSTED_ORIGINS": strings(
        'a list of origins, e.g. ["https://app.example.com"]',
        "is not a list of origins",
        one=False,
        none=False,
    ),
    "AUTH_SESSIONS": boolean(),
    "AUTH_SESSION_STORAGE": string(
        '"database", "redis", a redis:// URL, or "" for the throttle\'s'
    ),
    "AUTH_SESSION_PREFIX": string("a key prefix string"),
    "AUTH_SESSION_CARRY_OVER": strings(
        'a list of session keys, e.g. ["cart_id"]', one=False, none=False
    ),
}

#: Settings of Flask and the bundled libraries with a declared form. A bad value from a file or
#: the environment is an error; set in code it is a warning (an existing app keeps starting).
LIBRARY: dict[str, Spec] = {
    **{key: boolean() for key, value in Flask.default_config.items() if isinstance(value, bool)},
    # Default None in Flask ("decide from DEBUG"), a boolean when set.
    "DEBUG": optional_boolean(),
    "PROPAGATE_EXCEPTIONS": optional_boolean(),
    "TRAP_BAD_REQUEST_ERRORS": optional_boolean(),
    "TEMPLATES_AUTO_RELOAD": optional_boolean(),
    "SESSION_COOKIE_SAMESITE": _SAMESITE,
    # Bytes; None (no limit) only when set in code.
    "MAX_CONTENT_LENGTH": Spec(
        lambda v: v is None or integer(1).valid(v), "a whole number of bytes >= 1, e.g. 4194304"
    ),
    # Flask-Login
    "REMEMBER_COOKIE_SECURE": boolean(),
    "REMEMBER_COOKIE_HTTPONLY": boolean(),
    "REMEMBER_COOKIE_REFRESH_EACH_REQUEST": boolean(),
    "REMEMBER_COOKIE_SAMESITE": _SAMESITE,
    "USE_SESSION_FOR_NEXT": boolean(),
    "LOGIN_DISABLED": boolean(),
    # Flask-Login turns protection off for any other value, "Strong" included.
    "SESSION_PROTECTION": choice(
        "basic", "strong", None, False, expected='"basic", "strong" or false'
    ),
    # Flask-SQLAlchemy
    "SQLALCHEMY_ECHO": choice(True, False, "debug", expected='true, false or "debug"'),
    "SQLALCHEMY_RECORD_QUERIES": boolean(),
    "SQLALCHEMY_TRACK_MODIFICATIONS": boolean(),
    # flask-cors
    **{
        f"CORS_{name}": boolean()
        for name in (
            "SEND_WILDCARD",
            "AUTOMATIC_OPTIONS",
            "VARY_HEADER",
            "INTERCEPT_EXCEPTIONS",
            "ALWAYS_SEND",
            "ALLOW_PRIVATE_NETWORK",
        )
    },
}

#: Flask-Login's settings (``flask_login.config`` and what ``LoginManager`` reads).
FLASK_LOGIN_KEYS = frozenset(
    (
        "REMEMBER_COOKIE_NAME",
        "REMEMBER_COOKIE_DOMAIN",
        "REMEMBER_COOKIE_PATH",
        "REMEMBER_COOKIE_SECURE",
        "REMEMBER_COOKIE_HTTPONLY",
        "REMEMBER_COOKIE_SAMESITE",
        "REMEMBER_COOKIE_DURATION",
        "REMEMBER_COOKIE_REFRESH_EACH_REQUEST",
        "SESSION_PROTECTION",
        "USE_SESSION_FOR_NEXT",
        "LOGIN_DISABLED",
        "AUTH_HEADER_NAME",
        "FORCE_HOST_FOR_REDIRECTS",
    )
)
#: flask-cors' settings (``flask_cors.core.CONFIG_OPTIONS``).
FLASK_CORS_KEYS = frozenset(
    f"CORS_{name}"
    for name in (
        "ORIGINS",
        "METHODS",
        "ALLOW_HEADERS",
        "EXPOSE_HEADERS",
        "SUPPORTS_CREDENTIALS",
        "MAX_AGE",
        "SEND_WILDCARD",
        "AUTOMATIC_OPTIONS",
        "VARY_HEADER",
        "RESOURCES",
        "INTERCEPT_EXCEPTIONS",
        "ALWAYS_SEND",
        "ALLOW_PRIVATE_NETWORK",
    )
)
#: Flask-SQLAlchemy 3's settings.
FLASK_SQLALCHEMY_KEYS = frozenset(
    (
        "SQLALCHEMY_DATABASE_URI",
        "SQLALCHEMY_ENGINE_OPTIONS",
        "SQLALCHEMY_ECHO",
        "SQLALCHEMY_BINDS",
        "SQLALCHEMY_RECORD_QUERIES",
        "SQLALCHEMY_TRACK_MODIFICATIONS",
    )
)

#: Every name a misspelling is compared with.
KNOWN: frozenset[str] = frozenset(
    (
        *BUNDLE,
        *LIBRARY,
        *Flask.default_config,
        *FLASK_LOGIN_KEYS,
        *FLASK_CORS_KEYS,
        *FLASK_SQLALCHEMY_KEYS,
        "COMPLETE_ENV",
    )
)


def spec(key: str) -> tuple[Spec, bool] | None:
    """The declaration of ``key`` and whether it is the bundle's own; ``None`` if undeclared."""
    if key in BUNDLE:
        return BUNDLE[key], True
    if key in LIBRARY:
        return LIBRARY[key], False
    return None


def distance(a: str, b: str, limit: int = 3) -> int:
    """The edit distance of ``a`` and ``b``, a swap of neighbours counting as one edit
    (optimal string alignment); anything above ``limit`` is reported as ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        previous2, previous = previous, row
    return previous[-1]


def _allowed_edits(name: str) -> int:
    # One edit in a short name already makes another word ("DEBUG" / "DEBUGS").
    return 1 if len(name) <= 8 else 2


def near(name: str, candidates: t.Iterable[str]) -> str | None:
    """The candidate ``name`` is most likely a misspelling of, or ``None``."""
    best: tuple[int, str] | None = None
    for candidate in candidates:
        allowed = _allowed_edits(candidate)
        # Cheap tests first: an edit changes the length by one and the set of letters by two.
        if abs(len(name) - len(candidate)) > allowed:
            continue
        if len(set(name) ^ set(candidate)) > 2 * allowed:
            continue
        d = distance(name, candidate, allowed)
        if 0 < d <= allowed and (best is None or (d, candidate) < best):
            best = (d, candidate)
    return best[1] if best else None


@functools.lru_cache(maxsize=4096)
def _closest_known(name: str) -> str | None:
    # Cached: a test suite builds many apps with the same settings.
    return near(name, KNOWN)


def misspelt(key: str, own: t.Container[str] = ()) -> str | None:
    """The known setting ``key`` looks like a misspelling of; ``""`` for an unknown name in the
    bundle's own ``COMPLETE_`` namespace with no close match; ``None`` when ``key`` is fine
    (known, listed in ``own``, or resembling nothing)."""
    if key in KNOWN or key in own:
        return None
    found = _closest_known(key)
    if found is None and key.startswith("COMPLETE_"):
        return ""
    return found


def misspelt_section(name: str) -> str | None:
    """The section a top-level table name looks like a misspelling of (``[developmnet]``);
    ``[global]``, a rare alias, is left out (``[GLOBALS]`` stays a table setting)."""
    return near(name.lower(), SECTIONS[:4])


#: Known settings whose names look secret (``AUTH_TOKEN_DAYS``, ``AUTH_HEADER_NAME``) but whose
#: values are not: shown by ``flask complete config``.
NOT_SECRET: frozenset[str] = frozenset(k for k in KNOWN if not k.startswith("SECRET_KEY"))

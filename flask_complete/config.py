"""Layered, environment-aware settings, merged into ``app.config`` once, at init.

Values from the environment and ``.env`` are read with Dynaconf's parser and dotenv reader; no
settings object outlives init, so reading ``app.config`` stays a plain dict lookup.

Lowest first: bundle ``[default]`` < ``settings.toml [default]`` < bundle ``[<env>]`` <
``settings.toml [<env>]`` < ``.secrets.toml`` < ``.env`` (development only) < environment
variables < values the app set in code before the call.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import secrets
import tomllib
import typing as t
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import click
from dynaconf.utils.parse_conf import parse_conf_data

if t.TYPE_CHECKING:
    from flask import Flask

ENVIRONMENTS = ("development", "testing", "production")
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
SETTINGS_FILE = "settings.toml"
SECRETS_FILE = ".secrets.toml"
DOTENV_FILE = ".env"

#: Keys read once by ``init_app``; changing them afterwards has no effect.
INIT_TIME_KEYS = (
    "SQLALCHEMY_DATABASE_URI",
    "SQLALCHEMY_ENGINE_OPTIONS",
    "SQLALCHEMY_BINDS",
    "SECRET_KEY",
)
INIT_TIME_PREFIXES = ("DATABASE_", "CORS_", "COMPLETE_", "AUTH_")

#: Defaults that Flask-SQLAlchemy writes with ``setdefault``: equal values are not "set in code".
LIBRARY_DEFAULTS: dict[str, t.Any] = {
    "SQLALCHEMY_DATABASE_URI": None,
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    "SQLALCHEMY_ECHO": False,
    "SQLALCHEMY_BINDS": {},
    "SQLALCHEMY_RECORD_QUERIES": False,
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
}

#: ``FLASK_*`` variables that belong to the ``flask`` command, not to the settings.
_CLI_VARIABLES = {"APP", "ENV", "DEBUG", "SKIP_DOTENV", "COMPLETE_ENV"}
#: 12-factor names honoured without the ``FLASK_`` prefix (the prefixed name wins).
_UNPREFIXED = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
#: Values never parsed as TOML from the environment: a numeric secret must stay a string.
_STRING_KEYS = re.compile(
    r"^(SECRET_KEY|DATABASE_URL|SQLALCHEMY_DATABASE_URI|REDIS_URL|.*_PASSWORD)$"
)
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY", re.IGNORECASE)
#: The bundle's own settings whose names match ``_SECRET_NAME`` but hold no secret.
_NOT_SECRET = frozenset(
    ("AUTH_PASSWORD_METHOD", "AUTH_PASSWORD_MIN_LENGTH", "AUTH_TOKEN_DAYS", "AUTH_TOKEN_MAX_DAYS")
)
_PLACEHOLDER_SECRETS = re.compile(
    r"^(dev|development|secret|changeme|change[-_ ]?me.*|.*not[-_ ]?secret.*|your[-_ ]?secret.*|"
    r"replace[-_ ]?me.*|test|testing|password|xxx+)$",
    re.IGNORECASE,
)
MIN_SECRET_BYTES = 32

_forced_env: str | None = None


class ConfigError(click.ClickException):
    """The settings are invalid or unsafe; the message names each setting and the fix."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = ["flask_complete cannot start with these settings:"]
        lines += [f"  - [{p.id}] {p.message} {p.fix}".rstrip() for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: an id, what is wrong, how to fix it."""

    id: str
    key: str
    message: str
    fix: str = ""
    level: str = "error"


@dataclass
class Settings:
    """The result of loading: merged values, where each came from, and what went wrong."""

    env: str
    root: Path
    values: dict[str, t.Any]
    sources: dict[str, str]
    code: dict[str, t.Any]
    shadowed: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: ``SECRET_KEY`` was generated (development, testing): no key for production.
    secret_generated: bool = False


def force_env(env: str | None) -> None:
    """Pin every app initialised from now on to ``env`` (``None`` lifts it). Used by the pytest
    plugin so that a whole test run is in ``testing``."""
    global _forced_env
    if env is not None and env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    _forced_env = env


def select_env(explicit: str | None = None) -> str:
    """The settings environment: ``Complete(env=...)`` > the pytest plugin > ``FLASK_ENV``."""
    if explicit is not None:
        source, value = "Complete(env=...)", explicit
    elif _forced_env is not None:
        return _forced_env
    else:
        source, value = "FLASK_ENV", os.environ.get("FLASK_ENV", "") or "development"
    env = value.strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(
            [
                Problem(
                    "env.unknown",
                    "FLASK_ENV" if source == "FLASK_ENV" else "env",
                    f"{source}={value!r} is not an environment.",
                    f"Use one of: {', '.join(ENVIRONMENTS)}.",
                )
            ]
        )
    return env


def find_root(start: str | os.PathLike[str]) -> Path:
    """The project root: the nearest folder at or above ``start`` holding ``settings.toml``
    or ``pyproject.toml``; ``start`` itself when there is none."""
    start_path = Path(start).resolve()
    for folder in (start_path, *start_path.parents):
        if (folder / SETTINGS_FILE).is_file() or (folder / "pyproject.toml").is_file():
            return folder
    return start_path


def code_values(app: Flask) -> dict[str, t.Any]:
    """The values the app set in code: those differing from Flask's and the libraries' defaults."""
    flask_defaults = app.make_config()
    found = {}
    for key, value in app.config.items():
        if key in flask_defaults:
            if flask_defaults[key] == value:
                continue
        elif key in LIBRARY_DEFAULTS and LIBRARY_DEFAULTS[key] == value:
            continue
        found[key] = value
    return found


def read_toml(path: Path) -> dict[str, t.Any]:
    """Parse a TOML file; a syntax error names the file and the line."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            [
                Problem(
                    "config.toml",
                    path.name,
                    f"{path} is not valid TOML: {e}.",
                    "Fix the file at that line (strings need quotes, tables [brackets]).",
                )
            ]
        ) from None
    except OSError as e:
        raise ConfigError(
            [Problem("config.read", path.name, f"{path} cannot be read: {e.strerror}.")]
        ) from None


def _sections(data: dict[str, t.Any], label: str) -> dict[str, dict[str, t.Any]]:
    """Split a settings file into its environment sections; top-level keys are ``default``."""
    sections: dict[str, dict[str, t.Any]] = {"default": {}}
    for key, value in data.items():
        name = key.lower()
        if name in ("default", *ENVIRONMENTS, "global"):
            if not isinstance(value, dict):
                raise ConfigError(
                    [
                        Problem(
                            "config.section",
                            key,
                            f"{label}: [{key}] must be a table of settings.",
                            f"Write it as a section: [{name}] followed by KEY = value lines.",
                        )
                    ]
                )
            sections.setdefault("default" if name == "global" else name, {}).update(value)
        else:
            sections["default"][key] = value
    return {name: {k.upper(): v for k, v in sec.items()} for name, sec in sections.items()}


@functools.cache
def _bundle_sections() -> dict[str, dict[str, t.Any]]:
    return _sections(read_toml(DEFAULTS_FILE), "flask_complete defaults")


def _file_layers(env: str, root: Path) -> list[tuple[str, dict[str, t.Any]]]:
    bundle = _bundle_sections()
    layers = [("flask_complete default", copy.deepcopy(bundle["default"]))]
    user: dict[str, dict[str, t.Any]] = {}
    if (root / SETTINGS_FILE).is_file():
        user = _sections(read_toml(root / SETTINGS_FILE), SETTINGS_FILE)
        layers.append(_typed_layer(f"{SETTINGS_FILE} [default]", user.get("default", {})))
    layers.append((f"flask_complete [{env}]", copy.deepcopy(bundle.get(env, {}))))
    if user:
        layers.append(_typed_layer(f"{SETTINGS_FILE} [{env}]", user.get(env, {})))
    if (root / SECRETS_FILE).is_file():
        hidden = _sections(read_toml(root / SECRETS_FILE), SECRETS_FILE)
        layers.append(_typed_layer(f"{SECRETS_FILE} [default]", hidden.get("default", {})))
        layers.append(_typed_layer(f"{SECRETS_FILE} [{env}]", hidden.get(env, {})))
    return layers


def _typed_layer(source: str, layer: dict[str, t.Any]) -> tuple[str, dict[str, t.Any]]:
    """A layer of the user's own files, its values read the way Dynaconf reads them."""
    return source, {key: _typed(key, value, source, tomlfy=False) for key, value in layer.items()}


def _typed(key: str, value: t.Any, source: str, *, tomlfy: bool) -> t.Any:
    """``value`` through Dynaconf's parser, as Dynaconf reads files and the environment: casting
    tokens apply (``"@int 5"`` is 5), and with ``tomlfy`` a raw string is read as TOML (``9`` is
    a number). Secrets and URLs stay as written."""
    if _STRING_KEYS.match(key.split("__")[0].upper()):
        return value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "@reset": Dynaconf warns it is no longer needed
            parsed = parse_conf_data(value, tomlfy=tomlfy, box_settings={})
    except Exception as e:  # Dynaconf's casts raise their own errors: "@int abc"
        raise ConfigError(
            [
                Problem(
                    "config.token",
                    key,
                    f"{key} = {value!r} (from {source}) cannot be read: {e}",
                    "Fix the value after the token (e.g. @int 5), or write the plain value.",
                )
            ]
        ) from None
    return _plain(key, parsed, source)


def _plain(key: str, value: t.Any, source: str) -> t.Any:
    """Plain dicts and lists; tokens that need a live Dynaconf object are refused by name."""
    if getattr(value, "_dynaconf_reset", False):
        return _plain(key, value.value, source)
    if isinstance(value, dict):
        return {k: _plain(f"{key}.{k}", v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(key, v, source) for v in value]
    lazy = getattr(value, "_dynaconf_lazy_format", False)
    if lazy or getattr(value, "_meta_value", False) or type(value).__name__ == "Empty":
        token = f"@{value.formatter}" if lazy else f"@{type(value).__name__.lower()}"
        raise ConfigError(
            [
                Problem(
                    "config.token",
                    key,
                    f"{key} (from {source}) uses Dynaconf's {token}, which needs a live Dynaconf "
                    "settings object: flask_complete reads the settings once, at init, into "
                    "plain values.",
                    "Write the final value instead; set one key of a table with "
                    "FLASK_<TABLE>__<key>=...; compute values from other settings in code, "
                    "before Complete(app).",
                )
            ]
        )
    return value


def _variables(environ: t.Mapping[str, str]) -> dict[str, str]:
    """Settings named by environment variables: ``FLASK_X`` -> ``X``, plus the 12-factor names."""
    found = {name: environ[name] for name in _UNPREFIXED if environ.get(name)}
    for name, raw in environ.items():
        if not name.startswith("FLASK_"):
            continue
        key = name[6:]
        if key in _CLI_VARIABLES or key.startswith("RUN_") or not key:
            continue
        found[key] = raw
    return found


def _dotenv_values(root: Path) -> dict[str, str]:
    from dynaconf.vendor.dotenv import dotenv_values

    path = root / DOTENV_FILE
    if not path.is_file():
        return {}
    values = dotenv_values(path)  # type: ignore[no-untyped-call]
    return {k: v for k, v in values.items() if v is not None}


def _is_int(minimum: int) -> t.Callable[[t.Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


#: Known settings: a test of the value and the expected form, quoted in the error.
_CHECKS: dict[str, tuple[t.Callable[[t.Any], bool], str]] = {
    "SECRET_KEY": (lambda v: isinstance(v, str | bytes), "a string"),
    "DATABASE_URL": (lambda v: isinstance(v, str), "a database URL string"),
    "DATABASE_POOL": (lambda v: v in ("queue", "null"), '"queue" or "null"'),
    "DATABASE_POOL_SIZE": (_is_int(0), "a whole number >= 0"),
    "DATABASE_MAX_OVERFLOW": (_is_int(0), "a whole number >= 0"),
    "DATABASE_POOL_TIMEOUT": (_is_int(0), "a whole number of seconds >= 0"),
    "DATABASE_POOL_RECYCLE": (_is_int(-1), "a whole number of seconds, -1 for never"),
    "DATABASE_MYSQL_POOL_RECYCLE": (_is_int(-1), "a whole number of seconds, -1 for never"),
    "DATABASE_POOL_PRE_PING": (lambda v: isinstance(v, bool), "true or false"),
    "SQLITE_BUSY_TIMEOUT": (_is_int(0), "a whole number of milliseconds >= 0"),
    "SQLALCHEMY_ENGINE_OPTIONS": (
        lambda v: isinstance(v, dict),
        "a table, e.g. {pool_size = 5}",
    ),
    "SQLALCHEMY_BINDS": (
        lambda v: isinstance(v, dict),
        'a table of URLs, e.g. {reports = "sqlite:///reports.db"}',
    ),
    "MIGRATIONS_DIR": (lambda v: isinstance(v, str), "a folder name, relative to the root"),
}


def _check_types(values: dict[str, t.Any], sources: dict[str, str]) -> list[Problem]:
    problems = []
    for key, value in values.items():
        if key in _CHECKS:
            valid, expected = _CHECKS[key]
        elif key.startswith("COMPLETE_") and key != "COMPLETE_ENV":
            valid, expected = (lambda v: isinstance(v, bool)), "true or false"
        else:
            continue
        if not valid(value):
            shown = "***" if key == "SECRET_KEY" else repr(value)
            problems.append(
                Problem(
                    "config.type",
                    key,
                    f"{key} = {shown} (from {sources.get(key, 'unknown')}) is not valid.",
                    f"Expected {expected}.",
                )
            )
    return problems


def _put(values: dict[str, t.Any], key: str, value: t.Any) -> str:
    """Set ``key`` in ``values`` (``A__b`` sets ``b`` inside table ``A``); return the top key."""
    top, *nested = key.split("__")
    top = top.upper()
    if top == "SQLALCHEMY_DATABASE_URI":
        top = "DATABASE_URL"
    if not nested:
        values[top] = value
        return top
    table = values
    for part in [top, *nested[:-1]]:
        if not isinstance(table.get(part), dict):
            table[part] = {}
        table = table[part]
    table[nested[-1]] = value
    return top


def load(app: Flask, *, env: str, root: Path) -> Settings:
    """Load the layers for ``env`` from ``root`` and the environment, and validate them.

    Does not touch ``app.config``; see :func:`apply`.
    """
    code = code_values(app)
    values: dict[str, t.Any] = {}
    sources: dict[str, str] = {}

    for source, layer in _file_layers(env, root):
        for key, value in layer.items():
            sources[_put(values, key, value)] = source

    variables = _variables(os.environ)
    if env == "development":
        for key, raw in _variables(_dotenv_values(root)).items():
            if key not in variables:
                sources[_put(values, key, _typed(key, raw, DOTENV_FILE, tomlfy=True))] = DOTENV_FILE
    dotenv_loaded = _dotenv_values(root) if os.environ.get("FLASK_RUN_FROM_CLI") else {}
    # Unprefixed first, so that FLASK_X wins over X.
    for key in sorted(variables, key=lambda k: k not in _UNPREFIXED):
        prefixed = f"FLASK_{key}"
        name = prefixed if prefixed in os.environ else key
        origin = f"env {name}"
        if dotenv_loaded.get(name) == os.environ[name]:
            origin += " (from .env, loaded by flask)"
        sources[_put(values, key, _typed(key, variables[key], origin, tomlfy=True))] = origin

    settings = Settings(env=env, root=root, values=values, sources=sources, code=code)
    for key, value in code.items():
        file_key = "DATABASE_URL" if key == "SQLALCHEMY_DATABASE_URI" else key
        if file_key in values and values[file_key] != value:
            settings.shadowed[key] = sources[file_key]
    settings.problems = _check_types(values, sources)
    return settings


def apply(app: Flask, settings: Settings) -> None:
    """Merge the loaded values into ``app.config`` under the values the app set in code."""
    for key, value in settings.values.items():
        target = "SQLALCHEMY_DATABASE_URI" if key == "DATABASE_URL" else key
        if target in settings.code or (key == "DATABASE_URL" and "DATABASE_URL" in settings.code):
            continue
        app.config[target] = value
        settings.sources[target] = settings.sources.get(key, "flask_complete")
    for key in settings.code:
        settings.sources[key] = "code"
    app.config["COMPLETE_ENV"] = settings.env
    settings.sources["COMPLETE_ENV"] = "environment selection"


#: The file in the instance folder holding the generated development ``SECRET_KEY``.
DEV_SECRET_FILE = "secret_key"


def fill_secret(app: Flask, settings: Settings) -> None:
    """Give development and testing a ``SECRET_KEY`` when no layer and no code set one, so that
    sessions and logins work out of the box. Development keeps it in the instance folder (the
    same key across restarts and processes, never in git); testing makes one per process.
    Production never gets one: it must be set."""
    if app.config.get("SECRET_KEY") or settings.env == "production":
        return
    if settings.env == "testing":
        key, source = secrets.token_urlsafe(48), "generated for this process (testing)"
    else:
        path = Path(app.instance_path) / DEV_SECRET_FILE
        key, source = _dev_secret(path), f"generated for development ({path})"
    app.config["SECRET_KEY"] = key
    settings.sources["SECRET_KEY"] = source
    settings.secret_generated = True


def _dev_secret(path: Path) -> str:
    """The key kept in ``path``, written there first if there is none; a fresh key for this
    process alone when the folder cannot be written."""
    with contextlib.suppress(OSError):
        if key := path.read_text().strip():
            return key
    key = secrets.token_urlsafe(48)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(key + "\n")
        # A hard link publishes the whole file at once: workers starting together agree.
        os.link(draft, path)
    except FileExistsError:
        with contextlib.suppress(OSError):
            key = path.read_text().strip() or key
    except OSError:
        pass  # e.g. a read-only instance folder: sessions last as long as the process
    finally:
        with contextlib.suppress(OSError):
            draft.unlink()
    return key


def check_secret(value: t.Any, env: str, source: str) -> list[Problem]:
    """Refuse a missing or weak ``SECRET_KEY`` in production."""
    if env != "production":
        return []
    where = (
        "Set it in the environment (SECRET_KEY=...) or in .secrets.toml; "
        "`flask complete init` writes a strong one, or use "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
    )
    if not value:
        return [Problem("secret.missing", "SECRET_KEY", "SECRET_KEY is not set.", where)]
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if isinstance(value, str) and _PLACEHOLDER_SECRETS.match(value.strip()):
        return [
            Problem(
                "secret.placeholder",
                "SECRET_KEY",
                f"SECRET_KEY (from {source}) is a known placeholder.",
                where,
            )
        ]
    if len(raw) < MIN_SECRET_BYTES:
        return [
            Problem(
                "secret.weak",
                "SECRET_KEY",
                f"SECRET_KEY (from {source}) is {len(raw)} bytes; production needs at least "
                f"{MIN_SECRET_BYTES}.",
                where,
            )
        ]
    return []


def redact(key: str, value: t.Any) -> t.Any:
    """Hide secrets: values of keys naming a secret, and passwords inside database URLs."""
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if (
        _SECRET_NAME.search(key)
        and key.upper() not in _NOT_SECRET
        and value not in (None, "", b"")
        and not isinstance(value, bool)
    ):
        return "***"
    if isinstance(value, dict):
        return {k: redact(str(k), v) for k, v in value.items()}
    return value


def redact_url(url: t.Any) -> str:
    """A database URL with its password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def is_init_time_key(key: str) -> bool:
    """Whether ``key`` is read only at init, so a later change has no effect."""
    return key in INIT_TIME_KEYS or key.startswith(INIT_TIME_PREFIXES)

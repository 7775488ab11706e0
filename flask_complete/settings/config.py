"""Layered, environment-aware settings, merged into ``app.config`` once, at init.

Values from the environment and ``.env`` are read as Dynaconf reads them, with its parser and
dotenv reader; no settings object outlives init, so reading ``app.config`` stays a plain dict
lookup. Dynaconf itself is imported only for a value with a ``@token``: its package imports all
of Dynaconf (~30 ms), and a value without a token is plain TOML.

Lowest first: bundle ``[default]`` < ``settings.toml [default]`` < bundle ``[<env>]`` <
``settings.toml [<env>]`` < ``.secrets.toml`` < ``credentials/<env>.toml.enc`` (decrypted) <
``.env`` (development only) < environment variables < values the app set in code before the call.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import logging
import os
import re
import secrets
import sys
import tomllib
import typing as t
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..problems import ConfigError as ConfigError
from ..problems import Problem as Problem
from . import credentials
from . import schema as schema
from .dotenv import dotenv_problem, flask_dotenv
from .environment import ENVIRONMENTS as ENVIRONMENTS
from .environment import Selection, env_names, select
from .sensitive import MIN_SECRET_BYTES as MIN_SECRET_BYTES
from .sensitive import redact as redact
from .sensitive import redact_url as redact_url
from .sensitive import weakness

if t.TYPE_CHECKING:
    from flask import Flask

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
SETTINGS_FILE = "settings.toml"
SECRETS_FILE = ".secrets.toml"
DOTENV_FILE = ".env"

logger = logging.getLogger("flask_complete")

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
_CLI_VARIABLES = {"APP", "ENV", "DEBUG", "SKIP_DOTENV", "ENV_FILE", "COMPLETE_ENV"}
#: 12-factor names honoured without the ``FLASK_`` prefix (the prefixed name wins).
_UNPREFIXED = ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
#: Values never parsed as TOML from the environment: a numeric secret must stay a string.
_STRING_KEYS = re.compile(
    r"^(SECRET_KEY|DATABASE_URL|SQLALCHEMY_DATABASE_URI|REDIS_URL|.*_PASSWORD)$"
)

_forced_env: str | None = None
#: The pytest-xdist worker of this process ("gw0"), when the pytest plugin pinned the run.
_forced_worker = ""


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
    #: Environment variables the ``flask`` command set from ``.flaskenv``/``.env``: name -> file.
    flask_dotenv: dict[str, str] = field(default_factory=dict)
    #: ``root`` was given as ``Complete(root=...)``, not found from the app's folder.
    root_given: bool = False


def force_env(env: str | None, worker: str = "") -> None:
    """Pin every app initialised from now on to ``env`` (``None`` lifts it). Used by the pytest
    plugin so that a whole test run is in ``testing``; ``worker`` names the pytest-xdist worker
    (each gets its own test databases)."""
    global _forced_env, _forced_worker
    if env is not None and env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    _forced_env, _forced_worker = env, worker


def select_env(
    explicit: str | None = None, var: str | None = None, names: t.Mapping[str, str] | None = None
) -> Selection:
    """The settings environment and what named it: ``Complete(env=...)`` > the pytest plugin >
    the app's own variable ``var`` (its values mapped by ``names``) > ``FLASK_ENV``
    (:func:`flask_complete.settings.environment.select`)."""
    return select(explicit, _forced_env, var, env_names(names), os.environ)


def find_root(start: str | os.PathLike[str]) -> Path:
    """The project root: the nearest folder at or above ``start`` holding ``settings.toml``
    or ``pyproject.toml``, else the top of the git work tree holding ``start`` (never a folder
    above it); ``start`` itself when there is neither."""
    start_path = Path(start).resolve()
    for folder in (start_path, *start_path.parents):
        if (folder / SETTINGS_FILE).is_file() or (folder / "pyproject.toml").is_file():
            return folder
        if (folder / ".git").exists():  # a folder, or a file in a worktree or submodule
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


def _sections(
    data: dict[str, t.Any], label: str, problems: list[Problem]
) -> dict[str, dict[str, t.Any]]:
    """Split a settings file into its environment sections; top-level keys are ``default``.

    An UPPER_CASE top-level table is a table setting; a lower-case one, or one named nearly
    like a section (``[developmnet]``, ``[PRODUCTON]``), is an unknown section, reported in
    ``problems`` and left out.
    """
    sections: dict[str, dict[str, t.Any]] = {"default": {}}
    for key, value in data.items():
        name = key.lower()
        # ``TESTING = true`` is Flask's setting; ``[TESTING]`` and ``testing = ...`` are sections.
        if name in schema.SECTIONS and (isinstance(value, dict) or key == name):
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
        elif isinstance(value, dict) and (key != key.upper() or schema.misspelt_section(key)):
            problems.append(_unknown_section(key, label))
        else:
            sections["default"][key] = value
    return {name: {k.upper(): v for k, v in sec.items()} for name, sec in sections.items()}


def _unknown_section(key: str, label: str) -> Problem:
    known = ", ".join(f"[{s}]" for s in schema.SECTIONS[:4])
    guess = schema.misspelt_section(key)
    if guess:
        return Problem(
            "config.section",
            key,
            f"{label}: [{key}] is not a section; did you mean [{guess}]?",
            f"Rename it to [{guess}] (the sections are {known}); for a table setting of that "
            f"name, write [default.{key.upper()}].",
        )
    return Problem(
        "config.section",
        key,
        f"{label}: [{key}] is not a section (they are {known}).",
        f"Settings are upper case: for a table setting write [{key.upper()}] (or "
        f"[default.{key.upper()}]); for an environment use one of the sections.",
    )


@functools.cache
def _bundle_sections() -> dict[str, dict[str, t.Any]]:
    return _sections(read_toml(DEFAULTS_FILE), "flask_complete defaults", [])


def _file_layers(
    env: str, root: Path, problems: list[Problem]
) -> list[tuple[str, dict[str, t.Any]]]:
    bundle = _bundle_sections()
    layers = [("flask_complete default", copy.deepcopy(bundle["default"]))]
    user: dict[str, dict[str, t.Any]] = {}
    if (root / SETTINGS_FILE).is_file():
        user = _sections(read_toml(root / SETTINGS_FILE), SETTINGS_FILE, problems)
        layers.append(_typed_layer(f"{SETTINGS_FILE} [default]", user.get("default", {})))
    layers.append((f"flask_complete [{env}]", copy.deepcopy(bundle.get(env, {}))))
    if user:
        layers.append(_typed_layer(f"{SETTINGS_FILE} [{env}]", user.get(env, {})))
    if (root / SECRETS_FILE).is_file():
        hidden = _sections(read_toml(root / SECRETS_FILE), SECRETS_FILE, problems)
        layers.append(_typed_layer(f"{SECRETS_FILE} [default]", hidden.get("default", {})))
        layers.append(_typed_layer(f"{SECRETS_FILE} [{env}]", hidden.get(env, {})))
    return layers


def _typed_layer(source: str, layer: dict[str, t.Any]) -> tuple[str, dict[str, t.Any]]:
    """A layer of the user's own files, its values read the way Dynaconf reads them."""
    return source, {key: _typed(key, value, source, tomlfy=False) for key, value in layer.items()}


def _typed(key: str, value: t.Any, source: str, *, tomlfy: bool) -> t.Any:
    """``value`` read as Dynaconf reads files and the environment: casting tokens apply
    (``"@int 5"`` is 5), and with ``tomlfy`` a raw string is read as TOML (``9`` is a number).
    Secrets and URLs stay as written."""
    if _STRING_KEYS.match(key.split("__")[0].upper()):
        return value
    if not _has_token(value):
        # What Dynaconf does to a value without a token, without importing Dynaconf.
        return _toml_value(value) if tomlfy and isinstance(value, str) else value
    from dynaconf.utils.parse_conf import parse_conf_data

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "@reset": Dynaconf warns it is no longer needed
            parsed = parse_conf_data(value, tomlfy=tomlfy, box_settings={})
    except Exception as e:  # Dynaconf's casts raise their own errors: "@int abc"
        shown = redact(key, value)
        # The cast's error quotes the value: only when the value may be shown.
        why = f": {e}" if shown == value else "."
        raise ConfigError(
            [
                Problem(
                    "config.token",
                    key,
                    f"{key} = {shown!r} (from {source}) cannot be read{why}",
                    "Fix the value after the token (e.g. @int 5), or write the plain value.",
                )
            ]
        ) from None
    return _plain(key, parsed, source)


def _has_token(value: t.Any) -> bool:
    """Whether Dynaconf could read ``value`` otherwise than as it is: a string starting with
    ``@``, at any depth (Dynaconf's parser only acts on those; it decides which are tokens)."""
    if isinstance(value, str):
        return value.startswith("@")
    if isinstance(value, dict):
        return any(_has_token(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_token(v) for v in value)
    return False


def _toml_value(raw: str) -> t.Any:
    """A raw string as Dynaconf's ``parse_with_toml`` reads it: a TOML value, else the string."""
    try:
        return tomllib.loads(f"key={raw}")["key"]
    except (tomllib.TOMLDecodeError, KeyError):
        return raw


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


def _variables(environ: t.Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Settings named by environment variables: ``FLASK_X`` -> ``X``, plus the 12-factor names;
    each with the variable's name and raw value (the prefixed name wins)."""
    found = {name: (name, environ[name]) for name in _UNPREFIXED if environ.get(name)}
    for name, raw in environ.items():
        key = _setting_of(name)
        if key is not None and name != key:
            found[key] = (name, raw)
    return found


def _setting_of(name: str) -> str | None:
    """The setting the environment variable ``name`` sets, or ``None``."""
    if name in _UNPREFIXED:
        return name
    if not name.startswith("FLASK_"):
        return None
    key = name[6:]
    # FLASK_CREDENTIALS_KEY[_<ENV>] decrypts the credentials: a key, never a setting.
    if key in _CLI_VARIABLES or key.startswith(("RUN_", "CREDENTIALS_KEY")) or not key:
        return None
    return key


def _file_source(key: str, sources: t.Mapping[str, str]) -> str | None:
    """The user's settings file that sets ``key`` (as its top-level setting), if one does."""
    top = key.split("__")[0].upper()
    source = sources.get("DATABASE_URL" if top == "SQLALCHEMY_DATABASE_URI" else top)
    return None if source is None or source.startswith("flask_complete") else source


def _dotenv_values(root: Path) -> dict[str, str]:
    path = root / DOTENV_FILE
    if not path.is_file():
        return {}
    values = _dotenv_reader().dotenv_values(path)
    return {k: v for k, v in values.items() if v is not None}


@functools.cache
def _dotenv_reader() -> t.Any:
    """Dynaconf's vendored dotenv reader. Importing ``dynaconf.vendor.dotenv`` runs
    ``dynaconf/__init__.py``, which imports all of Dynaconf; the reader is self-contained, so it
    is loaded from its folder under a private name instead (Python's documented recipe for
    importing a source file directly), unless Dynaconf is imported already."""
    spec = None if "dynaconf" in sys.modules else importlib.util.find_spec("dynaconf")
    folder = Path(spec.origin).parent / "vendor" / "dotenv" if spec and spec.origin else None
    if folder is None or not (folder / "__init__.py").is_file():
        from dynaconf.vendor import dotenv

        return dotenv
    name = "flask_complete._dynaconf_dotenv"
    private = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert private is not None and private.loader is not None
    module = importlib.util.module_from_spec(private)
    sys.modules[name] = module  # its relative imports resolve under this name
    private.loader.exec_module(module)
    return module


# -- validation ----------------------------------------------------------------------------------


def _check_types(
    values: dict[str, t.Any], sources: dict[str, str], code: dict[str, t.Any]
) -> list[Problem]:
    """Declared settings with a value of the wrong form. The bundle's own are errors wherever
    they were set; Flask's and the libraries' are warnings when set in code."""
    problems = []
    for key in sorted({*values, *code}):
        declared = schema.spec(key)
        if declared is None:
            continue
        spec, own = declared
        in_code = key in code
        value = code[key] if in_code else values[key]
        if spec.valid(value):
            continue
        fix = f"Expected {spec.expected}."
        if isinstance(value, str) and spec.expected == schema.BOOLEAN:
            fix += f' A quoted string is not a boolean: "{value}" would count as true.'
        problems.append(
            Problem(
                "config.type",
                key,
                f"{key} = {redact(key, value)!r} {spec.problem} "
                f"(from {'code' if in_code else sources.get(key, 'unknown')}).",
                fix,
                level="warning" if in_code and not own else "error",
            )
        )
    return problems


def _check_name(key: str, source: str, env: str, own: t.Container[str]) -> Problem | None:
    """A setting name that looks misspelt: an error in production (from a file or the
    environment), a warning elsewhere and for names set in code."""
    guess = schema.misspelt(key.split("__")[0].upper(), own)
    if guess is None:
        return None
    if guess:
        message = f"{key} (from {source}) is not a known setting; did you mean {guess}?"
        fix = (
            f"Rename it to {guess}. If {key} is your app's own setting, add it to "
            "COMPLETE_OWN_SETTINGS."
        )
    else:
        switches = ", ".join(k for k in schema.BUNDLE if k.startswith("COMPLETE_"))
        message = f"{key} (from {source}) is not a flask_complete setting."
        fix = f"The COMPLETE_ settings are {switches}."
    level = "error" if env == "production" and source != "code" else "warning"
    return Problem("config.typo", key, message, fix, level=level)


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
    for index, part in enumerate([top, *nested]):
        if index:
            # Variable names are upper case: FLASK_SQLALCHEMY_BINDS__ANALYTICS sets "analytics".
            part = next((k for k in table if str(k).lower() == part.lower()), part)
        if index == len(nested):
            table[part] = value
            break
        if not isinstance(table.get(part), dict):
            table[part] = {}
        table = table[part]
    return top


def load(app: Flask, *, env: str, root: Path, log: bool = True) -> Settings:
    """Load the layers for ``env`` from ``root`` and the environment, and validate them.

    Does not touch ``app.config``; see :func:`apply`. Problems are in ``settings.problems``;
    the warnings among them are logged (logger ``flask_complete``) unless ``log`` is false (a
    second look at the same settings, e.g. for another environment).
    """
    code = code_values(app)
    values: dict[str, t.Any] = {}
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    named: list[tuple[str, str]] = []  # (key, source) of every name the user wrote

    layers = _file_layers(env, root, problems)
    # credentials/<env>.toml.enc, decrypted: over the files, under the environment.
    layers += [_typed_layer(*found) for found in credentials.layers(app, env, root)]
    for source, layer in layers:
        for key, value in layer.items():
            sources[_put(values, key, value)] = source
            if not source.startswith("flask_complete"):
                named.append((key, source))

    environ = dict(os.environ)
    loaded = flask_dotenv(environ)
    if env != "development":
        # Outside development a line of .env is no setting, even once flask exported it.
        for name, path in sorted(loaded.items()):
            setting = _setting_of(name)
            set_by = _file_source(setting, sources) if setting else None
            problem = dotenv_problem(name, environ.pop(name), path, env, setting, set_by)
            if problem:
                problems.append(problem)
    variables = _variables(environ)
    if env == "development":
        for key, (_, raw) in _variables(_dotenv_values(root)).items():
            if key not in variables:
                sources[_put(values, key, _typed(key, raw, DOTENV_FILE, tomlfy=True))] = DOTENV_FILE
                named.append((key, DOTENV_FILE))
    # Unprefixed first, so that FLASK_SQLALCHEMY_DATABASE_URI wins over DATABASE_URL.
    for key in sorted(variables, key=lambda k: k not in _UNPREFIXED):
        name, raw = variables[key]
        origin = f"env {name}"
        if name in loaded:
            origin += f" (from {Path(loaded[name]).name}, loaded by flask)"
        sources[_put(values, key, _typed(key, raw, origin, tomlfy=True))] = origin
        named.append((key, origin))

    settings = Settings(env=env, root=root, values=values, sources=sources, code=code)
    settings.flask_dotenv = loaded
    for key, value in code.items():
        file_key = "DATABASE_URL" if key == "SQLALCHEMY_DATABASE_URI" else key
        if file_key in values and values[file_key] != value:
            settings.shadowed[key] = sources[file_key]
    own = {
        name.upper()
        for listed in (values.get("COMPLETE_OWN_SETTINGS"), code.get("COMPLETE_OWN_SETTINGS"))
        if isinstance(listed, list | tuple)
        for name in listed
        if isinstance(name, str)
    }
    named += [(key, "code") for key in code if key == key.upper()]
    for key, source in dict(reversed(named)).items():  # each name once, where first written
        if problem := _check_name(key, source, env, own):
            problems.append(problem)
    problems += _check_types(values, sources, code)
    settings.problems = problems
    for problem in problems if log else ():
        if problem.level == "warning":
            logger.warning("[%s] %s %s", problem.id, problem.message, problem.fix)
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


def check_secret(
    value: t.Any,
    env: str,
    source: str,
    *,
    key: str = "SECRET_KEY",
    names: t.Iterable[str] = (),
) -> list[Problem]:
    """Refuse a missing or guessable signing key in production: ``SECRET_KEY``, or any key
    Flask or an extension signs or verifies with (``key`` names it, e.g.
    ``SECRET_KEY_FALLBACKS[0]``). Guessable: shorter than 32 bytes, or estimated below 128 bits
    (:func:`flask_complete.settings.sensitive.weakness`; ``names``, the app's, count for little).
    """
    if env != "production":
        return []
    setting = key.split("[")[0]
    generate = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    if setting == "SECRET_KEY":
        where = (
            "Set it in the environment (SECRET_KEY=...) or in .secrets.toml; `flask complete "
            f"init` writes a strong one, or use {generate}."
        )
    else:
        where = f"Set a random key ({generate}) or remove it from {setting}" + (
            ": an old key belongs there only until the cookies it signed have expired."
            if setting == "SECRET_KEY_FALLBACKS"
            else "."
        )

    def weak(why: str) -> list[Problem]:
        return [Problem("secret.weak", setting, f"{key} (from {source}) {why}.", where)]

    if value is None or value in ("", b""):
        if setting != "SECRET_KEY":
            return weak("is empty")
        return [
            Problem(
                "secret.missing",
                "SECRET_KEY",
                "SECRET_KEY is missing: production signs sessions and cookies with it.",
                where,
            )
        ]
    if not isinstance(value, str | bytes):
        return weak(f"is of type {type(value).__name__}, not a string")
    size = len(value.encode() if isinstance(value, str) else value)
    if size < MIN_SECRET_BYTES:
        return weak(f"is {size} bytes; production needs at least {MIN_SECRET_BYTES}")
    if why := weakness(value, names):
        return weak(why)
    return []


def is_init_time_key(key: str) -> bool:
    """Whether ``key`` is read only at init, so a later change has no effect."""
    return key in INIT_TIME_KEYS or key.startswith(INIT_TIME_PREFIXES)

"""The generated references, computed from the package itself: pure functions that return reST.

Nothing here imports Sphinx, so ``tests/test_docs_reference.py`` runs these functions on every
test run, with or without the docs tools installed. :mod:`complete_sphinx` turns them into
directives.

Each reference has one source of truth in the code:

* settings: the keys of ``defaults.toml`` (every section) and of
:data:`flask_complete.settings.schema.BUNDLE`, their declared forms, their defaults per environment,
the environment variables :mod:`flask_complete.settings.config` maps to them, the modules that read
them and :func:`flask_complete.settings.config.is_init_time_key`; * the pytest plugin: its
``pytest_addoption`` run against a real ``pytest.Parser``, and its fixtures with their docstrings; *
the CLI: the command groups of an app built with ``Complete`` (see :mod:`cli_groups`).

Only the one-line summary of each setting is written here by hand (:data:`SUMMARIES`): a setting
without one stops the docs build, so a new setting cannot go undocumented.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
import typing as t
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("development", "testing", "production")
#: The columns of a default: the bundle's ``[default]`` section, then each environment.
COLUMNS = ("default", *ENVIRONMENTS)


class ReferenceError(Exception):
    """The code and the hand-written part of a reference disagree; the message says what to add."""


# -- settings ------------------------------------------------------------------------------------

#: What each setting is for, in one line (reST). Everything else on the settings page is read from
#: the code. A setting missing here is described by the comment above it in ``defaults.toml``; a
#: setting with neither stops the docs build, and so does an entry here for a removed setting.
SUMMARIES: dict[str, str] = {
    "COMPLETE_DATABASE": "Configure the database (Flask-SQLAlchemy) and bind it to the app.",
    "COMPLETE_MIGRATE": "Wire migrations and the ``flask db`` commands.",
    "COMPLETE_AUTH": "Wire auth (Flask-Login), when a user model is given: "
    "``Complete(app, user_model=User)``.",
    "COMPLETE_CORS": "Answer cross-origin requests from the ``CORS_*`` settings (flask-cors).",
    "COMPLETE_OWN_SETTINGS": "Your app's own settings whose names are close to a known one "
    "(``REDIS_URI`` beside ``REDIS_URL``): listed here, they are not reported as misspellings.",
    "SECRET_KEY": "Signs sessions and cookies. Production refuses a missing, short (under 32 "
    "bytes), placeholder or guessable key, even one set in code.",
    "DATABASE_URL": "The database, as a URL (``postgres://`` and ``mysql://`` get the bundled "
    "drivers). Lands in ``SQLALCHEMY_DATABASE_URI``, which may be set instead.",
    "REDIS_URL": "A Redis server; when set, failed-login throttling counts there instead of in "
    "the database.",
    "DATABASE_POOL": '``"queue"`` keeps a pool of connections; ``"null"`` opens one per use '
    "(PgBouncer in transaction mode; psycopg's prepared statements are turned off).",
    "DATABASE_POOL_SIZE": "Connections each process keeps open (PostgreSQL, MySQL/MariaDB).",
    "DATABASE_MAX_OVERFLOW": "Extra connections a process may open under load, beyond "
    "``DATABASE_POOL_SIZE``.",
    "DATABASE_POOL_TIMEOUT": "Seconds a request waits for a free connection before failing.",
    "DATABASE_POOL_RECYCLE": "Seconds after which a pooled connection is replaced (PostgreSQL).",
    "DATABASE_MYSQL_POOL_RECYCLE": "The same for MySQL/MariaDB, below their common "
    "``wait_timeout`` of 300 seconds.",
    "DATABASE_POOL_PRE_PING": "Test a pooled connection before handing it out, so a server "
    "restart costs no failed request.",
    "DATABASE_CONNECT_TIMEOUT": "Seconds a new PostgreSQL or MySQL/MariaDB connection may take "
    "(``0``: the driver's own, 130 s for psycopg). A dead or firewalled host then fails each "
    "request with ``503`` well inside gunicorn's 30 s worker timeout. A ``connect_timeout`` in "
    "the URL wins.",
    "SQLITE_BUSY_TIMEOUT": "Milliseconds a SQLite connection waits for a lock before failing.",
    "SQLALCHEMY_ENGINE_OPTIONS": "Flask-SQLAlchemy's engine options; the ``DATABASE_*`` pool "
    "settings are placed under what you set here.",
    "SQLALCHEMY_BINDS": "Further databases by bind key (Flask-SQLAlchemy); every ``flask db`` "
    "command covers each of them.",
    "MIGRATIONS_DIR": "The migrations folder (Flask-Migrate), relative to the project root.",
    "MODELS": 'Modules declaring models (``["myapp.models"]``), imported by ``env.py`` before '
    "autogenerate compares, so that no table is taken for one to drop.",
    "SEEDS": 'What ``flask db seed`` and ``prepare`` run: ``"package.module:function"``, a module '
    "with ``run()``, or a list of them; set it per environment.",
    "CORS_ORIGINS": "Origins whose pages may read the responses: exact "
    '(``"https://app.example.com"``) or globs (``"https://*.example.com"``, '
    '``"http://localhost:*"``), matched against the whole ``Origin``.',
    "CORS_RESOURCES": "Path globs that answer cross-origin requests.",
    "CORS_SUPPORTS_CREDENTIALS": "Let pages send cookies and ``Authorization`` on cross-origin "
    'requests (refused together with ``"*"``).',
    "CORS_MAX_AGE": "Seconds a browser may reuse a preflight answer (Chromium caps it at 7200).",
    "CORS_EXPOSE_HEADERS": "Response headers the page's JavaScript may read beyond the basic ones.",
    "HEALTH_ENDPOINT": 'The path of the health endpoint for load balancers (``"/-/health"``); '
    '``""`` leaves it out.',
    "AUTH_URL_PREFIX": "Where ``/login``, ``/logout``, ``/me`` and ``/tokens`` are mounted.",
    "AUTH_ENDPOINTS": "Register the JSON auth endpoints; ``false`` leaves them out.",
    "AUTH_PASSWORD_METHOD": 'Werkzeug\'s password hash method (``"scrypt"`` is '
    "``scrypt:32768:8:1``); older hashes are upgraded at login.",
    "AUTH_PASSWORD_MIN_LENGTH": "The shortest password ``set_password()`` and ``flask users`` "
    "accept.",
    "AUTH_REMEMBER_DAYS": "Lifetime of the remember-me cookie, in days (Flask-Login's own default "
    "is a year).",
    "AUTH_TOKEN_DAYS": "Default lifetime of a new API token, in days.",
    "AUTH_TOKEN_MAX_DAYS": "Longest lifetime an API token may be given, in days.",
    "AUTH_THROTTLE": "Throttle failed logins, per account and per client address.",
    "AUTH_THROTTLE_ACCOUNT_LIMIT": "Failures for one account within the window before logins "
    "for it are locked.",
    "AUTH_THROTTLE_ADDRESS_LIMIT": "Failures from one client address within the window before "
    "logins from it are locked.",
    "AUTH_THROTTLE_DELAY": "Seconds of the first lock; doubled for each further failure.",
    "AUTH_THROTTLE_MAX_DELAY": "The longest lock, in seconds.",
    "AUTH_THROTTLE_WINDOW": "Seconds within which failures are counted.",
    "AUTH_THROTTLE_STORAGE": 'Where failures are counted: ``"database"``, ``"redis"``, a '
    '``redis://`` URL, or ``""``: Redis when ``REDIS_URL`` is set, else the database.',
    "AUTH_THROTTLE_PREFIX": "Prefix of the throttle's Redis keys.",
    "CSRF_PROTECT": 'CSRF check of cookie-authenticated unsafe requests: ``"auto"`` protects the '
    "whole app with the bundle's login and only the ``/auth`` endpoints with an app's own "
    "``LoginManager``; ``true`` or ``false`` decide. Any other value stops the app.",
    "AUTH_TRUSTED_ORIGINS": "Other origins allowed to send cookie-authenticated unsafe requests "
    "(the CORS origins with credentials are too).",
    # Flask's and Flask-Login's settings that the bundle's [production] section sets.
    "SESSION_COOKIE_SECURE": "Flask: send the session cookie over HTTPS only.",
    "SESSION_COOKIE_HTTPONLY": "Flask: keep the session cookie out of reach of JavaScript.",
    "SESSION_COOKIE_SAMESITE": "Flask: do not send the session cookie on cross-site subrequests.",
    "REMEMBER_COOKIE_SECURE": "Flask-Login: send the remember-me cookie over HTTPS only.",
    "REMEMBER_COOKIE_HTTPONLY": "Flask-Login: keep the remember-me cookie out of reach of "
    "JavaScript.",
    "REMEMBER_COOKIE_SAMESITE": "Flask-Login: do not send the remember-me cookie on cross-site "
    "subrequests.",
    "SESSION_PROTECTION": 'Flask-Login: ``"basic"`` marks a session seen from a new address or '
    'browser as not fresh; ``"strong"`` logs it out.',
}

#: Defaults the bundle computes instead of reading them from ``defaults.toml``: column -> reST.
#: A column left out has the ``default`` one.
COMPUTED_DEFAULTS: dict[str, dict[str, str]] = {
    "SECRET_KEY": {
        "default": "none",
        "development": "generated once, kept in ``instance/secret_key``",
        "testing": "generated per process",
        "production": "none: required",
    },
    "DATABASE_URL": {
        "default": "none",
        "development": "a SQLite file, ``instance/<app>-dev.sqlite3``",
        "testing": "derived from the development URL: ``test_<name>``, or ``test_<file>`` beside "
        "a SQLite file",
        "production": "none: required",
    },
    "REDIS_URL": {"default": "none"},
    "SQLALCHEMY_ENGINE_OPTIONS": {"default": "``{}``, with the ``DATABASE_*`` options under it"},
    "SQLALCHEMY_BINDS": {"default": "``{}``"},
}

#: Sections of the settings page, in order: a setting goes in the first whose prefix it has.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pieces", ("COMPLETE_",)),
    ("Secret", ("SECRET_KEY",)),
    ("Database and pool", ("DATABASE_", "SQLALCHEMY_", "SQLITE_")),
    ("Migrations and seeds", ("MIGRATIONS_DIR", "MODELS", "SEEDS")),
    ("CORS", ("CORS_",)),
    ("Health endpoint", ("HEALTH_",)),
    ("Auth", ("AUTH_", "CSRF_", "REDIS_URL")),
    ("Cookies and sessions (Flask, Flask-Login)", ("SESSION_", "REMEMBER_")),
)
OTHER_SECTION = "Other settings"

#: Modules that handle every setting alike (loading, validation, redaction): not "readers".
SETTINGS_MACHINERY = frozenset(
    {"settings.config", "settings.schema", "settings.sensitive", "settings.dotenv", "problems"}
)

#: The page about the piece a module belongs to, for the "Read by" links: by module, else by
#: its package.
PAGES = {
    "extension": "api",
    "database": "database",
    "database.gate": "testing",
    "cli": "cli",
    "migrations": "migrations",
    "migration_env": "migrations",
    "seeds": "seeds",
    "data": "fixtures",
    "factories": "seeds",
    "web.cors": "cors",
    "web.health": "checks",
    "checks": "checks",
    "testing": "testing",
    "pytest_plugin": "pytest",
    "auth": "auth",
    "settings": "configuration",
}


@dataclass(frozen=True)
class Setting:
    """One entry of the settings reference."""

    key: str
    section: str
    summary: str
    #: The declared form (``settings_schema``), or ``""`` when none is declared.
    expected: str
    #: The bundle's own setting (a bad value is an error wherever it was set).
    own: bool
    #: ``COLUMNS`` -> the default, as reST.
    defaults: dict[str, str]
    #: The environment variables that set it, the preferred first.
    variables: tuple[str, ...]
    #: Its environment variable is read as a plain string, not as TOML.
    as_string: bool
    #: The flask_complete modules that read it (``database``, ``auth.core``).
    readers: tuple[str, ...]
    #: The libraries that read it (``Flask``, ``Flask-Login``, ...).
    libraries: tuple[str, ...]
    init_time: bool


def package_dir() -> Path:
    import flask_complete

    return Path(flask_complete.__file__).resolve().parent


def bundle_defaults() -> dict[str, dict[str, t.Any]]:
    """``defaults.toml``: section -> key -> value."""
    from flask_complete.settings import config

    with open(config.DEFAULTS_FILE, "rb") as f:
        return tomllib.load(f)


_KEY_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=")
#: Written as literals when a comment is shown: quoted values, lists, names, calls.
_LITERAL = re.compile(r'"[^"]*"|\[[^\]]*\]|\b[A-Z][A-Z0-9]*_[A-Z0-9_]*\b|\b\w+\([^)]*\)')


def comment_rst(text: str) -> str:
    """A ``defaults.toml`` comment as reST: values and names as literals, the rest escaped."""
    out, end = [], 0
    for match in _LITERAL.finditer(text):
        out.append(re.sub(r"([\\*`|_])", r"\\\1", text[end : match.start()]))
        out.append(f"``{match.group(0)}``")
        end = match.end()
    out.append(re.sub(r"([\\*`|_])", r"\\\1", text[end:]))
    return "".join(out)


def defaults_comments() -> dict[str, str]:
    """Each key of ``defaults.toml`` -> the comment right above it or above the run of keys it
    is in (its first section wins), as reST."""
    from flask_complete.settings import config

    found: dict[str, str] = {}
    comment: list[str] = []
    after_key = False
    for line in config.DEFAULTS_FILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            # A comment after keys starts the next run's.
            comment = [*([] if after_key else comment), stripped.lstrip("#").strip()]
            after_key = False
        elif not stripped or stripped.startswith("["):
            comment, after_key = [], False
        elif key := _KEY_LINE.match(stripped):
            after_key = True
            if comment:
                found.setdefault(key.group(1), comment_rst(" ".join(comment)))
    return found


def setting_keys() -> list[str]:
    """Every setting the reference must show: the declared bundle settings, then any other key
    of ``defaults.toml`` (the Flask and Flask-Login settings of its ``[production]``)."""
    from flask_complete.settings.schema import BUNDLE

    keys = list(BUNDLE)
    for section in bundle_defaults().values():
        keys += [key for key in section if key not in keys]
    return keys


def toml_value(value: t.Any) -> str:
    """``value`` as written in a settings file, as a reST literal."""
    return f"``{json.dumps(value)}``"


def _defaults_of(key: str, defaults: dict[str, dict[str, t.Any]]) -> dict[str, str] | None:
    if key in COMPUTED_DEFAULTS:
        given = COMPUTED_DEFAULTS[key]
        return {column: given.get(column, given["default"]) for column in COLUMNS}
    if not any(key in section for section in defaults.values()):
        return None
    # Each environment is the bundle's [default] overlaid with its own section.
    base = defaults.get("default", {})
    shown = {"default": toml_value(base[key]) if key in base else library_default(key)}
    for env in ENVIRONMENTS:
        section = defaults.get(env, {})
        if key in section:
            shown[env] = toml_value(section[key])
        else:
            shown[env] = shown["default"]
    return shown


def library_default(key: str) -> str:
    """What Flask or Flask-Login uses when nothing sets ``key``, as reST."""
    import flask_login.config
    from flask import Flask
    from flask_login import LoginManager

    if key in Flask.default_config:
        value, owner = Flask.default_config[key], "Flask"
    elif key.startswith("REMEMBER_") and hasattr(flask_login.config, key[len("REMEMBER_") :]):
        value, owner = getattr(flask_login.config, key[len("REMEMBER_") :]), "Flask-Login"
    elif key == "SESSION_PROTECTION":
        value, owner = LoginManager().session_protection, "Flask-Login"
    else:
        return "none"
    shown = "none" if value is None else toml_value(value)
    return f"{shown} ({owner}'s)"


def _variables(key: str) -> tuple[str, ...]:
    from flask_complete.settings import config

    # Asked of the code that maps variables to settings, not restated here.
    return tuple(name for name in (f"FLASK_{key}", key) if config._setting_of(name) == key)


def _constants(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def module_constants() -> dict[str, set[str]]:
    """Each flask_complete module (``auth.core``) -> the string constants in its code."""
    root = package_dir()
    found = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        if {"template", "project_template", "skeleton"} & set(relative.parts):
            continue  # files copied into projects, not modules of the package
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        name = ".".join(parts)
        if name:
            found[name] = _constants(ast.parse(path.read_text(), str(path)))
    return found


def readers(key: str, constants: dict[str, set[str]], *, machinery: bool) -> tuple[str, ...]:
    """The modules that name ``key`` in their code: the pieces, or, when ``machinery`` and no
    piece does, the settings machinery (``COMPLETE_OWN_SETTINGS`` is read by ``config``)."""
    naming = [name for name, seen in constants.items() if key in seen]
    pieces = tuple(name for name in naming if name not in SETTINGS_MACHINERY)
    return pieces or (tuple(naming) if machinery else ())


def _libraries(key: str) -> tuple[str, ...]:
    from flask import Flask

    from flask_complete.settings import schema as schema

    owners = (
        ("Flask", Flask.default_config),
        ("Flask-SQLAlchemy", schema.FLASK_SQLALCHEMY_KEYS),
        ("Flask-Login", schema.FLASK_LOGIN_KEYS),
        ("flask-cors", schema.FLASK_CORS_KEYS),
    )
    return tuple(name for name, keys in owners if key in keys)


def _section(key: str) -> str:
    for title, prefixes in SECTIONS:
        if key.startswith(prefixes):
            return title
    return OTHER_SECTION


def settings() -> list[Setting]:
    """Every setting, in page order; :class:`ReferenceError` when a summary or a default is
    missing for a setting, or a summary is left for one that no longer exists."""
    from flask_complete.settings import config
    from flask_complete.settings import schema as settings_schema

    keys = setting_keys()
    defaults = bundle_defaults()
    constants = module_constants()
    summaries = {**defaults_comments(), **SUMMARIES}
    missing = [key for key in keys if key not in summaries]
    stale = [key for key in SUMMARIES if key not in keys]
    no_default = [key for key in keys if _defaults_of(key, defaults) is None]
    problems = []
    if missing:
        problems.append(
            f"no summary for {', '.join(missing)}: add one to SUMMARIES (or a comment above it "
            "in defaults.toml)"
        )
    if stale:
        problems.append(f"summaries of settings that no longer exist: {', '.join(stale)}")
    if no_default:
        problems.append(
            f"no default for {', '.join(no_default)}: it is not in defaults.toml, so say what "
            "the bundle does without it in COMPUTED_DEFAULTS"
        )
    if problems:
        raise ReferenceError(f"docs/_ext/references.py: {'; '.join(problems)}.")
    found = []
    for key in keys:
        declared = settings_schema.spec(key)
        found.append(
            Setting(
                key=key,
                section=_section(key),
                summary=summaries[key],
                expected=declared[0].expected if declared else "",
                own=bool(declared and declared[1]),
                defaults=t.cast(dict[str, str], _defaults_of(key, defaults)),
                variables=_variables(key),
                as_string=bool(config._STRING_KEYS.match(key)),
                readers=readers(key, constants, machinery=not _libraries(key)),
                libraries=_libraries(key),
                init_time=config.is_init_time_key(key),
            )
        )
    order = [title for title, _ in SECTIONS] + [OTHER_SECTION]
    return sorted(found, key=lambda s: order.index(s.section))


def _reader(module: str) -> str:
    page = PAGES.get(module) or PAGES.get(module.partition(".")[0])
    shown = f"``flask_complete.{module}``"
    return f"{shown} (:doc:`{page}`)" if page else shown


def _defaults_line(setting: Setting) -> str:
    values = setting.defaults
    if len(set(values.values())) == 1:
        return f"{values['default']} in every environment"
    head = f"``[default]``: {values['default']}"
    return "; ".join([head, *(f"{env}: {values[env]}" for env in ENVIRONMENTS)])


def settings_rst() -> list[str]:
    """The settings page's body: a summary table, then one entry per setting by section."""
    entries = settings()
    lines = [
        ".. list-table:: Every setting, its default, and where an environment differs",
        "   :header-rows: 1",
        "   :widths: 34 30 36",
        "",
        "   * - Setting",
        "     - Default (``[default]``)",
        "     - Differs in",
    ]
    for setting in entries:
        values = setting.defaults
        differs = [
            f"{env}: {values[env]}" for env in ENVIRONMENTS if values[env] != values["default"]
        ]
        lines += [
            f"   * - :setting:`{setting.key}`",
            f"     - {values['default']}",
            f"     - {'; '.join(differs)}",
        ]
    lines.append("")
    section = None
    for setting in entries:
        if setting.section != section:
            section = setting.section
            lines += [section, "-" * len(section), ""]
        lines += setting_rst(setting)
    return lines


def setting_rst(setting: Setting) -> list[str]:
    """One ``.. setting::`` entry."""
    summary = literal_options(plain(setting.summary))
    lines = [f".. setting:: {setting.key}", "", f"   {summary}", ""]
    kind = setting.expected or "not declared: see the library's documentation"
    if not setting.own:
        kind += " (a bad value from a file or the environment is an error, from code a warning)"
    lines.append(f"   :Type: {kind}")
    lines.append(f"   :Default: {_defaults_line(setting)}")
    if setting.variables:
        names = " or ".join(f"``{name}``" for name in setting.variables)
        how = "read as a plain string" if setting.as_string else "read as a TOML value"
        if len(setting.variables) > 1:
            how += f"; ``{setting.variables[0]}`` wins"
        lines.append(f"   :Environment: {names} ({how})")
    readers = [_reader(module) for module in setting.readers]
    readers += setting.libraries
    lines.append(f"   :Read by: {', '.join(readers) if readers else 'your app'}")
    if setting.init_time:
        when = "at init: set it before ``Complete(app)``; a later change has no effect"
    else:
        when = "when used: a change in ``app.config`` after init takes effect"
    lines += [f"   :Read: {when}", ""]
    return lines


# -- the pytest plugin ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]
    dest: str
    metavar: str | None
    help: str
    group: str


@dataclass(frozen=True)
class IniKey:
    name: str
    type: str
    default: t.Any
    help: str


@dataclass(frozen=True)
class Fixture:
    name: str
    scope: str
    uses: tuple[str, ...]
    doc: str


def plugin_options() -> tuple[list[Option], list[IniKey]]:
    """The plugin's command-line options and ini keys, from its ``pytest_addoption`` run against
    a real ``pytest.Parser`` (so a call pytest would reject fails here too)."""
    from _pytest.config.argparsing import Parser

    from flask_complete import pytest_plugin

    options: list[Option] = []
    inis: list[IniKey] = []
    groups: dict[int, str] = {}
    parser = Parser(processopt=None, _ispytest=True)
    real_getgroup, real_addini = parser.getgroup, parser.addini

    def getgroup(name: str, description: str = "", after: str | None = None) -> t.Any:
        group = real_getgroup(name, description, after)
        groups[id(group)] = description or name
        real_addoption = group.addoption

        def addoption(*names: str, **attrs: t.Any) -> None:
            real_addoption(*names, **attrs)
            options.append(
                Option(
                    names=names,
                    dest=attrs.get("dest") or names[-1].lstrip("-").replace("-", "_"),
                    metavar=attrs.get("metavar"),
                    help=attrs.get("help", ""),
                    group=groups[id(group)],
                )
            )

        group.addoption = addoption  # type: ignore[method-assign]
        return group

    def addini(name: str, help: str, type: str | None = None, **more: t.Any) -> None:
        real_addini(name, help, type, **more)  # type: ignore[arg-type]
        inis.append(IniKey(name, type or "string", more.get("default"), help))

    parser.getgroup = getgroup  # type: ignore[method-assign]
    parser.addini = addini  # type: ignore[method-assign, assignment]
    pytest_plugin.pytest_addoption(parser)
    return options, inis


def _decorator_scope(node: ast.FunctionDef) -> str | None:
    """The fixture scope when ``node`` is decorated with ``pytest.fixture``, else ``None``."""
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            for keyword in call.keywords if call else ():
                if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return "function"
    return None


def plugin_fixtures() -> list[Fixture]:
    """The plugin's public fixtures, in source order, with their docstrings."""
    path = package_dir() / "pytest_plugin.py"
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        scope = _decorator_scope(node)
        if scope is None:
            continue
        doc = ast.get_docstring(node)
        if not doc:
            raise ReferenceError(
                f"flask_complete/pytest_plugin.py: the fixture {node.name!r} has no docstring; "
                "the pytest plugin's reference shows it."
            )
        uses = tuple(a.arg for a in node.args.args if not a.arg.startswith("_"))
        found.append(Fixture(node.name, scope, uses, doc))
    return found


def plain(text: str) -> str:
    """Help text written for a terminal, as reST: `code` becomes a literal."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)


def option_help(text: str, twin: IniKey | None) -> str:
    """An option's ``--help`` text as reST, its "Ini: ..." left to the ini key line."""
    if twin is not None:
        text = re.sub(r"\s*Ini: [^.]*\.\s*$", "", text)
    return literal_options(plain(text))


def literal_options(text: str) -> str:
    """reST ``text`` with each option it names outside a literal made one: else the ``--`` of
    ``--reuse-db`` is typeset as a dash."""
    parts = re.split(r"(``[^`]+``)", text)
    return "".join(
        part if part.startswith("``") else re.sub(r"(?<![\w-])(--[a-z][\w-]*)", r"``\1``", part)
        for part in parts
    )


def _ini_default(key: IniKey) -> str:
    if key.type == "bool":
        return "``true``" if key.default else "``false``"
    if key.default in (None, "", []):
        return "none"
    return f"``{key.default}``"


def pytest_rst() -> list[str]:
    """The pytest plugin page's body: options with their ini twins, ini keys, fixtures."""
    options, inis = plugin_options()
    by_name = {key.name: key for key in inis}
    lines = [
        "Options",
        "-------",
        "",
        "An option beats the ini key of the same name (``[tool.pytest.ini_options]`` in",
        "``pyproject.toml``, or ``pytest.ini``).",
        "",
    ]
    lines += [".. program:: pytest", ""]
    for option in options:
        shown = ", ".join(option.names) + (f" {option.metavar}" if option.metavar else "")
        twin = by_name.get(option.dest)
        lines += [f".. option:: {shown}", "", f"   {option_help(option.help, twin)}", ""]
        if twin is not None:
            lines += [f"   Ini key: :confval:`{twin.name}`.", ""]
    lines += ["Ini keys", "--------", ""]
    for key in inis:
        lines += [
            f".. confval:: {key.name}",
            f"   :type: {key.type}",
            f"   :default: {_ini_default(key)}",
            "",
            f"   {plain(key.help)}",
            "",
        ]
    lines += ["Fixtures", "--------", ""]
    fixtures = plugin_fixtures()
    ours = {fixture.name for fixture in fixtures}
    for fixture in fixtures:
        lines += [f".. fixture:: {fixture.name}", ""]
        lines += [f"   {line}" if line else "" for line in fixture.doc.splitlines()]
        lines += ["", f"   :Scope: {fixture.scope}"]
        # Only ours: ``request`` and the like are how a fixture is written, not what it needs.
        uses = [f":fixture:`{u}`" for u in fixture.uses if u in ours]
        if uses:
            lines.append(f"   :Uses: {', '.join(uses)}")
        lines.append("")
    return lines


# -- deployment ----------------------------------------------------------------------------------


def production_pool() -> tuple[int, int]:
    """``DATABASE_POOL_SIZE`` and ``DATABASE_MAX_OVERFLOW`` as production has them by default."""
    defaults = bundle_defaults()
    merged = {**defaults.get("default", {}), **defaults.get("production", {})}
    return int(merged["DATABASE_POOL_SIZE"]), int(merged["DATABASE_MAX_OVERFLOW"])


def connections_rst(workers: list[int], max_connections: int, reserved: int) -> list[str]:
    """The worked table of connections: each worker process may hold ``pool_size +
    max_overflow`` connections, against the server's ``max_connections`` less ``reserved``."""
    size, overflow = production_pool()
    per_process = size + overflow
    usable = max_connections - reserved
    lines = [
        f".. list-table:: Connections with the production defaults (pool size {size}, "
        f"overflow {overflow}) against max_connections = {max_connections}",
        "   :header-rows: 1",
        "",
        "   * - Worker processes",
        "     - At most, per process",
        "     - At most, all workers",
        "     - During a deploy (old and new workers)",
        f"     - Fits in {usable} ({max_connections} less {reserved} reserved)?",
    ]
    for count in workers:
        total = count * per_process
        overlap = 2 * total
        if overlap <= usable:
            verdict = "yes, even during a deploy"
        elif total <= usable:
            verdict = f"only outside a deploy (over by {overlap - usable} during one)"
        else:
            verdict = f"no: over by {total - usable}"
        lines += [
            f"   * - {count}",
            f"     - {size} + {overflow} = {per_process}",
            f"     - {count} \N{MULTIPLICATION SIGN} {per_process} = {total}",
            f"     - {overlap}",
            f"     - {verdict}",
        ]
    return [*lines, ""]

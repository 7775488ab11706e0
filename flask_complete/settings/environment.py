"""Which environment an app runs in, and whether the app's own switch agrees.

Highest first: ``Complete(env=...)`` > the pytest plugin (testing) > the app's own variable,
declared as ``Complete(env_var=..., env_names=...)`` > ``FLASK_ENV`` > development. An app that
picks its config by a variable of its own (``config[os.environ["FLASK_CONFIG"]]``) declares it,
so that the bundle and the app read one switch. When nothing names the environment and the app's
own config looks like production, :func:`mismatch` says so: the two never disagree silently.
"""

from __future__ import annotations

import ipaddress
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..problems import ConfigError, Problem

ENVIRONMENTS = ("development", "testing", "production")
#: Short names an app's own variable may use beside the environments' names.
SHORT_NAMES = {"dev": "development", "test": "testing", "prod": "production"}
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Selection:
    """The environment, and what named it (``""``: nothing did, development is the default)."""

    env: str
    source: str


def env_names(names: t.Mapping[str, str] | None) -> dict[str, str]:
    """``Complete(env_names=...)`` checked: the app's values (any case) -> an environment."""
    checked = {}
    for value, env in (names or {}).items():
        if env not in ENVIRONMENTS:
            raise ValueError(
                f"env_names maps {value!r} to {env!r}, which is not an environment; use one of "
                f"{', '.join(ENVIRONMENTS)}."
            )
        checked[str(value).strip().lower()] = env
    return checked


def select(
    explicit: str | None,
    forced: str | None,
    var: str | None,
    names: t.Mapping[str, str],
    environ: t.Mapping[str, str],
) -> Selection:
    """The environment, by the precedence of this module's docstring (``names`` as checked by
    :func:`env_names`). An unknown value, or the app's variable and ``FLASK_ENV`` naming two
    environments, is a :class:`ConfigError` with the fix."""
    if explicit is not None:
        return Selection(_known(explicit, "Complete(env=...)", "env"), "Complete(env=...)")
    if forced is not None:
        return Selection(forced, "the pytest plugin")
    flask_env = environ.get("FLASK_ENV", "").strip()
    own = environ.get(var, "").strip() if var else ""
    if var and own:
        env = names.get(own.lower()) or SHORT_NAMES.get(own.lower(), own.lower())
        if env not in ENVIRONMENTS:
            raise _unknown(var, own, names)
        if flask_env and flask_env.lower() != env:
            raise ConfigError(
                [
                    Problem(
                        "env.conflict",
                        "FLASK_ENV",
                        f"{var}={own} names {env}, but FLASK_ENV={flask_env} names another "
                        "environment.",
                        f"Unset FLASK_ENV (also in .flaskenv and .env): with Complete(app, "
                        f'env_var="{var}") {var} alone names the environment.',
                    )
                ]
            )
        return Selection(env, f"env {var}={own}, declared by Complete(env_var=...)")
    if flask_env:
        return Selection(_known(flask_env, "FLASK_ENV", "FLASK_ENV"), f"env FLASK_ENV={flask_env}")
    return Selection("development", "")


def _known(value: str, source: str, key: str) -> str:
    env = value.strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(
            [
                Problem(
                    "env.unknown",
                    key,
                    f"{source}={value!r} is not an environment.",
                    f"Use one of: {', '.join(ENVIRONMENTS)}.",
                )
            ]
        )
    return env


def _unknown(var: str, value: str, names: t.Mapping[str, str]) -> ConfigError:
    mapped = {**names, value.lower(): "production"}
    return ConfigError(
        [
            Problem(
                "env.unknown",
                var,
                f"{var}={value!r} names no environment (known: "
                f"{', '.join(sorted({*ENVIRONMENTS, *SHORT_NAMES, *names}))}).",
                f'Say which it is: Complete(app, env_var="{var}", env_names={mapped!r}) (or '
                f"development, testing); the environments are {', '.join(ENVIRONMENTS)}.",
            )
        ]
    )


# -- the app's own config, judged --------------------------------------------------------------


def production_signs(
    code: t.Mapping[str, t.Any], environ: t.Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """What says this app is in production: the variables whose value names production (or
    that say production in their name and are true), and the app's values set in code that
    production configs set (Secure cookies, https URLs, a database on another host named by
    the environment). Hints for a warning, never a gate."""
    variables = []
    for name, raw in sorted(environ.items()):
        value = raw.strip().lower()
        if name != "FLASK_ENV" and (
            value in ("production", "prod") or ("PRODUCTION" in name.upper() and value in _TRUE)
        ):
            variables.append(name)
    found = [f"{name}={environ[name]}" for name in variables]
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if code.get(key) is True:
            found.append(f"{key} = True")
    if str(code.get("PREFERRED_URL_SCHEME", "")).lower() == "https":
        found.append('PREFERRED_URL_SCHEME = "https"')
    url = code.get("SQLALCHEMY_DATABASE_URI")
    if isinstance(url, str) and (host := _remote_host(url)):
        given = set(environ.values())
        if url in given or host in given:
            found.append(f"a database on {host}, named by the environment")
    return variables, found


def _remote_host(url: str) -> str | None:
    """The host of a server database ``url`` that is not this machine, else ``None``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.startswith("sqlite") or not host or "." not in host:
        return None  # SQLite, a socket, localhost, a compose service name ("db")
    try:
        return None if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        return host


def mismatch(
    config: t.Mapping[str, t.Any], code: t.Mapping[str, t.Any], environ: t.Mapping[str, str]
) -> Problem | None:
    """``env.mismatch`` when the app's own config looks like production while the bundle runs
    development because nothing named the environment (call it only then); ``None`` when the
    app runs with debug or testing on, or nothing looks like production."""
    if config.get("DEBUG") or config.get("TESTING"):
        return None
    variables, signs = production_signs(code, environ)
    if not signs:
        return None
    if variables:
        var = variables[0]
        value = environ[var].strip().lower()
        names = "" if value in ENVIRONMENTS else f", env_names={{{value!r}: 'production'}}"
        declare = f'Complete(app, env_var="{var}"{names})'
    else:
        declare = "Complete(app, env_var=<your variable>, env_names={...})"
    return Problem(
        "env.mismatch",
        "FLASK_ENV",
        f"The app's own config looks like production ({'; '.join(signs)}), but nothing names "
        "flask_complete's environment, so it runs in development: a generated SECRET_KEY, "
        "cookies without Secure, no production checks.",
        f"If this is production, declare the app's switch: {declare}, or set "
        "FLASK_ENV=production. If it is development, set FLASK_ENV=development to say so.",
        level="warning",
    )

"""Cross-origin requests: flask-cors configured from the settings, with whole-origin matching.

``CORS_ORIGINS`` holds exact origins (``https://app.example.com``) or globs: ``*.`` as the
leftmost labels of the host (``https://*.example.com``) and ``:*`` as the port
(``http://localhost:*``, any port or none). Each entry becomes a regular expression that must
match the whole ``Origin`` header: flask-cors matches its own regexes as prefixes, so
``https://.*\\.example\\.com`` would trust ``https://a.example.com.evil.test``. Raw regular
expressions are refused. ``"*"`` allows every origin, and is refused with credentials.
"""

from __future__ import annotations

import re
import typing as t
from urllib.parse import unquote

from flask import request
from werkzeug.datastructures import Headers

from ..settings.config import Problem

if t.TYPE_CHECKING:
    from flask import Flask, Response

    from ..state import CompleteState

#: The options flask_complete passes to flask-cors; the rest (``CORS_METHODS``,
#: ``CORS_ALLOW_HEADERS`` ...) are read by flask-cors itself from ``app.config``.
_OWN = (
    "CORS_ORIGINS",
    "CORS_RESOURCES",
    "CORS_SUPPORTS_CREDENTIALS",
    "CORS_MAX_AGE",
    "CORS_EXPOSE_HEADERS",
)
#: The request header of Private Network Access (a preflight's question) as a WSGI key.
_PRIVATE_NETWORK = "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"
#: How many origins' answers are kept.
_REPLAYED = 256
_SCHEME = r"[a-z][a-z0-9+.-]*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
#: A glob: ``*.`` before the host and/or ``:*`` as the port.
_GLOB = re.compile(
    rf"(?P<scheme>{_SCHEME})://(?P<sub>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"
    r"(?P<port>:[0-9]{1,5}|:\*)?",
    re.IGNORECASE,
)
_GLOB_FORMS = (
    'Use exact origins such as "https://app.example.com" or "http://localhost:5173", or the '
    'globs "https://*.example.com" (any subdomain) and "http://localhost:*" (any port).'
)


class OriginError(ValueError):
    """A ``CORS_ORIGINS`` entry that is neither an exact origin nor a supported glob."""


def origin_pattern(entry: str) -> re.Pattern[str]:
    """The regular expression matching exactly the origins ``entry`` names.

    :raises OriginError: ``entry`` is a raw regex, has a path, or is not an origin.
    """
    text = entry.strip()
    match = _GLOB.fullmatch(text)
    if match is None:
        if text.endswith("/") and _GLOB.fullmatch(text.rstrip("/")):
            raise OriginError(f"{entry!r} ends with '/': an origin has no path. Drop the slash.")
        if any(c in text for c in "\\^$()[]{}|+?") or ".*" in text:
            raise OriginError(
                f"{entry!r} looks like a regular expression; regexes are refused because "
                f"flask-cors matches them as prefixes. {_GLOB_FORMS}"
            )
        raise OriginError(f"{entry!r} is not an origin (scheme://host[:port]). {_GLOB_FORMS}")
    if match["sub"] and "." not in match["host"]:
        raise OriginError(
            f"{entry!r} would allow every site under .{match['host']}; name your domain, e.g. "
            '"https://*.example.com".'
        )
    parts = [re.escape(match["scheme"].lower()), "://"]
    if match["sub"]:
        parts.append(rf"{_LABEL}(?:\.{_LABEL})*\.")
    parts.append(re.escape(match["host"].lower()))
    port = match["port"]
    if (match["scheme"].lower(), port) in (("http", ":80"), ("https", ":443")):
        port = None  # browsers leave the default port out of Origin
    if port == ":*":
        parts.append(r"(?::[0-9]{1,5})?")
    elif port:
        parts.append(re.escape(port))
    # \Z, not $: "$" also matches before a trailing newline.
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE)


def path_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression matching the paths of the glob ``glob`` (``*`` = anything)."""
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")) + r"\Z")


def _as_list(value: t.Any) -> list[t.Any] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value) if v]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return None


def parse_origins(value: t.Any) -> tuple[list[str], list[Problem]]:
    """Check a ``CORS_ORIGINS`` value: the entries as a list, and what is wrong with them."""
    entries = _as_list(value)
    if entries is None or not all(isinstance(e, str) for e in entries):
        return [], [
            Problem(
                "cors.origins",
                "CORS_ORIGINS",
                f"CORS_ORIGINS = {value!r} is not a list of origins.",
                'Write a list of strings, e.g. CORS_ORIGINS = ["https://app.example.com"]. '
                "Compiled regular expressions are refused: flask-cors matches them as prefixes.",
            )
        ]
    problems = []
    for entry in entries:
        if entry.strip() == "*":
            continue
        try:
            origin_pattern(entry)
        except OriginError as e:
            problems.append(Problem("cors.origin", "CORS_ORIGINS", f"CORS_ORIGINS: {e}", ""))
    return [e.strip() for e in entries], problems


def _problem(key: str, value: t.Any, expected: str) -> Problem:
    return Problem("config.type", key, f"{key} = {value!r} is not valid.", f"Expected {expected}.")


def options(config: t.Mapping[str, t.Any]) -> tuple[dict[str, t.Any], list[Problem]]:
    """The flask-cors keyword options from the settings, and the problems found.

    No options (an empty dict) means no origin is allowed: nothing is registered.
    """
    origins, problems = parse_origins(config.get("CORS_ORIGINS"))
    resources = _as_list(config.get("CORS_RESOURCES"))
    if resources is None or not all(isinstance(r, str) and r.startswith("/") for r in resources):
        problems.append(
            _problem(
                "CORS_RESOURCES",
                config.get("CORS_RESOURCES"),
                'a list of path globs starting with "/", e.g. ["/api/*", "/auth/*"]',
            )
        )
    credentials = config.get("CORS_SUPPORTS_CREDENTIALS", False)
    if not isinstance(credentials, bool):
        problems.append(_problem("CORS_SUPPORTS_CREDENTIALS", credentials, "true or false"))
    max_age = config.get("CORS_MAX_AGE")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
    ):
        problems.append(_problem("CORS_MAX_AGE", max_age, "a whole number of seconds >= 0"))
    expose = _as_list(config.get("CORS_EXPOSE_HEADERS"))
    if expose is None or not all(isinstance(h, str) for h in expose):
        problems.append(
            _problem("CORS_EXPOSE_HEADERS", config.get("CORS_EXPOSE_HEADERS"), "a list of names")
        )
    if "*" in origins and credentials is True:
        problems.append(
            Problem(
                "cors.wildcard_credentials",
                "CORS_ORIGINS",
                'CORS_ORIGINS contains "*" while CORS_SUPPORTS_CREDENTIALS is true. Browsers '
                'reject "Access-Control-Allow-Origin: *" on requests with cookies, so flask-cors '
                "would echo every site's own origin instead: any website could call this API "
                "with your users' cookies and read the answers.",
                "List the exact origins of your front ends, e.g. CORS_ORIGINS = "
                '["https://app.example.com"] (globs such as "https://*.example.com" work), or '
                "set CORS_SUPPORTS_CREDENTIALS = false to allow every origin without cookies.",
            )
        )
    if problems or not origins or not resources:
        return {}, problems
    # Every entry becomes an anchored pattern, so flask-cors never guesses regex-or-literal.
    patterns: list[str | re.Pattern[str]] = [
        "*" if o == "*" else origin_pattern(o) for o in dict.fromkeys(origins)
    ]
    return {
        "origins": patterns,
        "resources": [path_pattern(r) for r in resources],
        "supports_credentials": credentials,
        "max_age": max_age,
        "expose_headers": expose or None,
        # Headers only for requests that carry an Origin (see init_app).
        "always_send": False,
        # Flask runs after_request for error responses too; no need to wrap its handlers.
        "intercept_exceptions": False,
        "allow_private_network": bool(config.get("CORS_ALLOW_PRIVATE_NETWORK", False)),
        "send_wildcard": False,
    }, []


def init_app(app: Flask, state: CompleteState) -> None:
    """Register flask-cors for the configured origins and resources (nothing when none)."""
    kwargs, problems = options(app.config)
    if problems:
        state.problems.extend(problems)
        return
    if not kwargs:
        return
    from flask_cors import CORS

    hooks = app.after_request_funcs.setdefault(None, [])
    count = len(hooks)
    CORS(app, **kwargs)
    if len(hooks) != count + 1:  # pragma: no cover - a flask-cors change; fail loudly
        raise RuntimeError("flask-cors did not register exactly one after_request hook")
    cors_hook = t.cast("t.Callable[[Response], Response]", hooks[-1])
    hooks[-1] = _replaying(cors_hook, kwargs["resources"])


def _replaying(
    cors_hook: t.Callable[[Response], Response], resources: list[re.Pattern[str]]
) -> t.Callable[[Response], Response]:
    """flask-cors' after-request hook, answering each simple request from an origin seen before
    with the headers flask-cors added for it then.

    Every resource has the same options, so for a request that is not a preflight and asks
    nothing of the private network, the headers flask-cors adds depend on the origin alone
    (once the path matches a resource, as flask-cors matches it). Every other request, and the
    first from each origin, goes through flask-cors itself.
    """
    from flask_cors.core import ACL_ORIGIN, FLASK_CORS_EVALUATED

    added: dict[str, tuple[tuple[str, str], ...]] = {}

    def cors_after_request(response: Response) -> Response:
        environ = request.environ
        origin = environ.get("HTTP_ORIGIN")
        # A request without Origin is not cross-origin: nothing to add.
        if origin is None:
            return response
        headers = response.headers
        if (
            request.method == "OPTIONS"
            or _PRIVATE_NETWORK in environ
            or type(headers) is not Headers
            or ACL_ORIGIN in headers
            or hasattr(response, FLASK_CORS_EVALUATED)
        ):
            return cors_hook(response)
        path = unquote(request.path)
        if not any(pattern.match(path) for pattern in resources):
            return response
        replay = added.get(origin)
        if replay is None:
            before = len(headers)
            response = cors_hook(response)
            if len(added) >= _REPLAYED:
                added.clear()  # bounded: Origin is whatever the client sends
            added[origin] = tuple(response.headers.items())[before:]
            return response
        for name, value in replay:
            headers.add(name, value)
        return response

    return cors_after_request

"""The app's routes win over the bundle's endpoints.

A URL pattern the app serves itself (with any method) is the app's: when the app registered it
before ``Complete(app)``, the bundle's rule is not registered at all; when after (an app factory
that adds its blueprints last), a request the bundle's rule caught is routed to the app's rules
as if the bundle's were not there, and the first such request logs it. ``flask complete check``
reports both (``auth.routes_shadowed``).
"""

from __future__ import annotations

import logging
import re
import typing as t

from flask import current_app, request
from werkzeug.routing import Map, MapAdapter, Rule

if t.TYPE_CHECKING:
    from flask import Flask

BLUEPRINT = "complete_auth"
log = logging.getLogger("flask_complete.auth")
_VARIABLE = re.compile(r"<[^<>]*>")
#: Per app: bundle endpoint -> a matcher over the app's own rules for its URL (``None`` once
#: looked at and found free).
_CACHE = "complete.auth.routes"
_TAKEN = "complete.auth.routes_taken"


def pattern(rule: str) -> str:
    """The URLs ``rule`` matches, as a comparable shape: each variable, whatever its converter
    and name, is one placeholder (``/tokens/<int:id>`` and ``/tokens/<n>`` are one pattern)."""
    return _VARIABLE.sub("<>", rule)


def own_rules(app: Flask) -> dict[str, list[Rule]]:
    """The app's own rules (not the bundle's) by URL pattern."""
    found: dict[str, list[Rule]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(BLUEPRINT + "."):
            found.setdefault(pattern(rule.rule), []).append(rule)
    return found


#: What to do about a URL both serve.
FIX = (
    'set AUTH_URL_PREFIX to a path the app does not use (e.g. "/api/auth" in settings.toml) to '
    "have the bundle's JSON endpoints as well"
)


def describe(url: str, theirs: list[Rule], methods: t.Iterable[str]) -> str:
    """One sentence: the app serves ``url``, so the bundle's endpoint is left to the app."""
    endpoints = ", ".join(sorted({r.endpoint for r in theirs}))
    verbs = "/".join(sorted(methods))
    return (
        f"The app serves {url} itself ({endpoints}), so flask_complete's {verbs} {url} is "
        "left to the app's view"
    )


def leave_out(app: Flask, prefix: str, rules: t.Iterable[tuple[str, t.Iterable[str]]]) -> set[str]:
    """Of the bundle's ``(rule, methods)`` under ``prefix``, the rules whose URL the app serves
    already: logged, kept for ``check`` and returned, to be left out."""
    own = own_rules(app)
    methods: dict[str, set[str]] = {}
    for rule, verbs in rules:
        if pattern(prefix + rule) in own:
            methods.setdefault(rule, set()).update(verbs)
    notes = app.extensions.setdefault(_TAKEN, [])
    for rule, verbs in methods.items():
        note = describe(prefix + rule, own[pattern(prefix + rule)], verbs)
        log.warning("%s: %s.", note, FIX)
        notes.append(note)
    return set(methods)


def taken_notes(app: Flask) -> list[str]:
    """What :func:`leave_out` left out at init, described."""
    return list(app.extensions.get(_TAKEN, ()))


def shadowed(app: Flask) -> list[str]:
    """What each bundle endpoint whose URL the app serves too (registered after the bundle's)
    is, described; used by ``flask complete check``."""
    own = own_rules(app)
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(BLUEPRINT + ".") and pattern(rule.rule) in own:
            methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
            found.append(describe(rule.rule, own[pattern(rule.rule)], methods))
    return found


def _matchers(app: Flask) -> dict[str, tuple[MapAdapter, dict[int, Rule]] | None]:
    """Per bundle endpoint, a matcher over the app's own rules for the same URL, built once:
    the first request comes after the last rule (Flask refuses new ones from then on)."""
    cached: dict[str, tuple[MapAdapter, dict[int, Rule]] | None] | None = app.extensions.get(_CACHE)
    if cached is not None:
        return cached
    own = own_rules(app)
    made: dict[str, tuple[MapAdapter, dict[int, Rule]] | None] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(BLUEPRINT + "."):
            continue
        theirs = own.get(pattern(rule.rule))
        if not theirs:
            made[rule.endpoint] = None
            continue
        # The copies, keyed back to the app's rules (a copy matches as its original would).
        pairs = [(original.empty(), original) for original in theirs]
        copies = {id(copy): original for copy, original in pairs}
        url_map = Map(
            [copy for copy, _ in pairs],
            converters=app.url_map.converters,
            strict_slashes=app.url_map.strict_slashes,
            merge_slashes=app.url_map.merge_slashes,
        )
        made[rule.endpoint] = (url_map.bind("localhost"), copies)
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        log.warning("%s: %s.", describe(rule.rule, theirs, methods), FIX)
    app.extensions[_CACHE] = made
    return made


def yield_to_app() -> t.Any:
    """Before a bundle endpoint: a URL the app serves as well is dispatched to the app's view
    (or answered with the app's 405), with the app's blueprint's own before-request steps."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    rule = request.url_rule
    matcher = _matchers(app).get(rule.endpoint) if rule is not None else None
    if matcher is None:
        return None
    adapter, copies = matcher
    # The app's view as if the bundle's rule did not exist; its 405 when no method fits (the
    # request then belongs to no blueprint, so the bundle's JSON handlers stay out of it).
    request.url_rule = None
    matched, args = adapter.match(request.path, request.method, return_rule=True)
    request.url_rule, request.view_args = copies[id(matched)], dict(args)
    # The app-wide steps ran already; those of the app's blueprint(s) did not.
    names = list(reversed(request.blueprints))
    for name in names:
        for url_func in app.url_value_preprocessors.get(name, ()):
            url_func(request.endpoint, request.view_args)
    for name in names:
        for before in app.before_request_funcs.get(name, ()):
            answer = app.ensure_sync(before)()
            if answer is not None:
                return answer
    return app.dispatch_request()

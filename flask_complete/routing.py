"""URL rules that compile their URL builders on first use, so that building an app stays cheap.

Werkzeug compiles two URL builders (Python source, through :mod:`ast`) for every rule as it
is added to the map: about nine tenths of what adding a route costs, paid by every
``create_app()`` (each test of a suite with a function-scoped app fixture pays it again), for
builders that only ``url_for`` uses. Matching requests does not use them. :class:`LazyRule`
is Werkzeug's :class:`~werkzeug.routing.Rule` with each builder compiled by Werkzeug on its
first use instead; the built URLs are Werkzeug's own.

``Complete`` makes it the app's ``url_rule_class`` when the app still has Flask's default, so
every rule added after the call is lazy; an app with its own rule class keeps it.
``_compile_builder`` is Werkzeug's private method: when the installed Werkzeug has none of the
shape this module overrides (:mod:`flask_complete.hooks` builds a URL both ways to know), the
app keeps Werkzeug's eager rules and one warning names the version.
"""

from __future__ import annotations

import typing as t

from werkzeug.routing import Rule

if t.TYPE_CHECKING:
    from flask import Flask


class LazyRule(Rule):
    """A :class:`~werkzeug.routing.Rule` whose URL builders are compiled when first called."""

    def _compile_builder(self, append_unknown: bool = True) -> t.Callable[..., tuple[str, str]]:
        # Rule.compile() binds what this returns to self._build / self._build_unknown.
        name = "_build_unknown" if append_unknown else "_build"

        def build(rule: Rule, *args: t.Any, **kwargs: t.Any) -> tuple[str, str]:
            compiled = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            # Later builds call Werkzeug's builder directly (two threads may both compile: the
            # results are the same).
            setattr(rule, name, compiled)
            return t.cast("tuple[str, str]", compiled(*args, **kwargs))

        return build


def init_app(app: Flask) -> None:
    """Make :class:`LazyRule` the rule class of ``app`` unless the app chose its own, or the
    installed Werkzeug's rules do not compile as :class:`LazyRule` expects (the extension asks
    :mod:`flask_complete.hooks` first)."""
    if app.url_rule_class is Rule:
        app.url_rule_class = LazyRule


def wanted(app: Flask) -> bool:
    """Whether ``app`` still has Werkzeug's rule class (an app with its own keeps it)."""
    return app.url_rule_class is Rule

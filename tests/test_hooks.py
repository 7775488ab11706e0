"""Private names of the bundled libraries: each probed at init; without it, the library's public
behaviour and one warning naming the version, never an exception or a wrong result."""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.routing import Rule

from flask_complete import hooks
from flask_complete.routing import LazyRule

STRONG = "X2mWq0c8yBv5Lr7Tn4Kp9Zs1Jd6Hf3Ga0Ue8Oi2Py5Rt7Ew4Qx1Nc9Vb6Mz3Lk0"
HOOK = "werkzeug.routing.Rule._compile_builder"


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    hooks.recheck()
    yield
    hooks.recheck()  # after the patches are undone


def _renamed_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Werkzeug whose rules compile through a builder of another name, as a release that
    reworks its routing internals would have: ``Rule.compile`` calls the new name."""
    compile_ = Rule.compile
    names = tuple(
        "_make_builder" if n == "_compile_builder" else n for n in compile_.__code__.co_names
    )
    patched = type(compile_)(compile_.__code__.replace(co_names=names), compile_.__globals__)
    monkeypatch.setattr(Rule, "_make_builder", Rule._compile_builder, raising=False)
    monkeypatch.delattr(Rule, "_compile_builder")
    monkeypatch.setattr(Rule, "compile", patched)


def _reshaped_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Werkzeug whose ``_compile_builder`` takes its flag by another name."""
    original = Rule._compile_builder

    def _compile_builder(self: Rule, unknown: bool = True) -> t.Any:
        return original(self, unknown)

    monkeypatch.setattr(Rule, "_compile_builder", _compile_builder)


def _example_app(tmp_path: Path, name: str = "app") -> Flask:
    from example_app import create_app

    url = f"sqlite:///{tmp_path / name}.sqlite3"
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": STRONG})


def _every_url(app: Flask) -> dict[tuple[str, ...], str]:
    """Every rule of ``app`` built with a value for each of its arguments, and a query."""
    urls = {}
    adapter = app.url_map.bind("example.com", "/prefix", url_scheme="https")
    for rule in app.url_map.iter_rules():
        values = dict.fromkeys(rule.arguments, 5)
        if "filename" in values:
            values["filename"] = "css/a b.css"
        for method in sorted(rule.methods or ()):
            url = adapter.build(rule.endpoint, {**values, "q": "x y"}, method=method)
            urls[(rule.rule, method)] = url
            urls[(rule.rule, method, "external")] = adapter.build(
                rule.endpoint, values, method=method, force_external=True
            )
    return urls


@pytest.mark.parametrize("simulate", [_renamed_builder, _reshaped_builder])
def test_example_app_without_the_rule_hook(
    simulate: t.Callable[[pytest.MonkeyPatch], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _example_app(tmp_path, "before")
    assert before.url_rule_class is LazyRule
    expected = _every_url(before)
    simulate(monkeypatch)
    hooks.recheck()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_complete"):
        app = _example_app(tmp_path, "after")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert f"werkzeug {metadata.version('werkzeug')} has no {HOOK}" in message
    assert "compile their builders when added" in message
    # Werkzeug's own rules: the same URLs, built and served.
    assert app.url_rule_class is Rule
    assert _every_url(app) == expected
    assert len(expected) > 10
    upgraded = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert app.test_client().get("/").status_code == 200


def test_the_lazy_rules_are_kept_where_the_hook_works(tmp_path: Path) -> None:
    assert hooks.missing() == []
    assert _example_app(tmp_path).url_rule_class is LazyRule


def test_a_probe_that_raises_is_a_missing_hook(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hook = hooks.HOOKS[HOOK]

    def broken() -> bool:
        raise AttributeError("gone")

    monkeypatch.setitem(hooks.HOOKS, HOOK, hooks.Hook(hook.name, "werkzeug", "eager", broken))
    with caplog.at_level(logging.WARNING, logger="flask_complete"):
        assert hooks.usable(HOOK) is False
    assert [r.getMessage().startswith("werkzeug ") for r in caplog.records] == [True]
    assert [h.name for h in hooks.missing()] == [HOOK]


@pytest.mark.parametrize("name", sorted(hooks.HOOKS))
def test_each_hook_is_there_on_the_tested_versions(name: str) -> None:
    assert hooks.usable(name), hooks.HOOKS[name].fallback

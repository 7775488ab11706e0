"""URL rules whose builders compile on first use: the URLs are still the ones Werkzeug builds."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from flask import Flask, url_for
from werkzeug.routing import BuildError, Rule

from flask_complete import Complete, ConfigError
from flask_complete.routing import LazyRule

STRONG = "X2mWq0c8yBv5Lr7Tn4Kp9Zs1Jd6Hf3Ga0Ue8Oi2Py5Rt7Ew4Qx1Nc9Vb6Mz3Lk0"


def _routes(app: Flask) -> Flask:
    view = lambda **kw: "x"  # noqa: E731
    app.add_url_rule("/", "index", view)
    app.add_url_rule("/items/<int:item_id>", "item", view)
    app.add_url_rule("/items/<int:item_id>/<slug>", "item_slug", view)
    app.add_url_rule("/files/<path:name>", "file", view)
    app.add_url_rule("/page/", "page", view, defaults={"number": 1})
    app.add_url_rule("/page/<int:number>", "page", view)
    app.add_url_rule("/float/<float:value>", "float", view)
    app.add_url_rule("/uuid/<uuid:key>", "uuid", view)
    app.add_url_rule("/any/<any(a, b):which>", "any", view)
    app.add_url_rule("/only-post", "post", view, methods=["POST"])
    app.add_url_rule("/only-get", "post", view, methods=["GET"])
    return app


BUILDS: list[tuple[str, dict[str, t.Any]]] = [
    ("index", {}),
    ("index", {"q": "a b", "tags": ["x", "y"]}),
    ("item", {"item_id": 7}),
    ("item", {"item_id": 7, "_anchor": "top", "_external": True}),
    ("item_slug", {"item_id": 1, "slug": "héllo wörld/?"}),
    ("file", {"name": "a/b c/d.txt"}),
    ("page", {}),
    ("page", {"number": 1}),
    ("page", {"number": 3, "sort": "new"}),
    ("float", {"value": 1.5}),
    ("uuid", {"key": "12345678-1234-5678-1234-567812345678"}),
    ("any", {"which": "b"}),
    ("post", {"_method": "POST"}),
    ("post", {"_method": "GET"}),
    ("static", {"filename": "app.css"}),
]


def _built(app: Flask) -> list[str]:
    with app.test_request_context("/", base_url="https://example.com/prefix"):
        return [url_for(endpoint, **values) for endpoint, values in BUILDS]


def _bundle_app(tmp_path: Path, **config: t.Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}"
    )
    app.config.update(config)
    Complete(app, env="production", root=tmp_path)
    return app


def test_urls_are_the_ones_werkzeug_builds(tmp_path: Path) -> None:
    eager = _routes(Flask(__name__))
    lazy = _routes(_bundle_app(tmp_path))
    assert lazy.url_rule_class is LazyRule
    assert _built(lazy) == _built(eager)
    # Built a second time (by Werkzeug's compiled builders now), still the same.
    assert _built(lazy) == _built(eager)
    # What cannot be built fails as it does with Werkzeug's rules.
    for values, error in (({}, BuildError), ({"item_id": "seven"}, ValueError)):
        for app in (eager, lazy):
            with app.test_request_context("/"), pytest.raises(error):
                url_for("item", **values)


def test_no_builder_is_compiled_until_a_url_is_built(tmp_path: Path) -> None:
    app = _routes(_bundle_app(tmp_path))
    lazy = [rule for rule in app.url_map.iter_rules() if isinstance(rule, LazyRule)]
    assert {rule.endpoint for rule in lazy} >= {"index", "item", "page", "post"}

    def compiled(rule: Rule) -> tuple[bool, bool]:
        return tuple(  # type: ignore[return-value]
            "LazyRule" not in getattr(rule, name).__qualname__
            for name in ("_build", "_build_unknown")
        )

    assert all(compiled(rule) == (False, False) for rule in lazy)
    # Requests are matched without them.
    assert app.test_client().get("/items/3").status_code == 200
    with app.test_request_context("/"):
        url_for("item", item_id=3)
    built = {rule.endpoint: compiled(rule) for rule in lazy}
    assert built.pop("item") == (False, True)
    assert set(built.values()) == {(False, False)}


def test_an_app_with_its_own_rule_class_keeps_it(tmp_path: Path) -> None:
    class MyRule(Rule):
        pass

    app = Flask(__name__)
    app.url_rule_class = MyRule
    app.config.update(
        SECRET_KEY=STRONG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}"
    )
    Complete(app, env="production", root=tmp_path)
    assert app.url_rule_class is MyRule
    _routes(app)
    assert _built(app) == _built(_routes(Flask(__name__)))


def test_a_refused_init_leaves_the_rule_class_alone(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}",
        CORS_ORIGINS=["*"],
        CORS_SUPPORTS_CREDENTIALS=True,
    )
    with pytest.raises(ConfigError):
        Complete(app, env="production", root=tmp_path)
    assert app.url_rule_class is Rule

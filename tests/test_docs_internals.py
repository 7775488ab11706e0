"""``docs/internals.rst`` says what the import contracts say: the same layers in the same order,
and every module of the package named in its layer's item (so the page cannot drift from the
tree or from ``pyproject.toml``)."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import flask_complete

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "internals.rst"


def _contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{m.strip() for m in re.split(r"[|:]", layer)} for layer in layers["layers"]]


def _page_items() -> list[str]:
    """The numbered items of the page's layer list, each up to its first blank line."""
    text = PAGE.read_text()
    items = re.split(r"^\d+\. ", text, flags=re.M)[1:]
    return [item.split("\n\n")[0] for item in items]


def test_the_page_lists_the_contracts_layers_in_order() -> None:
    # Each item names its layer's packages in the parenthesis after its title.
    named = [
        set(re.findall(r"``(flask_complete[\w.]*)``", item.split("):")[0]))
        for item in _page_items()
    ]
    assert named == _contract_layers()


def test_every_module_is_named_in_its_layers_item() -> None:
    layers = _contract_layers()
    items = _page_items()
    missing = []
    for info in pkgutil.walk_packages(flask_complete.__path__, "flask_complete."):
        if "template" in info.name:
            continue
        top = ".".join(info.name.split(".")[:2])
        (index,) = [i for i, layer in enumerate(layers) if top in layer]
        if info.name != top and f"``{info.name.rsplit('.', 1)[1]}``" not in items[index]:
            missing.append(info.name)
    assert not missing, f"docs/internals.rst does not name {missing}"

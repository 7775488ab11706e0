"""The package reads bottom-up: settings, the per-app state, the pieces, the extension that orders
them, then the commands and the pytest plugin. No piece imports the extension."""

from __future__ import annotations

import ast
from pathlib import Path

import flask_complete

PACKAGE = Path(flask_complete.__file__).parent


def _imports(path: Path) -> set[str]:
    """The flask_complete modules ``path`` imports (relative imports resolved)."""
    package = ".".join(("flask_complete", *path.relative_to(PACKAGE).parent.parts))
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [f"{module}.{alias.name}" for alias in node.names]
            found.update([module, *names])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("flask_complete")}


def test_no_piece_imports_the_extension() -> None:
    offenders = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("extension.py", "__init__.py") or path.parent != PACKAGE
        if "flask_complete.extension" in _imports(path)
    }
    assert offenders == set(), f"import flask_complete.state instead: {sorted(offenders)}"


def test_the_state_imports_no_piece() -> None:
    assert _imports(PACKAGE / "state.py") <= {
        "flask_complete",
        "flask_complete.settings.config",
        "flask_complete.settings.config.Settings",
        "flask_complete.problems",
        "flask_complete.problems.Problem",
    }

"""Sphinx glue for the generated references (the content itself: :mod:`references`).

Directives:

``.. settings-reference::``
    Every setting: a table of defaults per environment, then one ``.. setting::`` entry each.
``.. pytest-plugin-reference::``
    The pytest plugin's options, ini keys and fixtures.
``.. public-api:: flask_complete``
    autodoc entries for every name in the module's ``__all__`` (or, for a module without one,
    every public name it defines), so a new export is documented without editing the page.

Each command on the command line page gets its examples from :mod:`cli_examples`.

Object types ``setting`` and ``fixture`` give the entries an index entry and a role:
``:setting:`DATABASE_URL``` and ``:fixture:`db```.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing as t

import cli_examples
import references
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective


class _Generated(SphinxDirective):
    """A directive whose content is reST generated from the package."""

    has_content = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def sources(self) -> list[str]:
        """Files whose change must rebuild the page."""
        return []

    def run(self) -> list[nodes.Node]:
        for path in self.sources():
            self.env.note_dependency(path)
        try:
            text = "\n".join(self.lines())
        except references.ReferenceError as e:
            raise self.error(str(e)) from None
        return self.parse_text_to_nodes(text, allow_section_headings=True)


class SettingsReference(_Generated):
    def lines(self) -> list[str]:
        return references.settings_rst()

    def sources(self) -> list[str]:
        root = references.package_dir()
        return [str(path) for path in sorted(root.rglob("*.py"))] + [str(root / "defaults.toml")]


class PytestPluginReference(_Generated):
    def lines(self) -> list[str]:
        return references.pytest_rst()

    def sources(self) -> list[str]:
        return [str(references.package_dir() / "pytest_plugin.py")]


class ConnectionsTable(_Generated):
    """``.. connections-table::`` with ``:workers: 2 4 8``, ``:max-connections: 100`` and
    ``:reserved: 3`` (PostgreSQL's ``superuser_reserved_connections``)."""

    option_spec: t.ClassVar[dict[str, t.Any]] = {
        "workers": directives.unchanged_required,
        "max-connections": directives.positive_int,
        "reserved": directives.nonnegative_int,
    }

    def lines(self) -> list[str]:
        workers = [int(n) for n in self.options.get("workers", "1 2 4 8").split()]
        return references.connections_rst(
            workers, self.options.get("max-connections", 100), self.options.get("reserved", 3)
        )

    def sources(self) -> list[str]:
        return [str(references.package_dir() / "defaults.toml")]


def public_names(module: t.Any) -> list[str]:
    """``module.__all__``, or the public names the module itself defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
        and (inspect.isclass(value) or inspect.isfunction(value))
    ]


def _defining_module(package: str, name: str, value: t.Any) -> str | None:
    """The module under ``package`` whose own namespace holds ``value`` as ``name``."""
    root = package.partition(".")[0]
    for module_name, module in sorted(sys.modules.items()):
        ours = module_name != package and module_name.partition(".")[0] == root
        if ours and getattr(module, "__dict__", {}).get(name) is value:
            return module_name
    return None


class PublicApi(SphinxDirective):
    """``.. public-api:: flask_complete``: an autodoc entry per exported name."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        names = public_names(module)
        lines = [f".. py:module:: {module_name}", ""]
        if module.__doc__:
            lines += [*inspect.cleandoc(module.__doc__).splitlines(), ""]
        for name in names:
            lines += self.entry(module_name, name, getattr(module, name))
        return self.parse_text_to_nodes("\n".join(lines))

    def entry(self, module_name: str, name: str, value: t.Any) -> list[str]:
        target = f"{module_name}.{name}"
        if inspect.isclass(value) and issubclass(value, BaseException):
            return [f".. autoexception:: {target}", "   :members:", ""]
        if inspect.isclass(value):
            return [f".. autoclass:: {target}", "   :members:", ""]
        if callable(value):
            return [f".. autofunction:: {target}", ""]
        # Data: its ``#:`` comment lives where it is defined, not where it is re-exported.
        defined = _defining_module(module_name, name, value) or module_name
        docs = ModuleAnalyzer.for_module(defined).find_attr_docs().get(("", name))
        lines = [f".. py:data:: {name}"]
        if isinstance(value, str):
            lines.append(f"   :value: {value!r}")
        else:
            lines.append(f"   :type: {type(value).__module__}.{type(value).__qualname__}")
        lines.append("")
        if docs:
            lines += [f"   {line}" for line in docs]
        if defined != module_name:
            lines += ["", f"   Defined in ``{defined}``."]
        return [*lines, ""]


_OBJECT_REPR = re.compile(r"^\s*=\s*<[\w.]+ object>$")


def drop_object_reprs(app: Sphinx, doctree: nodes.document) -> None:
    """Drop a value shown as a bare ``<module.Class object>`` (a model mixin's columns are
    SQLAlchemy objects): it says nothing, and the entry's docs say what the attribute holds."""
    for annotation in list(doctree.findall(addnodes.desc_annotation)):
        if _OBJECT_REPR.match(annotation.astext()):
            annotation.parent.remove(annotation)


def add_cli_examples(app: Sphinx, ctx: t.Any, lines: list[str]) -> None:
    """Append the examples of :mod:`cli_examples` to each command sphinx-click renders."""
    lines += cli_examples.example_lines(ctx.command_path)


def describe_arguments(app: Sphinx, ctx: t.Any, lines: list[str]) -> None:
    """Say what each argument is, beside sphinx-click's "Required argument"."""
    lines[:] = cli_examples.argument_lines(ctx.command_path, lines)


def literal_options(app: Sphinx, ctx: t.Any, lines: list[str]) -> None:
    """Options named in a command's help, as literals (directive lines are left alone)."""
    lines[:] = [
        line if line.lstrip().startswith("..") else references.literal_options(line)
        for line in lines
    ]


def setup(app: Sphinx) -> dict[str, t.Any]:
    app.add_object_type("setting", "setting", indextemplate="pair: %s; setting", objname="setting")
    app.add_object_type(
        "fixture", "fixture", indextemplate="pair: %s; fixture", objname="pytest fixture"
    )
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("pytest-plugin-reference", PytestPluginReference)
    app.add_directive("public-api", PublicApi)
    app.add_directive("connections-table", ConnectionsTable)
    app.connect("doctree-read", drop_object_reprs)
    app.connect("sphinx-click-process-epilog", add_cli_examples)
    app.connect("sphinx-click-process-arguments", describe_arguments)
    for part in ("description", "options", "arguments"):
        app.connect(f"sphinx-click-process-{part}", literal_options)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

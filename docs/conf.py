"""Sphinx configuration: ``make docs`` builds it with warnings as errors, and without the network.

The references (settings, commands, the pytest plugin, the public API) are generated at build time
from the package itself by the extensions in ``_ext/``, so they cannot drift from the code.
Every Python and console block of the pages is run or checked by tests/test_docs_snippets.py
(its docstring has the rules); ``:class: illustrative`` exempts a block that cannot run.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import flask_complete

HERE = Path(__file__).resolve().parent
# autodoc reads the auth mixins' declared attributes off the unmapped mixin classes.
warnings.filterwarnings("ignore", "Unmanaged access of declarative attribute")
sys.path.insert(0, str(HERE / "_ext"))

project = "flask_complete"
author = "flask_complete contributors"
copyright = "flask_complete contributors"
release = flask_complete.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx_click",
    "myst_parser",
    "pallets_sphinx_themes",
    # Ours: the generated references and the ``setting`` entries.
    "complete_sphinx",
]
exclude_patterns = ["_build", "_inventories", "_ext"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# Literal blocks (``::``) are highlighted as Python when they lex as Python, else shown plain
# (Sphinx's "default"); tests/test_docs_snippets.py runs the ones that parse as Python.
highlight_language = "default"

# Intersphinx reads inventories shipped in the repository, never the network: the build works
# offline and gives the same result every time. Refresh them with docs/_inventories/README.md.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", str(HERE / "_inventories" / "python.inv")),
}
intersphinx_timeout = 1

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

# CHANGES.md is included as Markdown; its headings become the changelog's sections.
myst_heading_anchors = 3

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
html_title = f"flask_complete documentation ({version})"
html_show_sourcelink = False
html_context = {"project_links": []}
# The theme's banner script asks Read the Docs for versions from the reader's browser.
version_banner = False

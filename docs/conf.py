"""Sphinx configuration."""

project = "flask_complete"
author = "flask_complete contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
intersphinx_mapping = {
    "flask": ("https://flask.palletsprojects.com/en/stable/", None),
    "sqlalchemy": ("https://docs.sqlalchemy.org/en/20/", None),
}
autodoc_member_order = "bysource"
html_theme = "alabaster"
exclude_patterns = ["_build"]

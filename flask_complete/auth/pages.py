"""The HTML side of the auth endpoints: which clients get pages, where a form may send the
browser next, and the templates under ``complete/auth/``.

The views in :mod:`.views` decide; this module only shapes their answers for a browser. A page
extends ``complete/auth/base.html``, which extends the app's ``base.html`` when the app has one
(its ``title`` and ``content`` blocks) and the bundle's ``complete/auth/layout.html`` otherwise.
An app replaces any of them by placing a file at the same path in its own templates folder.
"""

from __future__ import annotations

import typing as t
import unicodedata
from urllib.parse import urlsplit

from flask import current_app, render_template, request
from jinja2 import TemplateNotFound

if t.TYPE_CHECKING:
    from flask import Response
    from werkzeug.exceptions import HTTPException

#: The app's layout, used when its templates folder has it.
APP_LAYOUT = "base.html"
#: The bundle's own layout otherwise.
BUNDLE_LAYOUT = "complete/auth/layout.html"


def wants_html() -> bool:
    """Whether the client asked for a page: it accepts ``text/html`` above JSON (a browser's
    navigation or form). A client sending no ``Accept``, ``*/*`` or JSON gets JSON."""
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def index() -> str:
    """The app's index: the root of wherever the app is mounted."""
    return request.script_root + "/"


def _browser_form(target: str) -> str:
    # What a browser would request: it drops tabs and line breaks and reads "\" as "/".
    return target.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")


def safe_next(target: object) -> str:
    """``target`` when it is a path on this site (``/notes?x=1``), else the app's index.

    Judged as the browser will read it: anything naming a scheme or a host (``//evil``,
    ``/\\evil``, ``https:x``), holding control characters or spaces, or not starting with one
    ``/`` is refused.
    """
    if not isinstance(target, str) or not target or len(target) > 2000:
        return index()
    if any(unicodedata.category(c)[0] in "CZ" for c in target):
        return index()
    parts = urlsplit(_browser_form(target))
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return index()
    if parts.path.startswith("//"):
        return index()
    return target


def layout() -> str:
    """The template the bundle's pages extend: the app's ``base.html`` when it has one."""
    try:
        current_app.jinja_env.get_template(APP_LAYOUT)
    except TemplateNotFound:
        return BUNDLE_LAYOUT
    return APP_LAYOUT


def render(template: str, status: int = 200, **context: t.Any) -> Response:
    """``complete/auth/<template>`` with ``status``, inside the layout."""
    from flask import make_response

    html = render_template(f"complete/auth/{template}", complete_layout=layout(), **context)
    response = make_response(html, status)
    # A login page holds a CSRF token and is per session: never kept by a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def login_page(error: str | None = None, status: int = 200, **context: t.Any) -> Response:
    """The login form, with ``error`` above it."""
    from .state import get_auth

    auth = get_auth()
    nxt = request.values.get("next")
    return render(
        "login.html",
        status,
        error=error,
        login_field=auth.login_field,
        login_value=context.pop("login_value", ""),
        next=safe_next(nxt) if nxt else "",
        **context,
    )


def error_page(error: HTTPException) -> Response:
    """``error`` as a page (``complete/auth/error.html``), with its status and headers."""
    response = render("error.html", error.code or 500, error=error)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response

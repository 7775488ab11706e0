"""What every JSON API needs and Flask leaves to each app: bounded JSON bodies, text fields a
database accepts, ids bounded to their column, JSON errors under a URL prefix, and ``503`` with
``Retry-After`` when the database is lost before anything was written.

::

    from flask_complete import api

    api.init_app(app)                          # JSON errors under /api/, 503, <id:...> URLs

    @app.post("/api/notes")
    @login_required
    def create_note():
        data = api.json_body()                 # 400/413 JSON for anything but a small object
        title = api.text(data, "title", column=Note.title)

A ``503`` means nothing was written: once a request has sent a COMMIT, a lost database is a
``500`` (logged), never a ``503``, because the write may be stored and a client that retries as
told would repeat it. That holds for a COMMIT whose answer was lost too: the server may have
committed. So a view commits last and builds its answer before the commit (flush, then
serialise), not from attributes the commit expired::

    db.session.add(note)
    db.session.flush()                        # the id and defaults, in this transaction
    body = note.to_dict()                     # no query after the commit
    db.session.commit()
    return body, 201

Nothing here adds a request hook: error handlers run only when something failed, the helpers
only when a view calls them, and one engine event notes that a request sent a COMMIT.
"""

from __future__ import annotations

import json
import logging
import re
import typing as t
import unicodedata

from flask import abort, current_app, has_request_context, jsonify, request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sa_types
from sqlalchemy.engine import Engine
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from werkzeug.routing import IntegerConverter, ValidationError

if t.TYPE_CHECKING:
    from flask import Flask
    from werkzeug.routing import Map
    from werkzeug.wrappers import Response

__all__ = [
    "DATABASE_UNAVAILABLE",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "RETRY_AFTER",
    "BigIdConverter",
    "IdConverter",
    "clean_text",
    "committed",
    "database_error",
    "error_response",
    "fits",
    "init_app",
    "json_body",
    "json_errors",
    "read_body",
    "text",
    "too_deep",
    "unavailable",
    "under_prefix",
]

#: The most a JSON endpoint reads: enough for any form-sized object, far below a DoS.
MAX_JSON_BYTES = 64 * 1024
#: Deeper nesting is refused before parsing (the parser recurses).
MAX_JSON_DEPTH = 32
#: Seconds a client is told to wait when the database is unavailable.
RETRY_AFTER = 5
#: Errors that mean the database is unavailable (DB-API ``OperationalError`` and
#: ``InterfaceError``: lost connections, refused connects, failovers; a full pool).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)
UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."
LOGIN_FIRST = "Log in first, or send an Authorization: Bearer token."
_STATE_KEY = "complete.api"
#: Set in a request's WSGI environ once the request has sent a COMMIT.
_COMMIT_SENT = "flask_complete.api.commit_sent"
#: Integer column types and their largest value (Werkzeug's int converter has no bound).
_INT_MAX = {
    sa_types.SmallInteger: 2**15 - 1,
    sa_types.BigInteger: 2**63 - 1,
    sa_types.Integer: 2**31 - 1,
}
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
log = logging.getLogger("flask_complete.api")


# --- request bodies --------------------------------------------------------------------------


def read_body(max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The request body, refused with ``413`` past ``max_bytes`` before more is read (a
    declared length is checked first, a chunked body is read to one byte past the bound)."""
    length = request.content_length
    if length is not None and length > max_bytes:
        _too_large(max_bytes)
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        _too_large(max_bytes)
    return data


def json_body(
    *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH, form: bool = False
) -> dict[str, t.Any]:
    """The request's JSON object, or a ``400``/``413`` JSON error naming what to send.

    At most ``max_bytes`` are read and nesting deeper than ``max_depth`` is refused before the
    parser sees it. With ``form``, a form-encoded body is accepted too (as a dict of strings).
    """
    if form and not request.is_json:
        length = request.content_length
        if length is not None and length > max_bytes:
            _too_large(max_bytes)
        return request.form.to_dict()
    if not request.is_json:
        abort(400, description="Send a JSON object (Content-Type: application/json).")
    raw = read_body(max_bytes)
    if too_deep(raw, max_depth):
        abort(400, description=f"The JSON is nested more than {max_depth} deep.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit.
        abort(400, description="The body is not valid JSON: send a JSON object.")
    if not isinstance(data, dict):
        abort(400, description="Send a JSON object (Content-Type: application/json).")
    return data


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` deep; brackets
    inside strings do not count. Costs nothing for bodies with few brackets."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _too_large(max_bytes: int) -> t.NoReturn:
    size = f"{max_bytes // 1024} KiB" if max_bytes % 1024 == 0 else f"{max_bytes} bytes"
    abort(413, description=f"The body is too large: send at most {size}.")


# --- fields ----------------------------------------------------------------------------------


def clean_text(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` is not text a database stores as given, or ``None`` when it is: no lone
    surrogates (not encodable), no NUL or other control characters (PostgreSQL refuses NUL;
    ``multiline`` allows tab, newline and carriage return)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (it holds a lone surrogate)"
    allowed = "\t\n\r" if multiline else ""
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        return "must not hold control characters" + (
            " other than tab and line breaks" if multiline else ""
        )
    return None


@t.overload
def text(
    data: t.Mapping[str, t.Any],
    name: str,
    *,
    required: t.Literal[True] = ...,
    max_length: int | None = ...,
    column: t.Any = ...,
    multiline: bool = ...,
    strip: bool = ...,
) -> str: ...
@t.overload
def text(
    data: t.Mapping[str, t.Any],
    name: str,
    *,
    required: bool,
    max_length: int | None = ...,
    column: t.Any = ...,
    multiline: bool = ...,
    strip: bool = ...,
) -> str | None: ...
def text(
    data: t.Mapping[str, t.Any],
    name: str,
    *,
    required: bool = True,
    max_length: int | None = None,
    column: t.Any = None,
    multiline: bool = False,
    strip: bool = True,
) -> str | None:
    """``data[name]`` as clean text, or a ``400`` JSON error naming the field and the rule.

    :param max_length: Longest allowed value; default: the ``String(n)`` length of ``column``.
    :param column: A model attribute or column whose length bounds the value.
    :param multiline: Allow tab and line breaks (for a body of text).
    :param strip: Remove surrounding white space first.
    """
    value = data.get(name)
    if value is None or (isinstance(value, str) and not (value.strip() if strip else value)):
        if required:
            abort(400, description=f"'{name}' is required: a non-empty string.")
        return None
    if not isinstance(value, str):
        abort(400, description=f"'{name}' must be a string.")
    problem = clean_text(value, multiline=multiline)
    if problem is not None:
        abort(400, description=f"'{name}' {problem}.")
    if strip:
        value = value.strip()
    if max_length is None and column is not None:
        max_length = getattr(_column_type(column), "length", None)
    if max_length is not None and len(value) > max_length:
        abort(400, description=f"'{name}' must be at most {max_length} characters.")
    return value


def fits(column: t.Any, value: object) -> bool:
    """Whether ``value`` is a positive integer within the range of ``column``'s integer type
    (``Integer``: 2**31 - 1; ``BigInteger``: 2**63 - 1), so that a lookup cannot overflow."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return False
    kind = _column_type(column)
    for base, top in _INT_MAX.items():
        if isinstance(kind, base):
            return value <= top
    return value <= 2**63 - 1


def _column_type(column: t.Any) -> t.Any:
    expression = getattr(column, "expression", column)
    return getattr(expression, "type", None)


class IdConverter(IntegerConverter):
    """``<id:name>``: a primary key of an ``Integer`` column, 1 to 2**31 - 1; anything else
    matches no route (404), so a lookup never overflows the column."""

    def __init__(self, url_map: Map, max: int = 2**31 - 1) -> None:
        super().__init__(url_map, min=1, max=max)

    def to_python(self, value: str) -> t.Any:
        try:
            return super().to_python(value)
        except ValidationError:
            # No row has this id, whatever the method: a ValidationError would let the router
            # answer 405 when another rule of the URL takes another method (it checks methods
            # before converting).
            raise NotFound() from None


class BigIdConverter(IdConverter):
    """``<bigid:name>``: a ``BigInteger`` primary key, 1 to 2**63 - 1."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, max=2**63 - 1)


# --- errors ----------------------------------------------------------------------------------


def error_response(error: HTTPException) -> Response:
    """``error`` as ``{"error": description}`` with its status and headers (``Retry-After``,
    ``Allow``)."""
    response = error.get_response()
    response.set_data(jsonify(error=error.description).get_data())
    response.mimetype = "application/json"
    return response


def unavailable(error: Exception) -> ServiceUnavailable:
    """The ``503`` for a lost database; the cause is logged, never shown. Only for a request
    that has written nothing: :func:`database_error` decides."""
    log.warning("the database is unavailable: %s", _first_line(error))
    return ServiceUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER)


def committed() -> bool:
    """Whether the current request has sent a COMMIT, on any engine (``False`` outside a
    request). Counted from the moment the COMMIT is sent, not answered: one whose answer is
    lost may be stored. A read-only transaction's COMMIT counts too."""
    return has_request_context() and _COMMIT_SENT in request.environ


def database_error(error: Exception) -> HTTPException:
    """The answer to a lost database (:data:`DATABASE_UNAVAILABLE`) in a request: ``503`` with
    ``Retry-After`` while nothing can have been written, else (:func:`committed`) ``500``,
    logged with the cause, never ``503``: a client that retried would repeat a stored write.

    An app's own handler for these errors calls this to keep the rule; the COMMITs are counted
    once :func:`init_app` (or :func:`json_errors`) has run for some app."""
    if committed():
        log.error(
            "the database failed after this request sent a COMMIT: answered 500, not 503, "
            "so that the client does not send again a write the database may have stored: %s",
            _first_line(error),
            exc_info=error,
        )
        return InternalServerError(original_exception=error)
    return unavailable(error)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0]


def _note_commit(conn: t.Any, *args: t.Any) -> None:
    if has_request_context():
        request.environ[_COMMIT_SENT] = True


def _watch_commits() -> None:
    # On the Engine class, once per process: every engine sees it, binds and the engines an app
    # is given afresh for a test database included. The event fires before the COMMIT is sent.
    # Its price: SQLAlchemy then dispatches connection events, some 15 us of CPU a transaction.
    for name in ("commit", "commit_twophase"):
        if not event.contains(Engine, name, _note_commit):
            event.listen(Engine, name, _note_commit)


def json_errors(app: Flask, *prefixes: str) -> None:
    """Answer every error under the URL ``prefixes`` as JSON, and a lost database anywhere with
    ``503`` and ``Retry-After`` (JSON under the prefixes, Flask's page elsewhere), or ``500``
    once the request has sent a COMMIT (:func:`database_error`).

    Each handler is installed once per app and never replaces one the app registered first;
    the app's own handlers for a status code win over these, as Flask orders them.
    """
    state: list[str] | None = app.extensions.get(_STATE_KEY)
    if state is None:
        state = app.extensions[_STATE_KEY] = []
        own = app.error_handler_spec[None]
        if HTTPException not in own[None]:
            app.register_error_handler(HTTPException, _http_error)
        if InternalServerError not in own[500]:
            app.register_error_handler(InternalServerError, _http_error)
        for error in DATABASE_UNAVAILABLE:
            if error not in own[None]:
                app.register_error_handler(error, _database_error)
        _watch_commits()
    state.extend(p for p in prefixes if p not in state)


def init_app(app: Flask, prefixes: t.Sequence[str] = ("/api/",)) -> None:
    """JSON errors under ``prefixes``, ``503`` for a lost database (``500`` after a COMMIT),
    and the ``id``/``bigid`` URL converters. Call once per app, after ``Complete(app)``."""
    if app.extensions.get(f"{_STATE_KEY}.init"):
        raise RuntimeError("flask_complete.api.init_app(app) is called once per app.")
    app.extensions[f"{_STATE_KEY}.init"] = True
    json_errors(app, *prefixes)
    app.url_map.converters.setdefault("id", IdConverter)
    app.url_map.converters.setdefault("bigid", BigIdConverter)


def under_prefix(path: str | None = None) -> bool:
    """Whether ``path`` (default: the request's) is under one of the app's JSON prefixes."""
    path = request.path if path is None else path
    prefixes = current_app.extensions.get(_STATE_KEY) or ()
    return any(path.startswith(p) or path == p.rstrip("/") for p in prefixes)


def _http_error(error: HTTPException) -> t.Any:
    if not under_prefix():
        return error
    if isinstance(error, InternalServerError):
        # Never the exception's text: it may hold internals.
        error = InternalServerError()
    elif isinstance(error, Unauthorized) and error.description == Unauthorized.description:
        # Werkzeug's text speaks of a browser's password prompt, not of an API.
        error = Unauthorized(LOGIN_FIRST, www_authenticate=error.www_authenticate)
    return error_response(error)


def _database_error(error: Exception) -> t.Any:
    # As an HTTP error of its status: JSON under the prefixes, the app's own handler if it has one.
    return current_app.handle_http_exception(database_error(error))

"""Server-side session records with the app's own (adopted) ``LoginManager``.

The app's user loader stays what decides who a user is; around it, the login's record decides
whether the session or remember cookie is still a login, so that logging out ends a captured
cookie as it does with the bundle's manager. Flask-Login's session key ``_user_id`` keeps the id
the app gave: the login's id travels beside it in the session (``_auth_session``) and, in the
remember cookie, after it (``<user id>|<login id>``), which the loader takes apart before the
app's loader sees it.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from flask import after_this_request, current_app
from flask import session as cookie_session

from .sessions import SESSION_KEY
from .state import state_or_none

if t.TYPE_CHECKING:
    from flask import Flask, Response

#: Marks the loader this module wrapped, so that it is wrapped once.
_WRAPPED = "_complete_checks_records"
#: Left in ``_remember`` once the cookie is written: Flask-Login's own after-request step then
#: pops it and writes nothing (its cookie would lack the login's id).
_WRITTEN = "written"


def check_records(app: Flask, **extra: t.Any) -> None:
    """Flask-Login's ``user_accessed``, sent before it loads the user: wrap the app's user
    loader (registered before or after ``Complete(app)``) in the record check, once."""
    manager = app.login_manager  # type: ignore[attr-defined]
    loader = manager._user_callback
    if loader is not None and not getattr(loader, _WRAPPED, False):
        manager._user_callback = _checking(loader)


def _checking(loader: t.Callable[[str], t.Any]) -> t.Callable[[str], t.Any]:
    from .core import load_user

    # The bundle's loader, adopted by a manager that had none, checks the record itself.
    checks_itself = loader is load_user

    def load(user_id: str) -> t.Any:
        return _load(loader, str(user_id), checks_itself)

    setattr(load, _WRAPPED, True)
    return load


def _load(loader: t.Callable[[str], t.Any], user_id: str, checks_itself: bool) -> t.Any:
    auth = state_or_none()
    if auth is None or auth.sessions is None:
        return loader(user_id)
    sid = cookie_session.get(SESSION_KEY)
    # Without the login's id in the session, Flask-Login is reading the remember cookie.
    from_cookie = not (isinstance(sid, str) and sid)
    if from_cookie:
        user_id, sep, sid = user_id.rpartition("|")
        if not (sep and user_id and sid):
            return _refuse(from_cookie)  # a cookie from before the records: no login
    assert isinstance(sid, str)
    if checks_itself:
        cookie_session[SESSION_KEY] = sid
        user = loader(user_id)
    else:
        owner = auth.sessions.owner(sid)
        user = loader(user_id) if owner is not None else None
        state = sa.inspect(user, raiseerr=False) if user is not None else None
        if state is None or state.identity is None or str(state.identity[0]) != owner:
            user = None
    if user is None:
        return _refuse(from_cookie)
    if from_cookie:
        # The session restored from the cookie, as Flask-Login would, with its identifier
        # (which Flask-Login leaves out: "strong" protection would end it at once).
        cookie_session["_user_id"] = user_id
        cookie_session[SESSION_KEY] = sid
        manager = current_app.login_manager  # type: ignore[attr-defined]
        cookie_session["_id"] = manager._session_identifier_generator()
    if current_app.config.get("REMEMBER_COOKIE_REFRESH_EACH_REQUEST"):
        remember_with_record(sid, refresh=True)
    return user


def _refuse(from_cookie: bool) -> None:
    """Forget a login that has no live record; a dead remember cookie is deleted too."""
    cookie_session.pop("_user_id", None)
    cookie_session.pop(SESSION_KEY, None)
    if from_cookie:
        cookie_session["_remember"] = "clear"


def remember_with_record(sid: str, *, refresh: bool = False) -> None:
    """Write the remember cookie of this request's login with the login's id in it, in place of
    Flask-Login's (which holds the user id alone)."""

    @after_this_request
    def write(response: Response) -> Response:
        from .core import set_remember_cookie

        operation = cookie_session.get("_remember")
        wanted = operation == "set" or (refresh and operation is None)
        if wanted and "_user_id" in cookie_session:
            set_remember_cookie(response, f"{cookie_session['_user_id']}|{sid}")
            cookie_session["_remember"] = _WRITTEN
        return response

"""Test helpers: log a test client in without running the password KDF, make bearer headers.

The pytest plugin's ``login``/``auth_user``/``auth_client`` fixtures call :func:`login` and
:func:`create_user`; they work in any test too::

    token = login_client(client, user)        # the session cookie is set; returns the CSRF token
    client.post("/api/notes", json={...})     # the X-CSRF-Token header is sent automatically
    headers = bearer_headers(user)            # {"Authorization": "Bearer fct_..."}
"""

from __future__ import annotations

import secrets
import typing as t

from flask.testing import FlaskClient

from . import csrf

if t.TYPE_CHECKING:
    from flask import Flask


def login_client(client: FlaskClient, user: t.Any, *, fresh: bool = True) -> str:
    """Log ``client`` in as ``user`` by writing its session, as ``login_user`` would, with its
    server-side record (in the current transaction when the caller has an app context, as the
    plugin's ``db`` fixture does; committed otherwise).

    Sets the ``X-CSRF-Token`` header on every later request of ``client`` and returns the token.
    ``user`` must be flushed (have its primary key).
    """
    import sqlalchemy as sa
    from flask import current_app, has_app_context

    from . import sessions
    from .state import state_or_none

    app: Flask = client.application
    manager = getattr(app, "login_manager", None)
    if manager is None:
        raise RuntimeError(
            "The app has no LoginManager: pass Complete(app, user_model=User) so that auth is "
            "wired, or log in through the app's own login view."
        )
    identifier = manager._session_identifier_generator
    environ = dict(client.environ_base or {})
    auth = state_or_none(app)
    own_context = not (has_app_context() and current_app._get_current_object() is app)  # type: ignore[attr-defined]
    login_id = None
    with app.test_request_context(environ_base=environ):
        ident = identifier()
        user_id = getattr(user, manager.id_attribute)()
        if auth is not None and auth.sessions is not None:
            lifetime = sessions.as_timedelta(app.config.get("PERMANENT_SESSION_LIFETIME", 2678400))
            login_id = auth.sessions.create(sa.inspect(user).identity[0], False, lifetime)
            if own_context:
                auth.db.session.commit()
    token = secrets.token_urlsafe(32)
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = fresh
        session["_id"] = ident
        session[csrf.SESSION_KEY] = token
        if login_id is not None:
            session[sessions.SESSION_KEY] = login_id
    client.environ_base["HTTP_X_CSRF_TOKEN"] = token
    return token


#: The name the pytest plugin's ``login`` fixture calls.
login = login_client

#: The password :func:`create_user` gives when none is passed.
DEFAULT_PASSWORD = "correct horse battery staple"
_counter = 0


def create_user(
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    *,
    factory: t.Any = None,
    **fields: t.Any,
) -> t.Any:
    """Add and flush a user of the app's user model (in the current app context); a unique
    email is made up when none is given. Extra ``fields`` (``is_admin=True``) are set as is.

    :param factory: A factory-boy factory of the user model, to fill the model's other columns.
    """
    import sqlalchemy as sa

    from .state import get_auth

    global _counter
    auth = get_auth()
    if email is not None:
        fields[auth.login_field] = email
    elif factory is None:
        _counter += 1
        fields[auth.login_field] = f"user{_counter}-{secrets.token_hex(3)}@example.test"
    user = auth.user_model(**fields) if factory is None else factory.build(**fields)
    user.set_password(password)
    session = auth.db.session
    session.add(user)
    try:
        session.flush()
    except sa.exc.IntegrityError as e:
        session.rollback()
        name, error = auth.user_model.__name__, str(e.orig).splitlines()[0]
        if factory is not None:
            message = f"{factory.__name__} leaves a required column of {name} empty: {error}."
        else:
            message = (
                f"auth_user cannot make a {name} from an email and a password alone: {error}. "
                f"Add a factory of the model to the factories module (class {name}Factory, in "
                "flask_factories; auth_user then uses it), or pass the fields: "
                "create_user(email, **fields)."
            )
        raise UserFieldsError(message) from None
    return user


class UserFieldsError(Exception):
    """The user model needs fields that :func:`create_user` was not given."""


def logout_client(client: FlaskClient) -> None:
    """Forget ``client``'s login and CSRF header (its record is left to expire: the test
    database is rolled back or dropped anyway)."""
    with client.session_transaction() as session:
        session.clear()
    client.environ_base.pop("HTTP_X_CSRF_TOKEN", None)


def bearer_headers(user: t.Any, name: str = "test", days: int | None = None) -> dict[str, str]:
    """Create an API token for ``user`` (in the current app context) and return the header."""
    from .tokens import issue

    _, secret = issue(user, name, days)
    return {"Authorization": f"Bearer {secret}"}

"""``flask users``: create, list, set-password, deactivate, activate, delete, token, tokens,
revoke-token, sessions."""

from __future__ import annotations

import functools
import typing as t

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .. import api
from ..auth import passwords, sessions, tokens
from ..auth.models import new_session_token, utcnow
from ..auth.state import AuthState, get_auth

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def _auth() -> AuthState:
    try:
        return get_auth()
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


def _explained(command: F) -> F:
    """``command`` with a database it cannot use (missing, unreachable, without the tables)
    answered in one line with the fix, as ``flask db upgrade`` does, never a traceback."""

    @functools.wraps(command)
    def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
        from ..database.errors import database_errors

        auth = _auth()
        # The user model's database: it may be a bind of its own.
        bind = auth.db.session.get_bind(mapper=sa.inspect(auth.user_model))
        try:
            with database_errors(bind.engine.url):
                return command(*args, **kwargs)
        except sessions.SessionsUnavailable:
            raise click.ClickException(
                "The server-side sessions' storage cannot be reached (AUTH_SESSION_STORAGE): "
                "is Redis running at the URL it names?"
            ) from None

    return t.cast(F, run)


def _key(auth: AuthState, login: str) -> str:
    key = auth.login_key(login)
    if auth.login_field == "email":
        local, at, domain = key.partition("@")
        if not (local and at and domain) or "@" in domain or any(c.isspace() for c in key):
            raise click.UsageError(f"{login!r} is not an email address (name@example.com).")
        if len(key) > 254:
            raise click.UsageError("An email address has at most 254 characters.")
    elif not key:
        raise click.UsageError(f"The {auth.login_field} must not be empty.")
    problem = api.clean_text(key)
    if problem is not None:
        raise click.UsageError(f"The {auth.login_field} {problem}.")
    return key


def _find(auth: AuthState, login: str) -> t.Any:
    key = _key(auth, login)
    user = auth.find_user(key)
    if user is None:
        raise click.ClickException(
            f"No user with {auth.login_field} {key!r}. Run `flask users list` to see them."
        )
    return user


def _set_password(user: t.Any, password: str) -> None:
    setter = getattr(user, "set_password", None)
    if setter is None:
        raise click.ClickException(
            f"{type(user).__name__} has no set_password(): mix in flask_complete.auth.UserMixin "
            "or define set_password(password)."
        )
    try:
        setter(password)
    except passwords.PasswordError as e:
        raise click.BadParameter(str(e), param_hint="password") from None


_password_option = click.option(
    "--password",
    "-p",
    help="The password; prompted for (twice) when left out, which keeps it out of shell history.",
)


def _ask(password: str | None) -> str:
    if password is not None:
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.command("create")
@click.argument("email")
@_password_option
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@with_appcontext
@_explained
def create_command(email: str, password: str | None, admin: bool) -> None:
    """Create a user."""
    auth = _auth()
    key = _key(auth, email)
    if auth.find_user(key) is not None:
        raise click.ClickException(
            f"A user with {auth.login_field} {key!r} exists. Change its password with "
            f"`flask users set-password {key}`."
        )
    user = auth.user_model(**{auth.login_field: key})
    _set_password(user, _ask(password))
    if admin:
        if not hasattr(user, "is_admin"):
            raise click.UsageError(f"{auth.user_model.__name__} has no is_admin column.")
        user.is_admin = True
    auth.db.session.add(user)
    try:
        auth.db.session.commit()
    except sa.exc.IntegrityError:
        auth.db.session.rollback()
        # The column's collation may call two addresses the same (MySQL: "ann@" and "ànn@").
        raise click.ClickException(
            f"A user with {auth.login_field} {key!r} exists (or one the database's collation "
            "takes for the same). Run `flask users list` to see them."
        ) from None
    click.echo(f"created {'admin ' if admin else ''}user {key}")


@click.command("list")
@with_appcontext
@_explained
def list_command() -> None:
    """List the users."""
    auth = _auth()
    model = auth.user_model
    column = getattr(model, auth.login_field)
    users = auth.db.session.scalars(sa.select(model).order_by(column)).all()
    if not users:
        click.echo("no users; add one with `flask users create EMAIL`")
        return
    for user in users:
        flags = [
            "active" if user.is_active else "inactive",
            *(["admin"] if getattr(user, "is_admin", False) else []),
        ]
        last = getattr(user, "last_login_at", None)
        seen = f"  last login {last:%Y-%m-%d %H:%M}" if last else ""
        click.echo(f"{getattr(user, auth.login_field)}  [{', '.join(flags)}]{seen}")


@click.command("set-password")
@click.argument("email")
@_password_option
@with_appcontext
@_explained
def set_password_command(email: str, password: str | None) -> None:
    """Set a user's password (ends the user's other sessions)."""
    auth = _auth()
    user = _find(auth, email)
    _set_password(user, _ask(password))
    if auth.sessions is not None:
        auth.sessions.revoke_user(_pk(user))
    auth.db.session.commit()
    click.echo(f"password changed for {getattr(user, auth.login_field)}")


@click.command("deactivate")
@click.argument("email")
@with_appcontext
@_explained
def deactivate_command(email: str) -> None:
    """Deactivate a user: no more logins, sessions or tokens."""
    auth = _auth()
    user = _find(auth, email)
    if not hasattr(user, "active"):
        raise click.ClickException(f"{type(user).__name__} has no active column to switch off.")
    user.active = False
    if hasattr(user, "session_token"):
        user.session_token = new_session_token()
    if auth.sessions is not None:
        auth.sessions.revoke_user(_pk(user))
    auth.db.session.commit()
    click.echo(f"deactivated {getattr(user, auth.login_field)}")


@click.command("activate")
@click.argument("email")
@with_appcontext
@_explained
def activate_command(email: str) -> None:
    """Activate a deactivated user: logins work again (old sessions and tokens stay ended)."""
    auth = _auth()
    user = _find(auth, email)
    if not hasattr(user, "active"):
        raise click.ClickException(f"{type(user).__name__} has no active column to switch on.")
    login = getattr(user, auth.login_field)
    if user.active:
        click.echo(f"{login} is already active")
        return
    user.active = True
    auth.db.session.commit()
    click.echo(f"activated {login}")


@click.command("delete")
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
@_explained
def delete_command(email: str, yes: bool) -> None:
    """Delete a user with its API tokens and sessions (asks first)."""
    auth = _auth()
    user = _find(auth, email)
    login = getattr(user, auth.login_field)
    model = auth.token_model()
    pk = _pk(user)
    count = 0
    if model is not None:
        count = int(
            auth.db.session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.user_id == pk)
            )
            or 0
        )
    logins = len(auth.sessions.logins(pk)) if auth.sessions is not None else 0
    if not yes:
        click.confirm(
            f"Delete {login} with {count} API token(s) and {logins} session(s)? This cannot be "
            "undone",
            abort=True,
        )
    if model is not None:
        auth.db.session.execute(sa.delete(model).where(model.user_id == pk))
    if auth.sessions is not None:
        auth.sessions.revoke_user(pk)
    auth.db.session.delete(user)
    auth.db.session.commit()
    click.echo(f"deleted {login}")


@click.command("token")
@click.argument("email")
@click.option("--name", "-n", required=True, help="What the token is for, e.g. 'ci deploy'.")
@click.option(
    "--expires-in",
    type=int,
    default=None,
    metavar="DAYS",
    help="Lifetime in days (default AUTH_TOKEN_DAYS, at most AUTH_TOKEN_MAX_DAYS).",
)
@with_appcontext
@_explained
def token_command(email: str, name: str, expires_in: int | None) -> None:
    """Create an API token for a user and print it (shown once)."""
    auth = _auth()
    user = _find(auth, email)
    if not user.is_active:
        raise click.ClickException(f"{email} is deactivated; a token for it would not work.")
    try:
        token, secret = tokens.issue(user, name, expires_in)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    except LookupError as e:
        raise click.ClickException(str(e)) from None
    auth.db.session.commit()
    expires = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
    click.echo(secret)
    click.echo(
        f"token {token.id} {name!r} for {email}, {expires}; it is not shown again.", err=True
    )


def _pk(user: t.Any) -> t.Any:
    return sa.inspect(user).identity[0]


def _when(value: t.Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


@click.command("tokens")
@click.argument("email")
@with_appcontext
@_explained
def tokens_command(email: str) -> None:
    """List a user's API tokens (never their secrets)."""
    auth = _auth()
    user = _find(auth, email)
    model = auth.token_model()
    if model is None:
        raise click.ClickException(
            "API tokens are not set up: declare a model with flask_complete.auth.ApiTokenMixin."
        )
    rows = auth.db.session.scalars(
        sa.select(model).where(model.user_id == _pk(user)).order_by(model.id)
    ).all()
    if not rows:
        click.echo(f"no API tokens; add one with `flask users token {email} --name NAME`")
        return
    now = utcnow()
    for row in rows:
        state = "revoked" if row.revoked_at else "expired" if not row.is_valid(now) else "valid"
        expires = f"expires {_when(row.expires_at)}" if row.expires_at else "never expires"
        click.echo(
            f"{row.id}  {row.name!r}  {row.hint}...  [{state}]  created {_when(row.created_at)}"
            f"  {expires}  last used {_when(row.last_used_at)}"
        )


@click.command("revoke-token")
@click.argument("token_id", type=int)
@with_appcontext
@_explained
def revoke_token_command(token_id: int) -> None:
    """Revoke an API token by its id (see `flask users tokens EMAIL`)."""
    auth = _auth()
    model = auth.token_model()
    if model is None:
        raise click.ClickException(
            "API tokens are not set up: declare a model with flask_complete.auth.ApiTokenMixin."
        )
    token = auth.db.session.get(model, token_id) if api.fits(model.id, token_id) else None
    if token is None:
        raise click.ClickException(
            f"No token with id {token_id}. Run `flask users tokens EMAIL` to see a user's tokens."
        )
    owner = auth.db.session.get(auth.user_model, token.user_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        auth.db.session.commit()
    click.echo(f"revoked token {token.id} {token.name!r} of {getattr(owner, auth.login_field)}")


@click.command("sessions")
@click.argument("email")
@click.option("--revoke", "handle", metavar="ID", help="End the session with this id.")
@click.option("--revoke-all", is_flag=True, help="End every session of the user.")
@with_appcontext
@_explained
def sessions_command(email: str, handle: str | None, revoke_all: bool) -> None:
    """List a user's sessions (logins), or end one or all of them."""
    auth = _auth()
    if auth.sessions is None:
        raise click.ClickException(
            "Server-side sessions are off (AUTH_SESSIONS = false, or the app has its own "
            "LoginManager): there are no records to list."
        )
    user = _find(auth, email)
    pk = _pk(user)
    if revoke_all:
        count = auth.sessions.revoke_user(pk)
        auth.db.session.commit()
        click.echo(f"revoked {count} session{'' if count == 1 else 's'} of {email}")
        return
    if handle is not None:
        if not auth.sessions.revoke_handle(pk, handle.strip()):
            raise click.ClickException(
                f"No session {handle!r} of {email}. Run `flask users sessions {email}` to see "
                "their ids."
            )
        auth.db.session.commit()
        click.echo(f"revoked session {handle.strip()} of {email}")
        return
    logins = auth.sessions.logins(pk)
    if not logins:
        click.echo(f"no sessions of {email}")
        return
    for login in logins:
        kind = "remembered" if login.remember else "browser session"
        click.echo(
            f"{login.handle}  created {_when(login.created_at)}  expires "
            f"{_when(login.expires_at)}  {kind}  {login.address or '-'}  "
            f"{login.user_agent or '-'}"
        )

"""``flask users``: create, list, set-password, deactivate, token."""

from __future__ import annotations

import typing as t

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from . import passwords, tokens
from .core import AuthState, get_auth
from .models import new_session_token


def _auth() -> AuthState:
    try:
        return get_auth()
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


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
    return key


def _find(auth: AuthState, login: str) -> t.Any:
    key = _key(auth, login)
    column = getattr(auth.user_model, auth.login_field)
    user = auth.db.session.execute(sa.select(auth.user_model).where(column == key)).scalar()
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
def create_command(email: str, password: str | None, admin: bool) -> None:
    """Create a user."""
    auth = _auth()
    key = _key(auth, email)
    column = getattr(auth.user_model, auth.login_field)
    exists = auth.db.session.execute(sa.select(column).where(column == key)).first()
    if exists is not None:
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
        raise click.ClickException(f"A user with {auth.login_field} {key!r} exists.") from None
    click.echo(f"created {'admin ' if admin else ''}user {key}")


@click.command("list")
@with_appcontext
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
def set_password_command(email: str, password: str | None) -> None:
    """Set a user's password (ends the user's other sessions)."""
    auth = _auth()
    user = _find(auth, email)
    _set_password(user, _ask(password))
    auth.db.session.commit()
    click.echo(f"password changed for {getattr(user, auth.login_field)}")


@click.command("deactivate")
@click.argument("email")
@with_appcontext
def deactivate_command(email: str) -> None:
    """Deactivate a user: no more logins, sessions or tokens."""
    auth = _auth()
    user = _find(auth, email)
    if not hasattr(user, "active"):
        raise click.ClickException(f"{type(user).__name__} has no active column to switch off.")
    user.active = False
    if hasattr(user, "session_token"):
        user.session_token = new_session_token()
    auth.db.session.commit()
    click.echo(f"deactivated {getattr(user, auth.login_field)}")


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

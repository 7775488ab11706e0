"""``flask db server start|stop|status``: the embedded PostgreSQL of the app
(``postgresql+embedded://`` URLs), one server in the instance folder shared by every process of
the project (:mod:`flask_complete.database.embedded`).

The first connection starts it anyway; ``start`` does it ahead, ``stop`` stops it (it is left
running otherwise), ``status`` names its PID, socket and data folder (exit status 3 when it is
not running, as ``pg_ctl status``).
"""

from __future__ import annotations

import shlex
import typing as t

import click
from flask import current_app
from flask.cli import with_appcontext

from ..database import binds
from ..database.embedded import STOP_MODES, Cluster, EmbeddedPostgresError, Status
from ..database.embedded import binaries as embedded_binaries
from ..database.identity import declared_name
from ..database.urls import EMBEDDED_SCHEME, embedded_cluster, is_embedded

if t.TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.engine import URL

#: ``flask db server status`` when no server runs (as ``pg_ctl status``).
NOT_RUNNING = 3


def _app() -> Flask:
    return t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]


def _embedded_urls(app: Flask) -> list[tuple[str | None, URL]]:
    """The app's databases on its embedded cluster: (bind key, URL)."""
    try:
        sqla = binds.sqla_of(app)
        keys = binds.keys(app)
    except click.ClickException:
        return []
    found = [(key, binds.url(sqla, key)) for key in keys]
    return [(key, url) for key, url in found if is_embedded(url)]


def _cluster(app: Flask) -> Cluster:
    return embedded_cluster(app.instance_path)


def _describe(cluster: Cluster, status: Status, urls: list[tuple[str | None, URL]]) -> None:
    started = status.started_at.strftime("%Y-%m-%d %H:%M:%S")
    click.echo(f"pid:      {status.pid} (user {status.user}, since {started})")
    click.echo(f"socket:   {status.socket}")
    click.echo(f"data:     {status.data_dir}")
    click.echo(f"log:      {status.log_file}")
    try:
        psql = str(embedded_binaries() / "psql")
    except EmbeddedPostgresError:
        psql = "psql"
    for key, url in urls:
        label = "" if key is None else f" (bind {binds.label(key)})"
        command = [psql, "-h", str(status.socket_dir), "-p", str(status.port), "-U", "postgres"]
        click.echo(f"psql{label}: {shlex.join([*command, declared_name(url)])}")


def _guarded(action: t.Callable[[], t.Any]) -> t.Any:
    try:
        return action()
    except EmbeddedPostgresError as e:
        raise click.ClickException(str(e)) from e


@click.group("server")
def server_command() -> None:
    """The embedded PostgreSQL (postgresql+embedded:// URLs): start, stop, status."""


@server_command.command("start")
@with_appcontext
def start_command() -> None:
    """Start the embedded PostgreSQL (the first connection would); make it the first time."""
    app = _app()
    urls = _embedded_urls(app)
    if not urls:
        raise click.ClickException(
            "No database of this app is the embedded PostgreSQL: set DATABASE_URL = "
            f'"{EMBEDDED_SCHEME}:///{app.name.rpartition(".")[2]}" in settings.toml '
            "[development], then run this again."
        )
    cluster = _cluster(app)
    before = _guarded(cluster.status)
    status = _guarded(cluster.ensure_running)
    if before is not None and before.pid == status.pid:
        click.echo(f"running already: the embedded PostgreSQL in {cluster.path}")
    else:
        click.echo(f"started the embedded PostgreSQL in {cluster.path}")
    _describe(cluster, status, urls)


@server_command.command("stop")
@click.option(
    "--mode",
    type=click.Choice(STOP_MODES),
    default="fast",
    show_default=True,
    help="fast: roll back open transactions and disconnect; smart: wait for clients to "
    "leave; immediate: no shutdown checkpoint (recovery at the next start).",
)
@with_appcontext
def stop_command(mode: str) -> None:
    """Stop the embedded PostgreSQL (the next connection starts it again)."""
    cluster = _cluster(_app())
    before = _guarded(cluster.status)
    if _guarded(lambda: cluster.stop(mode=mode)):
        pid = f" (PID {before.pid})" if before is not None else ""
        click.echo(f"stopped the embedded PostgreSQL{pid} in {cluster.path}")
    else:
        click.echo(f"not running: the embedded PostgreSQL in {cluster.path}")


@server_command.command("status")
@with_appcontext
def status_command() -> None:
    """Say whether the embedded PostgreSQL runs: its PID, socket and data folder."""
    app = _app()
    cluster = _cluster(app)
    status = _guarded(cluster.status)
    if status is not None:
        click.echo(f"running:  the embedded PostgreSQL in {cluster.path}")
        _describe(cluster, status, _embedded_urls(app))
        return
    orphans = cluster.processes()
    if orphans:
        click.echo(
            f"running without its postmaster.pid: PostgreSQL processes {orphans} work in "
            f"{cluster.data_dir}; stop them with `flask db server stop`."
        )
        click.get_current_context().exit(1)
    if cluster.initialized:
        click.echo(f"not running: the embedded PostgreSQL in {cluster.path}")
        click.echo(f"data:     {cluster.data_dir}")
        click.echo(f"log:      {cluster.log_file}")
        click.echo("The first connection starts it (or `flask db server start`).")
    else:
        click.echo(
            f"not made yet: the embedded PostgreSQL in {cluster.path} is made by the first "
            "connection (or `flask db server start`)."
        )
    click.get_current_context().exit(NOT_RUNNING)

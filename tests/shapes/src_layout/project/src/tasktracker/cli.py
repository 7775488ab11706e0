import click
from flask.cli import with_appcontext
from sqlalchemy import func, select

from .models import Task, db


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the tables that do not exist yet."""
    db.create_all()
    click.echo("Initialized the database.")


@click.command("stats")
@with_appcontext
def stats_command():
    """Show how many tasks are open."""
    open_tasks = db.session.scalar(select(func.count()).select_from(Task).where(~Task.done))
    click.echo(f"{open_tasks} open tasks")


def init_app(app):
    app.cli.add_command(init_db_command)
    app.cli.add_command(stats_command)

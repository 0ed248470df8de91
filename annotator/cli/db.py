"""``db upgrade``: database maintenance."""

from __future__ import annotations

import click

from annotator.cli.common import load_settings, user_errors


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    from db.migrate import upgrade
    from db.session import make_engine

    settings = load_settings()
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(settings.database_url))
    click.echo("Database is at the latest revision.")

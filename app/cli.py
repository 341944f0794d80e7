"""`flask ...` commands; each one is a transaction boundary."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask

from app.config import PROJECT_ROOT
from app.db import transaction, utcnow
from app.extensions import extensions
from app.services import member_codes


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def register_commands(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply all Alembic migrations to DATABASE_URL."""
        command.upgrade(alembic_config(extensions().config.DATABASE_URL), "head")

    @app.cli.command("purge-used-member-codes")
    def purge_used_member_codes() -> None:
        """Forget scanned member codes old enough to be rejected as expired anyway."""
        with transaction() as session:
            purged = member_codes.purge_used_codes(session, utcnow())
        click.echo(f"Purged {purged} used member codes.")

    @app.cli.command("seed-demo")
    @click.option("--members", "member_count", default=300, show_default=True)
    def seed_demo(member_count: int) -> None:
        """Fill an empty database with a demo mall (does nothing if already seeded)."""
        from app import demo_data

        with transaction() as session:
            if demo_data.is_seeded(session):
                click.echo("Demo data already present; nothing to do.")
                return
            summary = demo_data.seed_demo_mall(session, extensions().phone_vault, member_count=member_count)
        click.echo(
            f"Seeded demo mall: {summary.stores} stores, {summary.staff} staff, "
            f"{summary.members} members, {summary.purchases} purchases."
        )

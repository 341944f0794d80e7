"""`flask ...` commands; each one is a transaction boundary."""

from __future__ import annotations

from collections.abc import Callable

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from app import jobs
from app.config import PROJECT_ROOT
from app.db import transaction
from app.extensions import extensions
from app.services import coupons, points


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def register_commands(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply all Alembic migrations to DATABASE_URL."""
        command.upgrade(alembic_config(extensions().config.DATABASE_URL), "head")

    jobs_group = AppGroup("jobs", help="Scheduled jobs: run one now, or all on their schedule.")

    @jobs_group.command("run")
    @click.argument("name", type=click.Choice(sorted(jobs.JOBS)))
    def run_job(name: str) -> None:
        """Run one job now."""
        click.echo(jobs.run_job(current_app._get_current_object(), name))  # type: ignore[attr-defined]

    @jobs_group.command("schedule")
    def schedule() -> None:
        """Run every job on its schedule (mall timezone) until interrupted."""
        jobs.build_scheduler(current_app._get_current_object()).start()  # type: ignore[attr-defined]

    points_group = AppGroup("points", help="The points ledger.")

    @points_group.command("verify")
    def verify() -> None:
        """Check every ledger invariant; exit 1 and list what is wrong if any fails."""
        _report_invariants(points.verify_ledger, "points ledger OK")

    coupons_group = AppGroup("coupons", help="Coupons.")

    @coupons_group.command("verify")
    def verify_coupons() -> None:
        """Check stock + issued == total and single use; exit 1 and list what is wrong if any fails."""
        _report_invariants(coupons.verify_coupons, "coupons OK")

    app.cli.add_command(coupons_group)
    app.cli.add_command(jobs_group)
    app.cli.add_command(points_group)

    @app.cli.command("seed-demo")
    @click.option("--members", "member_count", default=300, show_default=True)
    def seed_demo(member_count: int) -> None:
        """Fill an empty database with a demo mall (does nothing if already seeded)."""
        from app import demo_data

        with transaction() as session:
            if demo_data.is_seeded(session):
                click.echo("Demo data already present; nothing to do.")
                return
            summary = demo_data.seed_demo_mall(
                session, extensions().phone_vault, extensions().mall_tz, member_count=member_count
            )
        click.echo(
            f"Seeded demo mall: {summary.stores} stores, {summary.staff} staff, "
            f"{summary.members} members, {summary.purchases} purchases."
        )


def _report_invariants(check: Callable[[Session], list[str]], ok_message: str) -> None:
    with transaction() as session:
        problems = check(session)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(ok_message)

"""`flask ...` commands; each one is a transaction boundary."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
import requests
from flask import Flask, current_app
from flask.cli import AppGroup
from prometheus_client import start_http_server
from sqlalchemy.orm import Session

from app import jobs, nightly
from app.config import PROJECT_ROOT
from app.db import transaction, utcnow
from app.extensions import extensions, mall_time
from app.import_cli import register_import_commands
from app.keys_cli import register_key_commands
from app.mall_time import MallTime
from app.services import advisors, coupons, kpis, points, push, tasks

# `make run` serves the app here; `--callback-url` overrides it.
if TYPE_CHECKING:  # alembic is imported when a command needs it: it costs every start-up 0.8 s
    from alembic.config import Config as AlembicConfig

DEFAULT_CALLBACK_URL = "http://127.0.0.1:5000/wecom/callback"
SANDBOX_EVENTS = {
    "add-contact": "add_external_contact",
    "edit-contact": "edit_external_contact",
    "del-contact": "del_external_contact",
    "del-follow-user": "del_follow_user",
}


def alembic_config(database_url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def register_commands(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply all Alembic migrations to DATABASE_URL."""
        from alembic import command

        command.upgrade(alembic_config(extensions().config.DATABASE_URL), "head")

    jobs_group = AppGroup("jobs", help="Scheduled jobs: run one now, or all on their schedule.")

    @jobs_group.command("run")
    @click.argument("name", type=click.Choice(sorted(jobs.JOBS)))
    def run_job(name: str) -> None:
        """Run one job now."""
        click.echo(jobs.run_job(current_app._get_current_object(), name))  # type: ignore[attr-defined]

    @jobs_group.command("schedule")
    def schedule() -> None:
        """The same as `flask scheduler`."""
        _run_scheduler()

    @app.cli.command("scheduler")
    def scheduler() -> None:
        """Run every job on its schedule (mall timezone) until interrupted. Start as many as you like:
        only the holder of the leader lease runs jobs; another takes over within a minute if it stops."""
        _run_scheduler()

    push_group = AppGroup("push", help="WeCom messages: advisors' daily digests, the outbox.")

    @push_group.command("digests")
    @click.option(
        "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="business day (default: today)"
    )
    def push_digests(day: datetime | None) -> None:
        """Enqueue a day's advisor digests and store summaries (each once per day), then send them."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        business_day = day.date() if day else mall_time().today
        public_base_url = extensions().config.PUBLIC_BASE_URL
        with transaction() as session:
            enqueued = push.enqueue_day(session, business_day, utcnow(), public_base_url)
        click.echo(
            f"{business_day}: enqueued {enqueued['digests']} digests, "
            f"{enqueued['store_summaries']} store summaries"
        )
        _echo_sent(jobs.send_due_messages(app))

    @push_group.command("send")
    def push_send() -> None:
        """Send (or retry) the WeCom messages that are due."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        _echo_sent(jobs.send_due_messages(app))

    app.cli.add_command(push_group)

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

    tags_group = AppGroup("tags", help="Tags, RFM segments, lifecycle stages and KPIs.")

    @tags_group.command("refresh")
    @click.option(
        "--batch-size", default=nightly.DEFAULT_BATCH_SIZE, show_default=True, help="members per transaction"
    )
    @click.option(
        "--connections",
        type=click.IntRange(min=1),
        help="ranges of members worked on at once  [default: NIGHTLY_CONNECTIONS]",
    )
    @click.option(
        "--step",
        "steps",
        multiple=True,
        type=click.Choice(nightly.STEPS),
        help="only these steps (repeatable)",
    )
    @click.option(
        "--as-of",
        "as_of",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="business day to refresh for, as it ended (default: today, now); to catch up a missed night",
    )
    def refresh_tags(
        batch_size: int, connections: int | None, steps: tuple[str, ...], as_of: datetime | None
    ) -> None:
        """The nightly refresh: statistics, lifecycle, RFM, tags, KPIs of today. Safe to stop and re-run."""
        at = mall_time()
        if as_of is not None:
            at = MallTime.closing(as_of.date(), at.tz)
        report = nightly.refresh(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            at,
            batch_size=batch_size,
            connections=connections,
            steps=steps or nightly.STEPS,
            progress=_ProgressBars(),
        )
        for step in report.steps:
            click.echo(f"{step.name:<10}{step.seconds:>9.2f} s{step.rows:>12,} rows")
        if "stats" in (steps or nightly.STEPS):
            click.echo(
                f"statistics: {f'{report.queued:,} members changed' if report.incremental else 'everyone'}"
            )
        click.echo(
            f"{'total':<10}{report.seconds:>9.2f} s   as of {report.as_of}: {report.transitions:,} lifecycle "
            f"transitions, {report.tags_added:,} tags added, {report.tags_removed:,} removed"
        )

    kpis_group = AppGroup("kpis", help="Daily KPI snapshots.")

    @kpis_group.command("compute")
    @click.option(
        "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="business day (default: today)"
    )
    def compute_kpis(day: datetime | None) -> None:
        """(Re)compute the KPI snapshots of one business day, e.g. after late purchases were imported."""
        at = mall_time()
        business_day = day.date() if day else at.today
        with transaction() as session:
            rows = kpis.compute_day(session, business_day, at)
        click.echo(f"KPIs of {business_day}: {rows} rows (mall and stores)")

    wecom_group = AppGroup("wecom", help="WeCom: advisors' 联系我 contact ways and callbacks.")

    @wecom_group.command("contact-ways")
    def contact_ways() -> None:
        """Create a 联系我 QR code at WeCom for every active advisor who has none yet."""
        with transaction() as session:
            missing = [staff.id for staff in advisors.advisors_without_contact_way(session)]
        wecom = extensions().wecom
        for staff_id in missing:
            with transaction() as session:
                way, _ = advisors.ensure_contact_way(session, wecom, staff_id)
            click.echo(f"advisor {staff_id}: {way.qr_code} (state {way.state})")
        click.echo(f"{len(missing)} contact ways created")

    @wecom_group.command("sync-corp-tags")
    def sync_corp_tags() -> None:
        """Send advisors' manual tag changes still pending to WeCom (customer tags, mark_tag)."""
        click.echo(jobs.sync_corp_tags())

    sandbox_group = AppGroup("sandbox", help="Drive the WeCom sandbox (development only).")
    event_group = AppGroup("wecom-event", help="Make the sandbox send the app a signed, encrypted callback.")

    def _event_command(name: str, change_type: str) -> None:
        @event_group.command(name, help=f"Send a change_external_contact / {change_type} callback.")
        @click.option("--advisor", "userid", required=True, help="the advisor's WeCom userid, e.g. advisor01")
        @click.option("--unionid", help="the shopper's unionid (add-contact needs it)")
        @click.option("--external-userid", help="instead of --unionid, for a known contact")
        @click.option("--state", default="", help="the contact way's state (add-contact)")
        @click.option("--name", default="", help="the shopper's WeChat name")
        @click.option("--callback-url", default=DEFAULT_CALLBACK_URL, show_default=True)
        def send(
            userid: str,
            unionid: str | None,
            external_userid: str | None,
            state: str,
            name: str,
            callback_url: str,
        ) -> None:
            _send_sandbox_event(change_type, userid, unionid, external_userid, state, name, callback_url)

    for name, change_type in SANDBOX_EVENTS.items():
        _event_command(name, change_type)
    sandbox_group.add_command(event_group)

    app.cli.add_command(sandbox_group)
    app.cli.add_command(wecom_group)

    tasks_group = AppGroup("tasks", help="Advisor tasks.")

    @tasks_group.command("generate")
    @click.option(
        "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="business day (default: today)"
    )
    @click.option(
        "--batch-size", default=tasks.DEFAULT_BATCH_SIZE, show_default=True, help="members per transaction"
    )
    def generate_tasks(day: datetime | None, batch_size: int) -> None:
        """Generate the advisor tasks of a business day from the active task rules. Safe to re-run."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        at = mall_time()
        report = tasks.generate_day(
            lambda: transaction(app),
            day.date() if day else at.today,
            at,
            batch_size=batch_size,
            progress=_ProgressBars(),
        )
        for step in report.steps:
            click.echo(f"{step.name:<12}{step.seconds:>9.2f} s{step.rows:>12,} rows")
        click.echo(
            f"{'total':<12}{report.seconds:>9.2f} s   {report.business_date}: {report.generated:,} tasks "
            f"from {report.rules} active rules"
        )

    app.cli.add_command(coupons_group)
    app.cli.add_command(jobs_group)
    app.cli.add_command(kpis_group)
    app.cli.add_command(points_group)
    app.cli.add_command(tags_group)
    app.cli.add_command(tasks_group)
    register_import_commands(app)
    register_key_commands(app)

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


def _run_scheduler() -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = extensions().config
    leadership = jobs.Leadership(app)
    scheduler = jobs.build_scheduler(app, leadership)
    if config.SCHEDULER_METRICS_PORT:
        # Only job durations and the process's own figures; not exposed beyond the scrapers' network.
        start_http_server(config.SCHEDULER_METRICS_PORT)
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        # A deploy's SIGTERM (or Ctrl-C): no new runs from here on; the main thread then waits for the
        # running ones. A second signal does not wait.
        if stopping or not scheduler.running:
            raise SystemExit(128 + signum)
        stopping.append(signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"scheduler {leadership.holder}: jobs run while this process holds the leader lease")
    try:
        scheduler.start()
    finally:
        finished = jobs.stop_scheduler(
            scheduler, leadership, timedelta(seconds=config.SCHEDULER_STOP_GRACE_SECONDS)
        )
    click.echo(f"scheduler {leadership.holder}: stopped, lease released")
    if not finished:
        # Job threads still running would keep the interpreter alive; their transactions roll back.
        logging.shutdown()
        os._exit(1)


def _echo_sent(report: push.SendReport) -> None:
    click.echo(f"sent {report.sent}, {report.retrying} to retry, {report.dead} dead")
    if report.invalid_users:
        click.echo(f"WeCom did not know: {', '.join(report.invalid_users)}")
    if report.rate_limited:
        click.echo("rate limited by WeCom: the rest is retried in a minute (flask push send)")


def _send_sandbox_event(
    change_type: str,
    userid: str,
    unionid: str | None,
    external_userid: str | None,
    state: str,
    name: str,
    callback_url: str,
) -> None:
    config = extensions().config
    if config.APP_ENV == "production":
        raise click.ClickException("the sandbox is for development and tests only")
    payload = {
        "change_type": change_type,
        "userid": userid,
        "unionid": unionid,
        "external_userid": external_userid,
        "state": state,
        "name": name,
        "callback_url": callback_url,
    }
    try:
        response = requests.post(
            f"{config.WECOM_API_BASE.rstrip('/')}/sandbox/events",
            json=payload,
            timeout=config.HTTP_TIMEOUT_SECONDS * 2,
        )
        answer = response.json()
    except (requests.RequestException, ValueError) as error:
        raise click.ClickException(
            f"the WeCom sandbox at {config.WECOM_API_BASE} did not answer: {error}"
        ) from error
    if not answer.get("ok"):
        raise click.ClickException(f"sandbox: {answer.get('error')}")
    delivery = answer.get("delivery", {})
    click.echo(
        f"{change_type} {userid} ↔ {answer['external_userid']}: "
        f"the app answered {delivery.get('status')} {delivery.get('body')!r}"
    )


class _ProgressBars:
    """One click progress bar per step of the nightly refresh or the task generation, on stderr."""

    def __init__(self) -> None:
        self._step: str | None = None
        self._bar: Any = None
        self._done = 0

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self._step:
            self.close()
            self._step, self._done = step, 0
            self._bar = click.progressbar(
                length=max(total, 1), label=f"{step:<10}", file=sys.stderr, show_eta=True
            )
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar, self._step = None, None


def _report_invariants(check: Callable[[Session], list[str]], ok_message: str) -> None:
    with transaction() as session:
        problems = check(session)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(ok_message)

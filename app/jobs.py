"""Scheduled jobs. Each is a transaction boundary (one per member or per batch), safe to re-run.

Run one by hand with `flask jobs run <name>`, or all on schedule with `flask scheduler` (its own
process; of several, only the holder of the leader lease runs jobs). Every run is recorded in job_runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask, current_app
from sqlalchemy.orm import Session

from app import nightly, wecom_events
from app.db import concurrent_writers, run_transaction, transaction, utcnow
from app.extensions import extensions, mall_time, settings
from app.integrations.carpark import CarParkError, PaymentState
from app.mall_time import MallTime
from app.metrics import JOB_SECONDS
from app.request_ids import new_request_id, request_id_scope
from app.services import (
    advisor_members,
    campaigns,
    coupons,
    idempotency,
    imports,
    member_codes,
    parking,
    personal_data,
    points,
    pos,
    push,
    rewards,
    scheduling,
    tasks,
    tiers,
)
from app.services.import_files import ImportFileInvalid

log = logging.getLogger(__name__)

_BATCH = 500


def expire_points() -> str:
    """Expire every lot whose last day has passed, member by member."""
    at = mall_time()
    expired_points = members_done = 0
    while True:
        with transaction() as session:
            due = points.members_with_due_lots(session, at=at, limit=_BATCH)
        if not due:
            break
        for member_id in due:
            expired_points += run_transaction(partial(points.expire_due_lots, member_id=member_id, at=at))
            members_done += 1
    return f"expired {expired_points} points of {members_done} members"


def birthday_points() -> str:
    """The birthday-month bonus for this month's birthdays (once per member per year)."""
    at = mall_time()
    with transaction() as session:
        candidates = rewards.birthday_members(session, at=at)
    granted = 0
    for member_id in candidates:
        granted += run_transaction(partial(_birthday_for, member_id=member_id, at=at))
    return f"birthday points for {granted} of {len(candidates)} members"


def _birthday_for(session: Session, *, member_id: int, at: MallTime) -> bool:
    return rewards.reward_birthday(session, member_id, at=at, settings=points.points_settings(session))


def review_tiers() -> str:
    at = mall_time()
    with transaction() as session:
        id_range = tiers.member_id_range(session)
    totals = {"upgraded": 0, "downgraded": 0, "unchanged": 0}
    if id_range is not None:
        for first_id in range(id_range[0], id_range[1] + 1, _BATCH):
            counts = run_transaction(
                partial(tiers.review_members, first_id=first_id, last_id=first_id + _BATCH - 1, at=at)
            )
            totals = {name: totals[name] + counts[name] for name in totals}
    return ", ".join(f"{name} {count}" for name, count in totals.items())


def expire_coupons() -> str:
    """Lapse coupons past their validity, in batches; refund points where the template says so."""
    at = mall_time()
    total = 0
    while expired := run_transaction(
        lambda session: coupons.expire_due(session, at=at, settings=points.points_settings(session))
    ):
        total += expired
    return f"expired {total} coupons"


def run_campaign(campaign_id: int, *, batch_size: int = _BATCH) -> str:
    """Work through a campaign batch by batch; safe to interrupt and run again."""
    at = mall_time()
    with transaction() as session:
        template_id = campaigns.progress(session, campaign_id).campaign.template_id
    while True:
        start, member_ids = run_transaction(
            partial(campaigns.next_batch, campaign_id=campaign_id, size=batch_size, at=at)
        )
        for member_id in member_ids:
            run_transaction(
                partial(
                    campaigns.issue_to_member,
                    campaign_id=campaign_id,
                    template_id=template_id,
                    member_id=member_id,
                    at=at,
                )
            )
        run_transaction(
            partial(
                campaigns.advance,
                campaign_id=campaign_id,
                from_index=start,
                to_index=start + len(member_ids),
                at=at,
            )
        )
        if not member_ids:
            break
    with transaction() as session:
        done = campaigns.progress(session, campaign_id)
    return f"campaign {campaign_id}: {done.issued} issued, {done.skipped} skipped of {done.total}"


def run_campaigns() -> str:
    with transaction() as session:
        pending = campaigns.runnable_campaigns(session)
    return "; ".join(run_campaign(campaign_id) for campaign_id in pending) or "no campaigns to run"


def run_imports() -> str:
    """Load the files operators uploaded in the console, and resume any import that was stopped."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with transaction() as session:
        pending = imports.resumable_jobs(session, now=utcnow())
    outcomes = []
    for job in pending:
        assert job.stored_path is not None
        try:
            done = imports.run(
                job.id,
                Path(job.stored_path),
                run_in_transaction=lambda work: run_transaction(work, app=app),
                vault=extensions().phone_vault,
                clock=mall_time,
            )
        except imports.ImportInProgress:
            outcomes.append(f"import {job.id}: running elsewhere")
            continue
        except ImportFileInvalid as error:
            outcomes.append(f"import {job.id}: failed ({error.message})")
            Path(job.stored_path).unlink(missing_ok=True)
            continue
        Path(job.stored_path).unlink(missing_ok=True)
        outcomes.append(
            f"import {job.id}: {done.rows_done} rows, {done.created} new, {done.rejected} rejected"
        )
    return "; ".join(outcomes) or "no imports to run"


def purge_personal_data() -> str:
    """Anonymise members inactive beyond RETENTION_INACTIVE_DAYS (no login, purchase or points entry),
    exactly as deleting their account does; one transaction per member. Off when the setting is 0."""
    days = settings().RETENTION_INACTIVE_DAYS
    if days <= 0:
        return "retention purge off (RETENTION_INACTIVE_DAYS=0)"
    at = mall_time()
    cutoff = personal_data.retention_cutoff(at, days)
    purged = skipped = after_id = 0
    while True:
        with transaction() as session:
            due = personal_data.inactive_member_ids(
                session, inactive_since=cutoff, after_id=after_id, limit=_BATCH
            )
        if not due:
            break
        for member_id in due:
            try:
                run_transaction(partial(personal_data.erase, member_id=member_id, at=at, reason="retention"))
                purged += 1
            except personal_data.DeletionRefused:
                skipped += 1  # an unsettled parking payment: the next run tries again
        after_id = due[-1]
    return f"anonymised {purged} members inactive for {days} days, {skipped} left for the next run"


def purge_member_codes() -> str:
    with transaction() as session:
        return f"purged {member_codes.purge_used_codes(session, mall_time().now)} used member codes"


def purge_pos_nonces() -> str:
    """Forget POS request nonces older than the signature window: their timestamps refuse them anyway."""
    before = mall_time().now - pos.NONCE_RETENTION
    with transaction() as session:
        return f"purged {pos.purge_nonces(session, before=before)} POS request nonces"


def reconcile_parking() -> str:
    """Settle parking payments whose outcome is unknown from the car park's own record of them:
    applied there → paid; not there → everything refunded. Unreachable → left for the next run."""
    at = mall_time()
    carpark = extensions().carpark
    grace = timedelta(seconds=settings().CARPARK_PENDING_GRACE_SECONDS)
    with transaction() as session:
        due = parking.payments_to_reconcile(session, at=at, pending_grace=grace, limit=_BATCH)
    paid = refunded = undecided = 0
    for payment_id, order_no in due:
        try:
            state = carpark.payment_state(order_no)
        except CarParkError:
            undecided += 1
            continue
        if state is PaymentState.APPLIED:
            run_transaction(partial(parking.mark_paid, payment_id=payment_id, at=at))
            paid += 1
        else:
            run_transaction(
                partial(
                    parking.refund,
                    payment_id=payment_id,
                    code="NOT_APPLIED",
                    message="停车场未收到本次抵扣",
                    at=at,
                )
            )
            refunded += 1
    return f"parking payments: {paid} paid, {refunded} refunded, {undecided} still unknown"


def refresh_tags() -> str:
    """The nightly refresh of statistics, lifecycle, RFM, tags and KPIs (app.nightly)."""
    report = nightly.refresh(current_app._get_current_object(), mall_time())  # type: ignore[attr-defined]
    return (
        f"refreshed as of {report.as_of} in {report.seconds:.1f} s: {report.transitions} lifecycle "
        f"transitions, {report.tags_added} tags added, {report.tags_removed} removed"
    )


def process_wecom_events() -> str:
    """The fallback for WeCom callbacks not acted on right after they arrived (app.wecom_events)."""
    return wecom_events.process_pending_events(current_app._get_current_object())  # type: ignore[attr-defined]


def generate_tasks() -> str:
    """Today's advisor tasks from the task rules (app.services.tasks)."""
    app, at = current_app._get_current_object(), mall_time()  # type: ignore[attr-defined]
    report = tasks.generate_day(lambda: transaction(app), at.today, at)
    return (
        f"generated {report.generated} tasks for {report.business_date} from {report.rules} rules "
        f"in {report.seconds:.1f} s ({report.rows('expire')} expired)"
    )


def sync_corp_tags() -> str:
    """Advisors' manual tag changes WeCom has not been told yet (app.services.advisor_members)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    wecom, group = extensions().wecom, settings().WECOM_CORP_TAG_GROUP
    with transaction(app) as session:
        pending = advisor_members.pending_corp_tag_syncs(session)

    def send(sync_id: int) -> advisor_members.CorpTagSyncStatus:
        return run_transaction(
            lambda session: advisor_members.send_corp_tag_sync(
                session, wecom, sync_id, group_name=group, at=utcnow()
            ),
            app=app,
        )

    outcomes = [send(sync_id) for sync_id in pending]
    done = sum(outcome.value == "done" for outcome in outcomes)
    failed = sum(outcome.value == "failed" for outcome in outcomes)
    pending_still = len(outcomes) - done - failed
    return f"corp tag syncs: {done} sent, {failed} refused by WeCom, {pending_still} still pending"


@dataclass(frozen=True)
class JobResult:
    """What a job did: a sentence for people, and counts for the job_runs record."""

    outcome: str
    counts: dict[str, Any]


def push_digests() -> JobResult:
    """Enqueue today's advisor digests and store summaries (once per day each), then send what is due."""
    app, at = current_app._get_current_object(), mall_time()  # type: ignore[attr-defined]
    enqueued = run_transaction(
        lambda session: push.enqueue_day(session, at.today, utcnow(), settings().PUBLIC_BASE_URL)
    )
    report = send_due_messages(app)
    counts = {**enqueued, **report.counts()}
    return JobResult(
        f"{at.today}: enqueued {enqueued['digests']} digests and {enqueued['store_summaries']} store "
        f"summaries; {_sent_sentence(report)}",
        counts,
    )


def send_outbox() -> JobResult:
    """Send (or retry) the WeCom messages that are due."""
    report = send_due_messages(current_app._get_current_object())  # type: ignore[attr-defined]
    return JobResult(_sent_sentence(report), report.counts())


def send_due_messages(app: Flask) -> push.SendReport:
    """Send the WeCom outbox's due messages from WECOM_PUSH_SENDERS threads."""
    senders = concurrent_writers(settings().WECOM_PUSH_SENDERS, app)
    return push.send_due(lambda: transaction(app), extensions().wecom, utcnow, senders=senders)


def _sent_sentence(report: push.SendReport) -> str:
    sentence = f"sent {report.sent}, {report.retrying} to retry, {report.dead} dead"
    if report.invalid_users:
        sentence += f", invalid users: {', '.join(report.invalid_users[:10])}"
    return sentence + (" (rate limited: paused)" if report.rate_limited else "")


@dataclass(frozen=True)
class Job:
    run: Callable[[], str | JobResult]
    # Cron fields, in the mall's timezone.
    schedule: dict[str, str]


def purge_idempotency_keys() -> str:
    """Forget responses kept for Idempotency-Keys past IDEMPOTENCY_KEY_TTL_HOURS."""
    with transaction() as session:
        return f"purged {idempotency.purge_expired(session, at=utcnow())} idempotency keys"


JOBS: dict[str, Job] = {
    "expire-points": Job(expire_points, {"hour": "0", "minute": "10"}),
    "birthday-points": Job(birthday_points, {"hour": "1", "minute": "0"}),
    "review-tiers": Job(review_tiers, {"day": "1", "hour": "2", "minute": "0"}),
    "expire-coupons": Job(expire_coupons, {"hour": "0", "minute": "20"}),
    # After the night's points, coupons and birthdays have settled.
    "refresh-tags": Job(refresh_tags, {"hour": "3", "minute": "0"}),
    # After the nightly tags (their lifecycle transitions and tags trigger tasks), before advisors start.
    "generate-tasks": Job(generate_tasks, {"hour": "7", "minute": "30"}),
    # When advisors start their day, after the tasks are generated.
    "push-digests": Job(push_digests, {"hour": "8", "minute": "30"}),
    "send-outbox": Job(send_outbox, {"minute": "*"}),
    "run-campaigns": Job(run_campaigns, {"minute": "*"}),
    "run-imports": Job(run_imports, {"minute": "*"}),
    "purge-personal-data": Job(purge_personal_data, {"hour": "4", "minute": "30"}),
    "purge-member-codes": Job(purge_member_codes, {"minute": "*/15"}),
    "purge-pos-nonces": Job(purge_pos_nonces, {"minute": "*/15"}),
    "purge-idempotency-keys": Job(purge_idempotency_keys, {"minute": "7"}),
    "reconcile-parking": Job(reconcile_parking, {"minute": "*/5"}),
    "wecom-events": Job(process_wecom_events, {"minute": "*"}),
    "sync-corp-tags": Job(sync_corp_tags, {"minute": "*/5"}),
}


def run_job(
    app: Flask, name: str, *, runner: str = "cli", started: Callable[[int], None] | None = None
) -> str:
    """Run one job now and record the run (start, end, outcome and counts, or the error); `started`
    hears the run's id once it is recorded."""
    with app.app_context(), request_id_scope(f"job-{name}-{new_request_id()[:12]}"):
        run_id = run_transaction(lambda session: scheduling.start_run(session, name, runner, utcnow()))
        if started is not None:
            started(run_id)
        began = time.perf_counter()
        try:
            result = JOBS[name].run()
        except Exception as error:
            JOB_SECONDS.labels(name, "error").observe(time.perf_counter() - began)
            failure = f"{type(error).__name__}: {error}"
            run_transaction(lambda session: scheduling.finish_run(session, run_id, utcnow(), error=failure))
            raise
        JOB_SECONDS.labels(name, "ok").observe(time.perf_counter() - began)
        outcome, counts = (result.outcome, result.counts) if isinstance(result, JobResult) else (result, None)
        run_transaction(
            lambda session: scheduling.finish_run(session, run_id, utcnow(), outcome=outcome, counts=counts)
        )
    log.info("job %s: %s", name, outcome)
    return outcome


# A leader renews its lease every LEASE_RENEWAL; it keeps it for LEASE_TTL without renewing.
LEASE_TTL = timedelta(seconds=60)
LEASE_RENEWAL = timedelta(seconds=15)


class Leadership:
    """This scheduler process's claim on the leader lease (app.services.scheduling), and the job runs
    it has going (job name -> run id, once recorded)."""

    def __init__(self, app: Flask, holder: str | None = None, ttl: timedelta = LEASE_TTL) -> None:
        self.app = app
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl = ttl
        self.running: dict[str, int | None] = {}
        self.changed = threading.Condition()

    @contextmanager
    def running_job(self, name: str) -> Iterator[Callable[[int], None]]:
        def started(run_id: int) -> None:
            with self.changed:
                self.running[name] = run_id

        with self.changed:
            self.running[name] = None
        try:
            yield started
        finally:
            with self.changed:
                del self.running[name]
                self.changed.notify_all()

    def hold(self) -> bool:
        """Take or renew the lease; whether this process leads now."""
        with self.app.app_context():
            return run_transaction(
                lambda session: scheduling.acquire_lease(
                    session, scheduling.LEADER_LEASE, self.holder, utcnow(), self.ttl
                )
            )

    def release(self) -> None:
        with self.app.app_context():
            run_transaction(
                lambda session: scheduling.release_lease(session, scheduling.LEADER_LEASE, self.holder)
            )


def run_if_leader(leadership: Leadership, name: str) -> str | None:
    """What the scheduler runs at a job's time: the job, if this process holds the lease; else nothing."""
    if not leadership.hold():
        log.debug("job %s: not the leader, skipped", name)
        return None
    with leadership.running_job(name) as started:
        return run_job(leadership.app, name, runner=leadership.holder, started=started)


def stop_scheduler(scheduler: BaseScheduler, leadership: Leadership, grace: timedelta) -> bool:
    """Stop gracefully (SIGTERM, a deploy): start no new run, let running jobs finish within `grace`
    (renewing the lease meanwhile, so nobody else starts them), then release the lease so that another
    scheduler takes over at once. Whether every run finished; those that did not are recorded as
    interrupted (every job resumes where it stopped at its next run, on whichever scheduler leads).
    """
    if scheduler.running:
        scheduler.shutdown(wait=False)
    deadline = time.monotonic() + grace.total_seconds()
    while True:
        with leadership.changed:
            left = deadline - time.monotonic()
            if leadership.running and left > 0:
                leadership.changed.wait(min(left, LEASE_RENEWAL.total_seconds()))
            unfinished = dict(leadership.running)
        if not unfinished or time.monotonic() >= deadline:
            break
        _renew(leadership)
    for name, run_id in unfinished.items():
        log.warning("job %s still running after %s s: interrupted", name, grace.total_seconds())
        if run_id is not None:
            with leadership.app.app_context():
                run_transaction(
                    partial(
                        scheduling.finish_run,
                        run_id=run_id,
                        now=utcnow(),
                        error=f"interrupted: the scheduler stopped ({leadership.holder})",
                    )
                )
    leadership.release()
    return not unfinished


def _renew(leadership: Leadership) -> None:
    try:
        leadership.hold()
    except Exception:  # a database hiccup must not stop the heartbeat
        log.exception("could not renew the scheduler lease")


def build_scheduler(app: Flask, leadership: Leadership | None = None) -> BlockingScheduler:
    leadership = leadership or Leadership(app)
    with app.app_context():
        timezone = extensions().mall_tz
    scheduler = BlockingScheduler(timezone=timezone)
    for name, job in JOBS.items():
        scheduler.add_job(
            run_if_leader,
            CronTrigger(timezone=timezone, **job.schedule),
            args=(leadership, name),
            id=name,
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(
        _renew,
        "interval",
        seconds=LEASE_RENEWAL.total_seconds(),
        args=(leadership,),
        id=LEADER_HEARTBEAT,
        next_run_time=utcnow(),
    )
    return scheduler


LEADER_HEARTBEAT = "leader-heartbeat"

"""The scheduler's leader lease and the record of job runs.

Several `flask scheduler` processes may run (a deploy overlapping the old one, a second host); only the
holder of the lease runs jobs. The lease is a row taken and renewed by conditional UPDATEs, which works
the same on MariaDB and SQLite; a holder that stops renewing loses it when it expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import UTCDateTime
from app.models import JobRun, SchedulerLease

LEADER_LEASE = "scheduler"
_ERROR_LENGTH = 2000
_OUTCOME_LENGTH = 1000


def acquire_lease(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take the lease `name` for `holder` until now + ttl, or renew it if `holder` has it. False while
    another holder's lease is unexpired."""
    taken = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now),
        )
        # MySQL assigns left to right: acquired_at must read the holder before it is overwritten.
        .ordered_values(
            (
                SchedulerLease.acquired_at,
                case(
                    (SchedulerLease.holder == holder, SchedulerLease.acquired_at),
                    else_=literal(now, UTCDateTime()),
                ),
            ),
            (SchedulerLease.holder, holder),
            (SchedulerLease.expires_at, now + ttl),
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if taken:
        return True
    if session.scalar(select(SchedulerLease.name).where(SchedulerLease.name == name)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(SchedulerLease(name=name, holder=holder, expires_at=now + ttl, acquired_at=now))
    except IntegrityError:
        return False  # another process inserted it first
    return True


def release_lease(session: Session, name: str, holder: str) -> None:
    """Give up the lease (on shutdown), so another scheduler takes over at once."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        .execution_options(synchronize_session=False)
    )


def lease_holder(session: Session, name: str, now: datetime) -> str | None:
    lease = session.get(SchedulerLease, name)
    return lease.holder if lease is not None and lease.expires_at >= now else None


def start_run(session: Session, job: str, runner: str, now: datetime) -> int:
    run = JobRun(job=job, runner=runner[:100], started_at=now)
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    now: datetime,
    *,
    outcome: str | None = None,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            finished_at=now,
            outcome=outcome[:_OUTCOME_LENGTH] if outcome else outcome,
            counts=counts,
            error=error[:_ERROR_LENGTH] if error else error,
        )
    )


def run_page(session: Session, job: str | None, *, offset: int, limit: int) -> tuple[list[JobRun], int]:
    """Job runs, newest first, optionally of one job; and how many there are."""
    query = select(JobRun)
    if job:
        query = query.where(JobRun.job == job)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    runs = session.scalars(
        query.order_by(JobRun.started_at.desc(), JobRun.id.desc()).offset(offset).limit(limit)
    )
    return list(runs), total

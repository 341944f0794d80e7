"""WeCom push outbox (企业微信消息发件箱) and the scheduler's own bookkeeping (leader lease, job runs).

An outbox row is one message to send; its `dedupe_key` (e.g. `digest:<staff_id>:<business_date>`) is
unique, so enqueueing the same message again (a re-run job, a second scheduler) adds nothing.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # not tried yet
    FAILED = "failed"  # tried, will be retried at next_attempt_at
    SENT = "sent"
    DEAD = "dead"  # given up: too many attempts, or no recipient WeCom knows


class OutboxKind(enum.StrEnum):
    DIGEST = "digest"  # an advisor's daily tasks
    STORE_SUMMARY = "store_summary"  # a store manager's daily summary


class WeComOutboxMessage(Base):
    __tablename__ = "wecom_outbox"
    __table_args__ = (
        Index("ix_wecom_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[OutboxKind] = mapped_column(str_enum(OutboxKind))
    business_date: Mapped[date]
    # WeCom userids, "|"-joined as message/send takes them.
    touser: Mapped[str] = mapped_column(String(1000))
    # The message/send body without agentid and touser (msgtype and its object).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Due from then; a sender's claim pushes it forward by its lease, so a crashed sender's rows come back.
    next_attempt_at: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
    msgid: Mapped[str | None] = mapped_column(String(128))
    # Recipients WeCom did not know (errcode 0 with a non-empty invaliduser, or 81013 for all of them).
    invaliduser: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerLease(Base):
    """One row per lease name: who leads and until when. Taken and renewed by conditional UPDATEs."""

    __tablename__ = "scheduler_leases"
    __table_args__ = TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started_at", "job", "started_at"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    # Which scheduler process (host:pid) or "cli".
    runner: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(1000))
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(2000))

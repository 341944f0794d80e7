"""Advisor tasks (导购任务): operators' task rules, the tasks generated from them each business day,
and the generation settings.

A task belongs to one member and either to an advisor (the member's bound advisor) or, for members
without one, to their store's pool (`advisor_id` NULL, `store_id` set). The unique key (member, task
type, business day) is what makes generating a day twice add nothing.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow
from app.models.tag import LifecycleStage


class TaskType(enum.StrEnum):
    BIRTHDAY_GREETING = "birthday_greeting"  # 生日祝福
    WIN_BACK_DORMANT = "win_back_dormant"  # 唤醒沉睡会员
    VIP_INVITATION = "vip_invitation"  # VIP 邀约
    COUPON_EXPIRING_REMINDER = "coupon_expiring_reminder"  # 优惠券到期提醒
    NEW_MEMBER_WELCOME = "new_member_welcome"  # 新会员欢迎
    POST_PURCHASE_FOLLOW_UP = "post_purchase_follow_up"  # 购后回访


class TaskTrigger(enum.StrEnum):
    TAG = "tag"  # the member holds a tag now
    SEGMENT = "segment"  # the member is in a saved segment now
    LIFECYCLE = "lifecycle"  # the member moved between lifecycle stages on the business day


class TaskStatus(enum.StrEnum):
    OPEN = "open"  # to do; overdue once its due date has passed
    DONE = "done"
    EXPIRED = "expired"  # left open too long past its due date (see TaskSettings)


class TaskOutcome(enum.StrEnum):
    CONTACTED = "contacted"  # 已联系
    NO_ANSWER = "no_answer"  # 未接通
    NOT_INTERESTED = "not_interested"  # 无意向
    BOOKED_VISIT = "booked_visit"  # 已预约到店


class TaskRule(Base):
    """Members matching a trigger get a task of `task_type` each business day the rule is active,
    unless they had a task of that type within the cool-down."""

    __tablename__ = "task_rules"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    trigger_kind: Mapped[TaskTrigger] = mapped_column(str_enum(TaskTrigger))
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    # Lifecycle trigger: a transition into `to_stage`, from `from_stage` (NULL: from any stage).
    from_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage))
    to_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage))
    task_type: Mapped[TaskType] = mapped_column(str_enum(TaskType, length=32))
    # What the advisor sends, with placeholders such as {会员昵称} (app.services.task_rules).
    message_template: Mapped[str] = mapped_column(String(500))
    # 1 is the most urgent; under the daily cap, lower numbers are kept first.
    priority: Mapped[int]
    cool_down_days: Mapped[int]
    due_in_days: Mapped[int]
    active_from: Mapped[date | None]
    active_until: Mapped[date | None]
    active: Mapped[bool] = mapped_column(default=True)
    created_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdvisorTask(Base):
    __tablename__ = "advisor_tasks"
    __table_args__ = (
        # Dedup and the cool-down lookup (same member and type since a day).
        UniqueConstraint("member_id", "task_type", "business_date"),
        Index("ix_advisor_tasks_advisor_id_status_due_date", "advisor_id", "status", "due_date"),
        Index("ix_advisor_tasks_store_id_business_date", "store_id", "business_date"),
        Index("ix_advisor_tasks_business_date_advisor_id", "business_date", "advisor_id"),
        Index("ix_advisor_tasks_status_due_date", "status", "due_date"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_date: Mapped[date]  # the day it was generated for
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # NULL: the store's pool
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("task_rules.id"))
    task_type: Mapped[TaskType] = mapped_column(str_enum(TaskType, length=32))
    priority: Mapped[int]
    # Why: the rule's trigger as it was when the task was generated (tag code, segment, transition).
    trigger_kind: Mapped[TaskTrigger] = mapped_column(str_enum(TaskTrigger))
    trigger_value: Mapped[str] = mapped_column(String(100))
    due_date: Mapped[date]
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus), default=TaskStatus.OPEN)
    outcome: Mapped[TaskOutcome | None] = mapped_column(str_enum(TaskOutcome))
    note: Mapped[str | None] = mapped_column(String(500))
    completed_at: Mapped[datetime | None]
    completed_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskCandidate(Base):
    """Scratch rows of one generation run: the day's deduplicated candidates, before the cap.
    Written in member-id batches, read once by the capped insert, then deleted."""

    __tablename__ = "advisor_task_candidates"
    __table_args__ = (Index("ix_advisor_task_candidates_business_date", "business_date"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    business_date: Mapped[date]
    member_id: Mapped[int]
    advisor_id: Mapped[int | None]
    store_id: Mapped[int | None]
    rule_id: Mapped[int]
    task_type: Mapped[TaskType] = mapped_column(str_enum(TaskType, length=32))
    priority: Mapped[int]
    trigger_kind: Mapped[TaskTrigger] = mapped_column(str_enum(TaskTrigger))
    trigger_value: Mapped[str] = mapped_column(String(100))
    due_date: Mapped[date]


class TaskSettings(Base):
    """Generation settings: one row (id 1). Missing means the defaults below."""

    __tablename__ = "task_settings"
    __table_args__ = TABLE_OPTIONS

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "daily_cap_per_advisor": 30,
        "daily_cap_per_store_pool": 30,
        "expire_after_overdue_days": 7,
    }

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    daily_cap_per_advisor: Mapped[int]
    daily_cap_per_store_pool: Mapped[int]
    # An open task this many days past its due date becomes expired at the next generation.
    expire_after_overdue_days: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))

    @classmethod
    def with_defaults(cls) -> TaskSettings:
        return cls(id=1, **cls.DEFAULTS)

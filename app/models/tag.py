"""Tags (标签), the nightly facts they are computed from, RFM segments and lifecycle stages.

`member_stats` holds one row per member, rebuilt by the nightly job from purchases: what rules and
reports read instead of scanning purchases. `member_tags` holds the tags members have now (one row per
member × tag, so "who has tag X" and "which tags has member Y" are index reads); a tag that ends moves
to `member_tag_history` with its since / until.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow


class TagKind(enum.StrEnum):
    RULE = "rule"  # members are tagged by the nightly job, from the tag's rule
    SYSTEM = "system"  # RFM segment and lifecycle stage, kept by the nightly job
    MANUAL = "manual"  # set and removed by advisors and operators only


class TagSource(enum.StrEnum):
    """Who gave a member a tag. A rule never removes a tag it did not give."""

    RULE = "rule"
    SYSTEM = "system"
    MANUAL = "manual"


class LifecycleStage(enum.StrEnum):
    NEW = "new"  # 新会员
    ACTIVE = "active"  # 活跃
    DORMANT = "dormant"  # 沉睡
    CHURNED = "churned"  # 流失


class RfmSegment(enum.StrEnum):
    """The classic eight segments: each of R, F, M above (high) or not above (low) its average score."""

    IMPORTANT_VALUE = "important_value"  # 重要价值: R high, F high, M high
    IMPORTANT_DEVELOP = "important_develop"  # 重要发展: R high, F low, M high
    IMPORTANT_KEEP = "important_keep"  # 重要保持: R low, F high, M high
    IMPORTANT_RETAIN = "important_retain"  # 重要挽留: R low, F low, M high
    GENERAL_VALUE = "general_value"  # 一般价值: R high, F high, M low
    GENERAL_DEVELOP = "general_develop"  # 一般发展: R high, F low, M low
    GENERAL_KEEP = "general_keep"  # 一般保持: R low, F high, M low
    GENERAL_RETAIN = "general_retain"  # 一般挽留: R low, F low, M low
    NO_PURCHASE = "no_purchase"  # 窗口内无消费


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[TagKind] = mapped_column(str_enum(TagKind))
    description: Mapped[str | None] = mapped_column(String(500))
    # Rule tags only: the JSON condition tree of app.services.tag_rules.
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # An inactive rule tag is no longer refreshed, and the members holding it lose it.
    active: Mapped[bool] = mapped_column(default=True)
    created_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MemberTag(Base):
    """A tag a member has now."""

    __tablename__ = "member_tags"
    __table_args__ = (Index("ix_member_tags_tag_id_member_id", "tag_id", "member_id"), TABLE_OPTIONS)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True)
    source: Mapped[TagSource] = mapped_column(str_enum(TagSource))
    since: Mapped[datetime] = mapped_column(default=utcnow)
    set_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    set_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


class MemberTagHistory(Base):
    """A tag a member had, from `since` until `until`."""

    __tablename__ = "member_tag_history"
    __table_args__ = (
        Index("ix_member_tag_history_member_id_until", "member_id", "until"),
        Index("ix_member_tag_history_tag_id_until", "tag_id", "until"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    source: Mapped[TagSource] = mapped_column(str_enum(TagSource))
    since: Mapped[datetime]
    until: Mapped[datetime]
    removed_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    removed_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


class MemberStats(Base):
    """What the nightly job knows about a member, as of its last refresh.

    A refresh rewrites only the rows whose values change, so nothing here records the day itself."""

    __tablename__ = "member_stats"
    # No secondary index: every row is rewritten nightly, and readers scan or use member_tags.
    __table_args__ = TABLE_OPTIONS

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, autoincrement=False)
    first_purchase_at: Mapped[datetime | None]
    last_purchase_at: Mapped[datetime | None]
    # Purchases not fully refunded, and their amount net of refunds, in the last N business days
    # (today included).
    purchases_30d: Mapped[int] = mapped_column(default=0)
    purchases_90d: Mapped[int] = mapped_column(default=0)
    purchases_180d: Mapped[int] = mapped_column(default=0)
    purchases_365d: Mapped[int] = mapped_column(default=0)
    spend_30d_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_90d_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_180d_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_365d_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    avg_ticket_365d_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # Store category with the most spend in 365 days (ties: the first by name).
    favourite_category: Mapped[str | None] = mapped_column(String(32))
    birthday_mmdd: Mapped[int | None]  # month * 100 + day, for "birthday within N days"
    # RFM over the configured window: frequency and monetary, then the 1–5 quintile scores.
    rfm_frequency: Mapped[int] = mapped_column(default=0)
    rfm_monetary_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    rfm_r: Mapped[int | None]
    rfm_f: Mapped[int | None]
    rfm_m: Mapped[int | None]
    rfm_segment: Mapped[RfmSegment | None] = mapped_column(str_enum(RfmSegment, length=24))
    rfm_segment_since: Mapped[date | None]  # business day the member entered the segment
    lifecycle_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage))
    lifecycle_since: Mapped[date | None]
    # The stage before the last change of stage (a transition when `lifecycle_since` is the day of
    # the refresh); a new row starts with its own stage here (no transition).
    previous_lifecycle_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage))


class StatsRefresh(Base):
    """One business day's nightly refresh: what the next night needs to refresh only what changed.

    The watermarks are the highest purchase and refund ids when the statistics step began: anything
    above them is new to the next night. `settings_key` fingerprints what every member's statistics
    depend on (segmentation settings, store categories, the mall's timezone): when it differs, the
    next night recomputes everyone."""

    __tablename__ = "stats_refreshes"
    __table_args__ = TABLE_OPTIONS

    business_date: Mapped[date] = mapped_column(primary_key=True)
    purchase_watermark: Mapped[int]
    refund_watermark: Mapped[int]
    settings_key: Mapped[str] = mapped_column(String(64))
    stats_finished_at: Mapped[datetime | None]
    tags_finished_at: Mapped[datetime | None]


class MemberStatsQueue(Base):
    """Members whose statistics tonight's incremental refresh recomputes (emptied when it finishes)."""

    __tablename__ = "member_stats_queue"
    __table_args__ = TABLE_OPTIONS

    member_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class LifecycleTransition(Base):
    """A member moved from one lifecycle stage to another on a business day (advisor tasks use these)."""

    __tablename__ = "lifecycle_transitions"
    __table_args__ = (
        Index("ix_lifecycle_transitions_business_date_to_stage", "business_date", "to_stage"),
        Index("ix_lifecycle_transitions_member_id_business_date", "member_id", "business_date"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    from_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage))
    to_stage: Mapped[LifecycleStage] = mapped_column(str_enum(LifecycleStage))
    business_date: Mapped[date]


class SegmentationSettings(Base):
    """RFM window and lifecycle thresholds: one row (id 1). Missing means the defaults below."""

    __tablename__ = "segmentation_settings"
    __table_args__ = TABLE_OPTIONS

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "rfm_window_days": 365,
        "new_member_days": 30,
        "dormant_after_days": 90,
        "churned_after_days": 180,
    }

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    rfm_window_days: Mapped[int]
    new_member_days: Mapped[int]
    dormant_after_days: Mapped[int]
    churned_after_days: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))

    @classmethod
    def with_defaults(cls) -> SegmentationSettings:
        return cls(id=1, **cls.DEFAULTS)


class Segment(Base):
    """A saved audience (人群分组): a rule over tags and member facts, counted live; the audience of
    coupon campaigns (and, later, advisor task rules)."""

    __tablename__ = "segments"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    # The JSON condition tree of app.services.tag_rules; may use the `tag` field.
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

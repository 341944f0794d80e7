"""Coupons (优惠券): templates operators design, coupons members hold, and their redemptions (核销).

A coupon copies its template's terms when issued, so editing a template never
changes coupons already in members' hands.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column, object_session

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow


class CouponKind(enum.StrEnum):
    CASH_OFF = "cash_off"  # 满减
    DISCOUNT = "discount"  # 折扣
    GIFT = "gift"  # 礼品
    PARKING = "parking"  # 停车券


class TemplateStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class CouponStatus(enum.StrEnum):
    AVAILABLE = "available"
    USED = "used"
    EXPIRED = "expired"


class CouponSource(enum.StrEnum):
    CLAIM = "claim"
    POINTS_MALL = "points_mall"
    WELCOME = "welcome"
    BIRTHDAY = "birthday"
    CAMPAIGN = "campaign"


class CouponTerms:
    """The columns that define what a coupon is worth and where; shared by templates and coupons."""

    kind: Mapped[CouponKind] = mapped_column(str_enum(CouponKind))
    name: Mapped[str] = mapped_column(String(64))
    # 满减: `face_value_fen` off an order of at least `min_spend_fen`.
    face_value_fen: Mapped[int] = mapped_column(default=0)
    min_spend_fen: Mapped[int] = mapped_column(default=0)
    # 折扣: pay `discount_percent`% (88 = 八八折), saving at most `max_discount_fen` (0 = no cap).
    discount_percent: Mapped[int] = mapped_column(default=100)
    max_discount_fen: Mapped[int] = mapped_column(default=0)
    gift_name: Mapped[str | None] = mapped_column(String(64))
    # 停车券: minutes of parking, or fen off the parking fee.
    parking_minutes: Mapped[int] = mapped_column(default=0)
    parking_value_fen: Mapped[int] = mapped_column(default=0)
    # Empty lists mean "anywhere".
    store_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    store_categories: Mapped[list[str]] = mapped_column(JSON, default=list)


class CouponTemplate(CouponTerms, Base):
    __tablename__ = "coupon_templates"
    __table_args__ = (
        CheckConstraint("remaining_stock >= 0 AND remaining_stock <= total_stock", name="stock_within_total"),
        CheckConstraint("points_price >= 0", name="points_price_not_negative"),
        CheckConstraint("discount_percent > 0 AND discount_percent <= 100", name="discount_in_range"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[TemplateStatus] = mapped_column(str_enum(TemplateStatus), default=TemplateStatus.DRAFT)
    total_stock: Mapped[int]
    # Decremented only by a conditional UPDATE (`... WHERE remaining_stock > 0`).
    remaining_stock: Mapped[int]
    per_member_limit: Mapped[int] = mapped_column(default=1)  # 0 = unlimited
    per_member_daily_limit: Mapped[int] = mapped_column(default=0)  # 0 = unlimited
    eligible_tier_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # empty = every tier
    # Validity: a fixed window, or N days from issue.
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    valid_days_after_issue: Mapped[int | None]
    claim_starts_at: Mapped[datetime | None]
    claim_ends_at: Mapped[datetime | None]
    points_price: Mapped[int] = mapped_column(default=0)  # 0 = free to claim
    refund_points_on_expiry: Mapped[bool] = mapped_column(default=False)
    # Bumped by every edit (never by stock moving), so that copies kept for claims know they are stale.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def terms(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TERM_COLUMNS}


@event.listens_for(CouponTemplate, "before_update")
def _bump_revision(_mapper: Any, _connection: Any, template: CouponTemplate) -> None:
    session = object_session(template)
    if session is not None and session.is_modified(template, include_collections=False):
        # In SQL, so that concurrent edits each get their own number.
        template.revision = CouponTemplate.revision + 1  # type: ignore[assignment]


TERM_COLUMNS = (
    "kind",
    "name",
    "face_value_fen",
    "min_spend_fen",
    "discount_percent",
    "max_discount_fen",
    "gift_name",
    "parking_minutes",
    "parking_value_fen",
    "store_ids",
    "store_categories",
)


class Coupon(CouponTerms, Base):
    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_member_id_status", "member_id", "status"),
        Index("ix_coupons_template_id_member_id_issued_on", "template_id", "member_id", "issued_on"),
        Index("ix_coupons_status_valid_until", "status", "valid_until"),
        Index("ix_coupons_issued_on", "issued_on"),  # daily KPIs
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[CouponStatus] = mapped_column(str_enum(CouponStatus), default=CouponStatus.AVAILABLE)
    source: Mapped[CouponSource] = mapped_column(str_enum(CouponSource))
    # Makes each issuance happen once: a retried claim, a re-run campaign batch.
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_campaigns.id"), index=True)
    points_paid: Mapped[int] = mapped_column(default=0)
    refund_points_on_expiry: Mapped[bool] = mapped_column(default=False)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Business day of issue (mall time), for per-day claim limits.
    issued_on: Mapped[date]
    used_at: Mapped[datetime | None]


class CampaignStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CouponCampaign(Base):
    """Issue one template to a list of members, in batches; progress is kept so a run can resume."""

    __tablename__ = "coupon_campaigns"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    # The saved segment, for now a list of member ids (later: a tag segment).
    member_ids: Mapped[list[int]] = mapped_column(JSON)
    # The segment the members were taken from when the campaign was created, if any.
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"), index=True)
    status: Mapped[CampaignStatus] = mapped_column(str_enum(CampaignStatus), default=CampaignStatus.PENDING)
    # Members before this index in `member_ids` have been processed.
    next_index: Mapped[int] = mapped_column(default=0)
    created_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CouponRedemption(Base):
    """A verification at the counter. Undone (within minutes, same store) rather than deleted."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (Index("ix_coupon_redemptions_redeemed_at", "redeemed_at"), TABLE_OPTIONS)  # daily KPIs

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    order_amount_fen: Mapped[int | None]
    deduction_fen: Mapped[int] = mapped_column(default=0)
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
    undone_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))

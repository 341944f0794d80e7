"""The points ledger (积分流水): immutable entries, expiring lots, and the rules that earn points.

Invariants (checked by `flask points verify`):
- a member's `points_balance` equals the sum of their lots' `remaining`;
- the sum of their entries' `delta` equals `points_balance - points_debt`;
- neither balance, debt nor any lot remainder is ever negative, and debt > 0 implies balance == 0.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow


class PointsEntryKind(enum.StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"
    CHECK_IN = "check_in"
    SHARE = "share"
    REFERRAL = "referral"
    WELCOME = "welcome"
    BIRTHDAY = "birthday"
    PARTNER = "partner"
    ADJUSTMENT = "adjustment"
    REDEMPTION = "redemption"
    EXPIRY = "expiry"
    MERGE = "merge"  # moved between two members that an operator merged
    OPENING = "opening"  # a balance carried over from the mall's previous system by an import


class PointsEntry(Base):
    """One change to a member's points. Never updated, never deleted."""

    __tablename__ = "points_entries"
    __table_args__ = (
        CheckConstraint("delta <> 0", name="delta_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        CheckConstraint("debt_after >= 0", name="debt_after_not_negative"),
        Index("ix_points_entries_member_id_id", "member_id", "id"),
        Index("ix_points_entries_member_id_kind_business_date", "member_id", "kind", "business_date"),
        Index("ix_points_entries_business_date_kind", "business_date", "kind"),  # daily KPIs
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[PointsEntryKind] = mapped_column(str_enum(PointsEntryKind))
    delta: Mapped[int]
    balance_after: Mapped[int]
    debt_after: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(String(200))
    # What caused it, e.g. "purchase:42"; the idempotency key makes a repeat a no-op.
    reference: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # The mall's business day (MALL_TIMEZONE), for daily caps and statements.
    business_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsLot(Base):
    """Points earned together, expiring together; spending drains the oldest lots first."""

    __tablename__ = "points_lots"
    __table_args__ = (
        CheckConstraint("earned > 0", name="earned_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= earned", name="remaining_within_earned"),
        Index("ix_points_lots_member_id_expires_on", "member_id", "expires_on"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), unique=True)
    earned: Mapped[int]
    remaining: Mapped[int]
    # Last day (mall time) on which the points can still be spent.
    expires_on: Mapped[date] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    __tablename__ = "check_ins"
    __table_args__ = (UniqueConstraint("member_id", "business_date"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    business_date: Mapped[date]
    streak: Mapped[int]
    points: Mapped[int]
    bonus_points: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpiryPolicy(enum.StrEnum):
    END_OF_NEXT_YEAR = "end_of_next_year"
    DAYS_AFTER_EARNING = "days_after_earning"


class PointsSettings(Base):
    """The mall's points rules: one row (id 1). Missing means the defaults below."""

    __tablename__ = "points_settings"
    __table_args__ = TABLE_OPTIONS

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "welcome_points": 100,
        "checkin_points": 5,
        "share_points": 10,
        "share_daily_limit": 3,
        "referrer_points": 200,
        "referee_points": 100,
        "birthday_points": 500,
        "purchase_min_amount_fen": 100,
        "purchase_daily_cap_points": 50_000,
        "expiry_policy": ExpiryPolicy.END_OF_NEXT_YEAR,
        "expiry_days": 365,
        "welcome_coupon_template_id": None,
    }

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    welcome_points: Mapped[int]
    checkin_points: Mapped[int]
    share_points: Mapped[int]
    share_daily_limit: Mapped[int]
    referrer_points: Mapped[int]
    referee_points: Mapped[int]
    birthday_points: Mapped[int]
    purchase_min_amount_fen: Mapped[int]
    # 0 means no cap.
    purchase_daily_cap_points: Mapped[int]
    expiry_policy: Mapped[ExpiryPolicy] = mapped_column(str_enum(ExpiryPolicy, length=32))
    expiry_days: Mapped[int]
    # Coupon every new member receives, if any.
    welcome_coupon_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))

    @classmethod
    def with_defaults(cls) -> PointsSettings:
        return cls(**cls.with_defaults_dict())

    @classmethod
    def with_defaults_dict(cls) -> dict[str, Any]:
        return {"id": 1, **cls.DEFAULTS}


class EarningRate(Base):
    """Purchase points by store category: `points_per_unit` for every full `spend_unit_fen` spent.

    The category "*" is the fallback for categories without a rate of their own.
    """

    __tablename__ = "earning_rates"
    __table_args__ = (
        CheckConstraint("spend_unit_fen > 0", name="unit_positive"),
        CheckConstraint("points_per_unit >= 0", name="points_not_negative"),
        TABLE_OPTIONS,
    )

    DEFAULT_CATEGORY: ClassVar[str] = "*"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(32), unique=True)
    spend_unit_fen: Mapped[int]
    points_per_unit: Mapped[int]


class PointsPromotion(Base):
    """Double-points days (and the like): a multiplier on purchase points between two dates."""

    __tablename__ = "points_promotions"
    __table_args__ = (
        CheckConstraint("multiplier_percent >= 100", name="multiplier_at_least_one"),
        CheckConstraint("ends_on >= starts_on", name="dates_ordered"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    multiplier_percent: Mapped[int]
    # None applies to every category.
    category: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=True)


class CheckInStreakBonus(Base):
    """Extra points on the Nth consecutive day of checking in."""

    __tablename__ = "check_in_streak_bonuses"
    __table_args__ = (CheckConstraint("bonus_points > 0", name="bonus_positive"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    streak_days: Mapped[int] = mapped_column(unique=True)
    bonus_points: Mapped[int]

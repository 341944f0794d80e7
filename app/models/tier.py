"""Membership tiers (会员等级) and what each one is worth."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class Tier(Base):
    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("points_multiplier_percent >= 100", name="multiplier_at_least_one"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(32))
    # Higher rank = better tier; the lowest rank is where new members start.
    rank: Mapped[int] = mapped_column(unique=True)
    # Rolling 12-month spend, in fen, that qualifies for this tier.
    min_annual_spend_fen: Mapped[int] = mapped_column(default=0)
    # 150 means 1.5x points: kept as an integer percentage, never a float.
    points_multiplier_percent: Mapped[int] = mapped_column(default=100)
    free_parking_minutes_per_day: Mapped[int] = mapped_column(default=0)
    # Issued to members of this tier in their birthday month, if set.
    birthday_coupon_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))


class TierChange(Base):
    """History of a member's tier: upgrades on purchase, changes at the periodic review, manual ones."""

    __tablename__ = "tier_changes"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    from_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    to_tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"))
    reason: Mapped[str] = mapped_column(String(16))  # purchase | review | manual
    rolling_spend_fen: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

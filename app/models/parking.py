"""Parking (停车): members' licence plates, the mall's parking rules, quotes and payments.

Invariants:
- a plate is bound to at most one member (unique key), a member has at most 3 plates;
- a quote is paid at most once (unique `quote_id` on payments);
- a payment's points and coupons are given back exactly when it ends `refunded`; free minutes
  count against the member's day unless the payment is `refunded`.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow

# "粤B12345" is 7 characters, new-energy "粤BD12345" 8; room for the longest.
PLATE_MAX_LENGTH = 8


class MemberPlate(Base):
    """A licence plate (车牌) bound to a member."""

    __tablename__ = "member_plates"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    # Normalised (upper case, no spaces); unique so that two members can never hold the same plate.
    plate: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkingRules(Base):
    """How the mall pays parking down: one row (id 1); missing means the defaults below.

    `spending_free_minutes` is a list of {"min_spend_fen", "free_minutes"}: the member's net spend
    today reaching a threshold earns that much free parking today (the best threshold reached).
    """

    __tablename__ = "parking_rules"
    __table_args__ = (
        CheckConstraint("points_per_yuan > 0", name="points_rate_positive"),
        CheckConstraint("points_max_fen_per_visit >= 0", name="points_cap_not_negative"),
        CheckConstraint("quote_ttl_seconds > 0", name="quote_ttl_positive"),
        TABLE_OPTIONS,
    )

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "quote_ttl_seconds": 300,
        "points_per_yuan": 100,
        "points_max_fen_per_visit": 2_000,
        "spending_free_minutes": (
            {"min_spend_fen": 20_000, "free_minutes": 120},
            {"min_spend_fen": 50_000, "free_minutes": 240},
        ),
    }

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    quote_ttl_seconds: Mapped[int]
    # Points worth ¥1 (100 = "100 积分抵 1 元").
    points_per_yuan: Mapped[int]
    # At most this much of one visit's fee may be paid with points (0 = points not accepted).
    points_max_fen_per_visit: Mapped[int]
    spending_free_minutes: Mapped[list[dict[str, int]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))

    @classmethod
    def with_defaults(cls) -> ParkingRules:
        return cls(**cls.with_defaults_dict())

    @classmethod
    def with_defaults_dict(cls) -> dict[str, Any]:
        defaults = {**cls.DEFAULTS}
        defaults["spending_free_minutes"] = [dict(row) for row in defaults["spending_free_minutes"]]
        return {"id": 1, **defaults}


class ParkingQuote(Base):
    """What paying a car's parking would cost now, and the deductions the member would get.

    Stored so that a payment pays exactly what the member saw, or is told to ask again.
    """

    __tablename__ = "parking_quotes"
    __table_args__ = (
        Index("ix_parking_quotes_member_id_created_at", "member_id", "created_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    plate: Mapped[str] = mapped_column(String(16))
    entry_time: Mapped[datetime]
    parking_minutes: Mapped[int]
    fee_fen: Mapped[int]
    tier_minutes: Mapped[int] = mapped_column(default=0)
    spending_minutes: Mapped[int] = mapped_column(default=0)
    # The coupons and points the quote suggests; a payment may choose others.
    coupon_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    points: Mapped[int] = mapped_column(default=0)
    amount_due_fen: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ParkingPaymentStatus(enum.StrEnum):
    PENDING = "pending"  # points and coupons taken, the car park not yet told
    PAID = "paid"  # the car park accepted the deduction
    UNKNOWN = "unknown"  # the car park timed out or failed: reconciliation will settle it
    REFUNDED = "refunded"  # the car park refused (or never got it): everything given back


class ParkingPayment(Base):
    """One payment of a quote (积分/券/免费时长抵停车费) and what the car park made of it."""

    __tablename__ = "parking_payments"
    __table_args__ = (
        CheckConstraint("amount_due_fen >= 0", name="amount_due_not_negative"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        Index("ix_parking_payments_status_created_at", "status", "created_at"),
        Index("ix_parking_payments_plate_created_at", "plate", "created_at"),
        Index("ix_parking_payments_member_id_business_date", "member_id", "business_date"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Our order number at the car park; the car park treats a repeat of it as the same order.
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    # "<member id>:<Idempotency-Key>": a retried request finds its payment.
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("parking_quotes.id"), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    plate: Mapped[str] = mapped_column(String(16))
    entry_time: Mapped[datetime]
    parking_minutes: Mapped[int]
    fee_fen: Mapped[int]
    tier_minutes: Mapped[int] = mapped_column(default=0)
    spending_minutes: Mapped[int] = mapped_column(default=0)
    coupon_minutes: Mapped[int] = mapped_column(default=0)
    # What all free minutes together took off the fee, as the car park prices them.
    minutes_value_fen: Mapped[int] = mapped_column(default=0)
    coupon_value_fen: Mapped[int] = mapped_column(default=0)
    points: Mapped[int] = mapped_column(default=0)
    points_value_fen: Mapped[int] = mapped_column(default=0)
    amount_due_fen: Mapped[int]
    status: Mapped[ParkingPaymentStatus] = mapped_column(
        str_enum(ParkingPaymentStatus), default=ParkingPaymentStatus.PENDING
    )
    # The car park's own error code and message when it refused or failed.
    failure_code: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(String(200))
    # The mall's business day of the payment: free minutes are counted per day.
    business_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]

    @property
    def free_minutes(self) -> int:
        return self.tier_minutes + self.spending_minutes + self.coupon_minutes

    @property
    def deduction_fen(self) -> int:
        return self.minutes_value_fen + self.coupon_value_fen + self.points_value_fen


class ParkingPaymentCoupon(Base):
    """A parking coupon (停车券) a payment used; it is used while the payment is not refunded."""

    __tablename__ = "parking_payment_coupons"
    __table_args__ = (UniqueConstraint("payment_id", "coupon_id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("parking_payments.id"))
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    minutes: Mapped[int] = mapped_column(default=0)
    value_fen: Mapped[int] = mapped_column(default=0)

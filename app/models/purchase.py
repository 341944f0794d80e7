"""Purchases made in the mall's stores (消费记录) and their refunds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("store_id", "receipt_no"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refund_within_amount"),
        CheckConstraint("points_clawed_back <= points_earned", name="clawback_within_earned"),
        Index("ix_purchases_member_id_purchased_at", "member_id", "purchased_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for a shopper who is not a member: still counts towards the mall's sales.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    receipt_no: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int]
    refunded_fen: Mapped[int] = mapped_column(default=0)
    points_earned: Mapped[int] = mapped_column(default=0)
    points_clawed_back: Mapped[int] = mapped_column(default=0)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    purchased_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PurchaseRefund(Base):
    __tablename__ = "purchase_refunds"
    __table_args__ = (
        UniqueConstraint("purchase_id", "refund_no"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    refund_no: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int]
    points_clawed_back: Mapped[int]
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

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
        # A member's purchases by time, with what the nightly statistics read: they are computed
        # from this index alone, in member order, without touching the rows.
        Index(
            "ix_purchases_member_cover", "member_id", "purchased_at", "amount_fen", "refunded_fen", "store_id"
        ),
        # Purchases by time, likewise carrying what the daily KPIs read.
        Index(
            "ix_purchases_time_cover", "purchased_at", "member_id", "store_id", "amount_fen", "refunded_fen"
        ),
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
    # Set instead of staff_id when a POS terminal reported the sale.
    pos_terminal_id: Mapped[int | None] = mapped_column(ForeignKey("pos_terminals.id"))
    purchased_at: Mapped[datetime]
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
    pos_terminal_id: Mapped[int | None] = mapped_column(ForeignKey("pos_terminals.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

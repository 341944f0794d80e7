"""Daily KPI snapshots (指标), mall-wide and per store: counts only; rates are derived when read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow

MALL_WIDE = 0  # store_id of the mall-wide row


class KpiDaily(Base):
    """What business day `business_date` looked like, for the whole mall (store_id 0) or one store.

    Per store, members are those who signed up through one of the store's QR codes, and buyers are
    members who bought at the store. Points and distributions are mall-wide only (0 / null per store).
    """

    __tablename__ = "kpi_daily"
    __table_args__ = (UniqueConstraint("business_date", "store_id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    business_date: Mapped[date]
    store_id: Mapped[int]  # 0 = the whole mall; not a foreign key for that reason
    members_total: Mapped[int] = mapped_column(default=0)  # joined by the end of the day
    new_members: Mapped[int] = mapped_column(default=0)  # joined that day
    active_30d: Mapped[int] = mapped_column(default=0)  # bought in the 30 days ending that day
    active_90d: Mapped[int] = mapped_column(default=0)
    previous_active_30d: Mapped[int] = mapped_column(default=0)  # bought in the 30 days before those
    churned_30d: Mapped[int] = mapped_column(default=0)  # ... of whom did not buy in the last 30 days
    repeat_buyers_90d: Mapped[int] = mapped_column(default=0)  # ≥ 2 purchases in 90 days (of active_90d)
    member_purchases: Mapped[int] = mapped_column(default=0)  # that day
    member_sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    non_member_purchases: Mapped[int] = mapped_column(default=0)
    non_member_sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    points_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    points_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_issued: Mapped[int] = mapped_column(default=0)
    coupons_used: Mapped[int] = mapped_column(default=0)
    # {tier code: members} and {RFM segment: members}, taken when the day was computed as today.
    tier_distribution: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    segment_distribution: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

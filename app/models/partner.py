"""Partners that credit points for activity outside the mall (e.g. a running track's calories)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class Partner(Base):
    __tablename__ = "partners"
    __table_args__ = (
        CheckConstraint("activity_unit > 0", name="unit_positive"),
        CheckConstraint("points_per_unit >= 0", name="points_not_negative"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    # HMAC-SHA256 key for request signatures, shared with the partner.
    secret: Mapped[str] = mapped_column(String(128))
    # `points_per_unit` points for every full `activity_unit` of activity (e.g. 1 point per 100 kcal).
    activity_unit: Mapped[int]
    points_per_unit: Mapped[int]
    daily_cap_points: Mapped[int]
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartnerActivityCredit(Base):
    """One partner event, credited at most once (its event id is the idempotency key)."""

    __tablename__ = "partner_activity_credits"
    __table_args__ = (UniqueConstraint("partner_id", "event_id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    activity: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int]
    points: Mapped[int]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

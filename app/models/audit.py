"""The audit log (操作日志): who changed what in the console and admin API, and who looked at a
member's unmasked personal data. Rows are only ever added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_operator_id_at", "operator_id", "at"),
        Index("ix_audit_events_target_type_target_id", "target_type", "target_id"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # A dotted verb, e.g. "member.view_phone", "points.adjust", "coupon_template.update".
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))  # "member", "coupon_template", ...
    target_id: Mapped[str | None] = mapped_column(String(64))
    # What changed (field → [before, after]) or why; never a phone number or any other secret.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_ip: Mapped[str | None] = mapped_column(String(45))

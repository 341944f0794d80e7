"""Callbacks received from WeCom, recorded before they are acted on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class WeComEvent(Base):
    """One callback, stored when it arrives and processed after WeCom has its answer.

    `event_key` is the same for WeCom's retries of one event, so each is acted on once.
    """

    __tablename__ = "wecom_events"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    # e.g. "change_external_contact:add_external_contact", "template_card_event"
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500))

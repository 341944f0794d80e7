"""Responses kept for requests sent with an Idempotency-Key, so that a client's retry is answered
with the first response instead of running the action again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.mysql import MEDIUMBLOB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    # The unique key decides which of two concurrent first requests runs: the one whose INSERT wins.
    __table_args__ = (UniqueConstraint("actor", "request_key"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Who sent it ("mp:<wechat account id>", "staff:<id>", "pos:<terminal id>"): keys are per caller.
    actor: Mapped[str] = mapped_column(String(32))
    request_key: Mapped[str] = mapped_column(String(128))
    # SHA-256 of the method, path and body: the same key on another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    # NULL while the first request is still running.
    response_status: Mapped[int | None]
    response_headers: Mapped[str | None] = mapped_column(Text)  # JSON list of [name, value]
    response_body: Mapped[bytes | None] = mapped_column(
        LargeBinary().with_variant(MEDIUMBLOB(), "mysql", "mariadb")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

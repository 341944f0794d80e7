"""Store POS terminals that report sales in real time, and the nonces their signed requests used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, utcnow


class PosTerminal(Base):
    __tablename__ = "pos_terminals"
    __table_args__ = (TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # Public half of the credentials, sent with every request. The secret is not stored: it is
    # derived from POS_KEY_SECRET and this id, so rotating the key means issuing a new id.
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class PosRequestNonce(Base):
    """A nonce a terminal has used; the unique key refuses a replayed request."""

    __tablename__ = "pos_request_nonces"
    __table_args__ = (UniqueConstraint("terminal_id", "nonce"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("pos_terminals.id"))
    nonce: Mapped[str] = mapped_column(String(64))
    # Kept beyond the signature window only until the purge job removes it.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

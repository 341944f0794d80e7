"""QR scenes (场景值): what brought a shopper to sign up."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow
from app.models.mall import Store
from app.models.staff import Staff

# WeChat's hard limit for the `scene` of getwxacodeunlimit.
SCENE_MAX_LENGTH = 32


class SceneKind(enum.StrEnum):
    STORE = "store"
    ADVISOR = "advisor"
    EVENT = "event"
    POSTER = "poster"
    REFERRAL = "referral"


class QrScene(Base):
    __tablename__ = "qr_scenes"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SceneKind] = mapped_column(str_enum(SceneKind))
    name: Mapped[str] = mapped_column(String(100))
    scene: Mapped[str] = mapped_column(String(SCENE_MAX_LENGTH), unique=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    referrer_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", use_alter=True), index=True
    )
    created_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    store: Mapped[Store | None] = relationship(lazy="raise")
    advisor: Mapped[Staff | None] = relationship(lazy="raise")

"""People who run the mall: WeCom staff (counter staff, advisors, managers) and console operators."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow
from app.models.mall import Store


class StaffRole(enum.StrEnum):
    STORE_STAFF = "store_staff"
    ADVISOR = "advisor"
    MANAGER = "manager"


class OperatorRole(enum.StrEnum):
    ADMIN = "admin"
    MARKETING = "marketing"
    STORE_MANAGER = "store_manager"  # their store's data only
    AUDITOR = "auditor"  # read-only


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    wecom_userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Set when WeCom reported the userid invalid on a push (left the corp, typo); cleared by a delivery.
    wecom_unreachable_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    store: Mapped[Store | None] = relationship(lazy="raise")


class Operator(Base):
    __tablename__ = "operators"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[OperatorRole] = mapped_column(str_enum(OperatorRole), default=OperatorRole.ADMIN)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))  # a store manager's store
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

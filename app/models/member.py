"""Members (会员), their WeChat identities, consents and single-use member codes."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import VARBINARY, CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow
from app.models.scene import QrScene
from app.models.staff import Staff
from app.models.tier import Tier

NICKNAME_COLLATION = "utf8mb4_unicode_520_ci"


class MemberSource(enum.StrEnum):
    WECHAT = "wechat"
    POS = "pos"
    IMPORT = "import"


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("points_balance >= 0", name="points_balance_not_negative"),
        CheckConstraint("points_debt >= 0", name="points_debt_not_negative"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The phone is the identity key: ciphertext for reading, blind index for lookup and uniqueness.
    phone_ciphertext: Mapped[bytes] = mapped_column(
        LargeBinary().with_variant(VARBINARY(64), "mysql", "mariadb")
    )
    phone_index: Mapped[str] = mapped_column(String(64), unique=True)
    phone_masked: Mapped[str] = mapped_column(String(16))
    # Indexed for the console's prefix search (`LIKE 'abc%'`).
    # A collation whose index range scans find emoji after a prefix (see migration 0024).
    nickname: Mapped[str | None] = mapped_column(
        String(64).with_variant(mysql.VARCHAR(64, charset="utf8mb4", collation=NICKNAME_COLLATION), "mysql"),
        index=True,
    )
    birthday: Mapped[date | None]
    # What advisors learned: preferences, sizes, best time to call (shown on their member page).
    advisor_note: Mapped[str | None] = mapped_column(String(500))
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"), index=True)
    # Spendable points; changed only by app.services.points, always with its ledger entry.
    points_balance: Mapped[int] = mapped_column(default=0)
    # Points clawed back by refunds after they were spent: future earning repays it first.
    points_debt: Mapped[int] = mapped_column(default=0)
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    signup_scene_id: Mapped[int | None] = mapped_column(ForeignKey("qr_scenes.id"), index=True)
    referred_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    source: Mapped[MemberSource] = mapped_column(str_enum(MemberSource))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Set when an operator folded this member into another (app.services.member_merge): the row stays
    # as the record of what was merged, but nothing may sign in as, earn for or find it any more.
    merged_into_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    merged_at: Mapped[datetime | None]
    # Set when the member deleted their account or the retention purge anonymised it
    # (app.services.personal_data): the row stays, without personal data, so that points and sales
    # remain as anonymous figures; nothing may sign in as, earn for or find it any more.
    deleted_at: Mapped[datetime | None]

    tier: Mapped[Tier] = relationship(lazy="raise")
    advisor: Mapped[Staff | None] = relationship(lazy="raise")
    signup_scene: Mapped[QrScene | None] = relationship(lazy="raise", foreign_keys=[signup_scene_id])


class WeChatAccount(Base):
    """One openid of our mini-program; linked to a member once they sign up."""

    __tablename__ = "wechat_accounts"
    __table_args__ = (UniqueConstraint("appid", "openid"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    appid: Mapped[str] = mapped_column(String(32))
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the member behind it was deleted: the openid is erased and tokens issued for this
    # account are refused (401); logging in again makes a new account.
    revoked_at: Mapped[datetime | None]


class MemberConsent(Base):
    """Each agreement to the privacy terms, kept as evidence (PIPL)."""

    __tablename__ = "member_consents"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    wechat_account_id: Mapped[int | None] = mapped_column(ForeignKey("wechat_accounts.id"))
    policy_version: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    client_ip: Mapped[str | None] = mapped_column(String(45))


class UsedMemberCode(Base):
    """A member code that has been scanned: the unique digest makes every code single-use."""

    __tablename__ = "used_member_codes"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    used_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    used_at: Mapped[datetime] = mapped_column(default=utcnow)
    # After this the code is expired anyway, so the row may be purged.
    expires_at: Mapped[datetime] = mapped_column(index=True)

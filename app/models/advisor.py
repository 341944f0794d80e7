"""Advisors (导购) and their members: 联系我 contact ways, WeCom external contacts, assignment history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow

# WeCom's limit for a contact way's `state`.
CONTACT_WAY_STATE_MAX_LENGTH = 30


class AdvisorContactWay(Base):
    """An advisor's 联系我 QR code (`externalcontact/add_contact_way`), one per advisor."""

    __tablename__ = "advisor_contact_ways"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), unique=True)
    config_id: Mapped[str] = mapped_column(String(64), unique=True)
    qr_code: Mapped[str | None] = mapped_column(String(255))
    # Comes back on the add_external_contact callback: which contact way a shopper scanned.
    state: Mapped[str] = mapped_column(String(CONTACT_WAY_STATE_MAX_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalContact(Base):
    """A shopper in an advisor's WeCom contacts; matched to a member by unionid when we know them."""

    __tablename__ = "wecom_external_contacts"
    __table_args__ = (UniqueConstraint("external_userid", "staff_id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str | None] = mapped_column(String(CONTACT_WAY_STATE_MAX_LENGTH))
    # None until a member with this unionid is known (then matched at their sign-up).
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssignmentReason(enum.StrEnum):
    SIGNUP_SCENE = "signup_scene"
    CONTACT_WAY = "contact_way"
    POOL_CLAIM = "pool_claim"
    REASSIGNMENT = "reassignment"


class AssignmentEnd(enum.StrEnum):
    REASSIGNED = "reassigned"
    RETURNED_TO_POOL = "returned_to_pool"
    MEMBER_DELETED = "member_deleted"  # the member deleted their account


class AdvisorAssignment(Base):
    """A member's time with one advisor: `members.advisor_id` is the current one, these the history."""

    __tablename__ = "advisor_assignments"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    reason: Mapped[AssignmentReason] = mapped_column(str_enum(AssignmentReason))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[AssignmentEnd | None] = mapped_column(str_enum(AssignmentEnd))
    assigned_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    ended_by_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


class CorpTagSyncAction(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"


class CorpTagSyncStatus(enum.StrEnum):
    PENDING = "pending"  # not yet told to WeCom, or the last try failed and will be retried
    DONE = "done"
    FAILED = "failed"  # WeCom refused it for good (e.g. no longer an external contact)


class CorpTagSync(Base):
    """A manual tag change to mirror on an advisor's WeCom external contact (`externalcontact/mark_tag`).

    Written in the same transaction as the tag change, then sent; a failed send stays pending (with
    its error) for the retry job, so no change is lost and every failure is visible."""

    __tablename__ = "wecom_corp_tag_syncs"
    __table_args__ = (Index("ix_wecom_corp_tag_syncs_status_id", "status", "id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    external_userid: Mapped[str] = mapped_column(String(64))
    action: Mapped[CorpTagSyncAction] = mapped_column(str_enum(CorpTagSyncAction))
    status: Mapped[CorpTagSyncStatus] = mapped_column(
        str_enum(CorpTagSyncStatus), default=CorpTagSyncStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    synced_at: Mapped[datetime | None]

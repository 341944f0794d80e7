"""What advisors see and correct of their members on the WeCom pages, and the mirroring of their
manual tags to WeCom customer (corp) tags.

An advisor may open a member they are bound to, or one waiting in their store's pool (no advisor,
signed up through a scene of the advisor's store); a manager may open any member of their store.
A manual tag changed on a member who is also the advisor's WeCom external contact is queued in
`wecom_corp_tag_syncs` in the same transaction, then sent (`externalcontact/mark_tag`) after commit;
what fails stays pending with its error and `send_pending_corp_tag_syncs` retries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Forbidden, ValidationFailed
from app.integrations.wechat_client import WeChatUnavailable
from app.integrations.wecom_client import WeComClient
from app.mall_time import MallTime
from app.models import (
    CorpTagSync,
    CorpTagSyncAction,
    CorpTagSyncStatus,
    ExternalContact,
    Member,
    MemberTag,
    Purchase,
    QrScene,
    Staff,
    StaffRole,
    Tag,
    TagKind,
)
from app.models.task import AdvisorTask
from app.services import authentication, members, tags

ADVISOR_PAGE_ROLES = (StaffRole.ADVISOR, StaffRole.MANAGER)
RECENT_PURCHASES = 10
PREVIOUS_TASKS = 20
# mark_tag: "not an external contact (any more)", "no such external userid": retrying cannot help.
_PERMANENT_ERRCODES = frozenset({84061, 40096, 60111})


class NotAdvisor(Forbidden):
    code, message = "ADVISOR_ONLY", "导购工作台仅限导购和店长使用"


class MemberNotYours(Forbidden):
    code, message = "MEMBER_NOT_YOURS", "只能查看自己的会员或本店待认领的会员"


def advisor_from_wecom_code(session: Session, wecom: WeComClient, code: str) -> Staff:
    """The active advisor or manager behind a WeCom OAuth code; others are refused."""
    staff = authentication.staff_from_wecom_code(session, wecom, code)
    if staff.role not in ADVISOR_PAGE_ROLES:
        raise NotAdvisor()
    return staff


def store_of_member(session: Session, member: Member) -> int | None:
    """The store of the member's sign-up scene (as pools and task generation define it)."""
    if member.signup_scene_id is None:
        return None
    return session.scalar(select(QrScene.store_id).where(QrScene.id == member.signup_scene_id))


def may_open_member(session: Session, staff: Staff, member: Member) -> bool:
    if not staff.is_active or staff.role not in ADVISOR_PAGE_ROLES:
        return False
    if member.advisor_id == staff.id:
        return True
    if staff.store_id is None:
        return False
    in_my_store = store_of_member(session, member) == staff.store_id
    if staff.role is StaffRole.MANAGER:
        return in_my_store
    return member.advisor_id is None and in_my_store


def member_for_staff(session: Session, staff: Staff, member_id: int) -> Member:
    """The member with tier loaded, if `staff` may open them; else MemberNotYours (403)."""
    member = members.member_profile(session, member_id)
    if not may_open_member(session, staff, member):
        raise MemberNotYours()
    return member


@dataclass(frozen=True)
class MemberPage:
    member: Member
    recent_purchases: list[Purchase]
    tags: list[tuple[int, str, TagKind]]  # (tag id, name, kind) the member holds
    manual_tags: list[Tag]  # what the advisor may set
    tasks: list[AdvisorTask]  # newest first
    is_my_contact: bool  # a WeCom external contact of this advisor: tags are mirrored there


def member_page(session: Session, staff: Staff, member_id: int) -> MemberPage:
    member = member_for_staff(session, staff, member_id)
    purchases = session.scalars(
        select(Purchase)
        .where(Purchase.member_id == member_id)
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
        .limit(RECENT_PURCHASES)
    ).all()
    held = [(row.id, row.name, row.kind) for row in tags.tags_of_member(session, member_id)]
    manual = session.scalars(
        select(Tag).where(Tag.kind == TagKind.MANUAL, Tag.active.is_(True)).order_by(Tag.id)
    ).all()
    previous = session.scalars(
        select(AdvisorTask)
        .where(AdvisorTask.member_id == member_id)
        .order_by(AdvisorTask.business_date.desc(), AdvisorTask.id.desc())
        .limit(PREVIOUS_TASKS)
    ).all()
    return MemberPage(
        member,
        list(purchases),
        held,
        list(manual),
        list(previous),
        _contact_of(session, staff, member_id) is not None,
    )


def correct_member_info(
    session: Session, staff: Staff, member_id: int, *, birthday: date | None, advisor_note: str | None
) -> Member:
    """The advisor corrects the birthday and their notes (preferences); empty values clear them."""
    member = member_for_staff(session, staff, member_id)
    if birthday is not None and birthday.year < 1900:
        raise ValidationFailed("生日不正确")
    member.birthday = birthday
    member.advisor_note = (advisor_note or "").strip() or None
    session.flush()
    return member


def set_member_tag(
    session: Session, staff: Staff, member_id: int, tag_id: int, *, at: MallTime
) -> CorpTagSync | None:
    """Give the member a manual tag (idempotent); queues its WeCom mirror when it is new to them."""
    member_for_staff(session, staff, member_id)
    had_it = session.get(MemberTag, (member_id, tag_id)) is not None
    tags.set_manual_tag(session, member_id, tag_id, at=at, staff_id=staff.id)
    return None if had_it else _queue_sync(session, staff, member_id, tag_id, CorpTagSyncAction.ADD)


def remove_member_tag(
    session: Session, staff: Staff, member_id: int, tag_id: int, *, at: MallTime
) -> CorpTagSync | None:
    """Take a manual tag off the member (idempotent); queues its WeCom mirror when it was there."""
    member_for_staff(session, staff, member_id)
    if not tags.remove_manual_tag(session, member_id, tag_id, at=at, staff_id=staff.id):
        return None
    return _queue_sync(session, staff, member_id, tag_id, CorpTagSyncAction.REMOVE)


def _contact_of(session: Session, staff: Staff, member_id: int) -> ExternalContact | None:
    return session.scalars(
        select(ExternalContact)
        .where(
            ExternalContact.member_id == member_id,
            ExternalContact.staff_id == staff.id,
            ExternalContact.removed_at.is_(None),
        )
        .limit(1)
    ).first()


def _queue_sync(
    session: Session, staff: Staff, member_id: int, tag_id: int, action: CorpTagSyncAction
) -> CorpTagSync | None:
    contact = _contact_of(session, staff, member_id)
    if contact is None:
        return None
    sync = CorpTagSync(
        member_id=member_id,
        tag_id=tag_id,
        staff_id=staff.id,
        external_userid=contact.external_userid,
        action=action,
        status=CorpTagSyncStatus.PENDING,
        attempts=0,
    )
    session.add(sync)
    session.flush()
    return sync


def pending_corp_tag_syncs(session: Session, *, limit: int = 200) -> list[int]:
    return list(
        session.scalars(
            select(CorpTagSync.id)
            .where(CorpTagSync.status == CorpTagSyncStatus.PENDING)
            .order_by(CorpTagSync.id)
            .limit(limit)
        )
    )


def send_corp_tag_sync(
    session: Session, wecom: WeComClient, sync_id: int, *, group_name: str, at: datetime
) -> CorpTagSyncStatus:
    """Tell WeCom one queued tag change (locked, so two senders do not both send it). A failure is
    recorded on the row: pending to retry, or failed when WeCom refuses it for good."""
    sync = session.scalars(
        select(CorpTagSync).where(CorpTagSync.id == sync_id).with_for_update()
    ).one_or_none()
    if sync is None or sync.status is not CorpTagSyncStatus.PENDING:
        return sync.status if sync else CorpTagSyncStatus.DONE
    tag = session.get_one(Tag, sync.tag_id)
    userid = session.scalar(select(Staff.wecom_userid).where(Staff.id == sync.staff_id))
    sync.attempts += 1
    try:
        corp_tag = wecom.corp_tag_id(group_name, tag.name)
        add, remove = ([corp_tag], []) if sync.action is CorpTagSyncAction.ADD else ([], [corp_tag])
        wecom.mark_tag(str(userid), sync.external_userid, add=add, remove=remove)
    except WeChatUnavailable as error:
        errcode = (error.details or {}).get("errcode")
        sync.last_error = f"{errcode}: {error.message}"[:500]
        if errcode in _PERMANENT_ERRCODES:
            sync.status = CorpTagSyncStatus.FAILED
    else:
        sync.status, sync.synced_at, sync.last_error = CorpTagSyncStatus.DONE, at, None
    session.flush()
    return sync.status


def syncs_of_member(session: Session, member_id: int) -> Sequence[CorpTagSync]:
    return session.scalars(
        select(CorpTagSync).where(CorpTagSync.member_id == member_id).order_by(CorpTagSync.id)
    ).all()

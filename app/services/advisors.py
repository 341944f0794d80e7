"""Which advisor (导购) looks after which member: 联系我 contacts, the store pool, reassignment.

`members.advisor_id` is the member's current advisor; it changes only by a conditional UPDATE
(so two advisors claiming one member cannot both win) and every change is kept in
`advisor_assignments`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict, utcnow
from app.errors import DomainError, Forbidden, NotFound, ValidationFailed
from app.integrations.wecom_client import ContactWay, ExternalContactDetails, WeComClient
from app.models import (
    AdvisorAssignment,
    AdvisorContactWay,
    AssignmentEnd,
    AssignmentReason,
    ExternalContact,
    Member,
    QrScene,
    Staff,
    StaffRole,
    Store,
    WeChatAccount,
)
from app.services import tasks

CONTACT_WAY_STATE_PREFIX = "adv:"


class MemberAlreadyAssigned(DomainError):
    code, status, message = "MEMBER_ALREADY_ASSIGNED", 409, "该会员已有专属顾问"


class NotAnAdvisor(DomainError):
    code, status, message = "NOT_AN_ADVISOR", 422, "该员工不是在职导购"


class UnknownStaff(Exception):
    """A callback names a WeCom user who is not (or no longer) one of our staff."""


# Contact ways


def contact_way_state(staff_id: int) -> str:
    """The `state` of an advisor's contact way; it comes back on each add_external_contact."""
    return f"{CONTACT_WAY_STATE_PREFIX}{staff_id}"


def active_advisor(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound("员工不存在")
    if staff.role is not StaffRole.ADVISOR or not staff.is_active:
        raise NotAnAdvisor()
    return staff


def contact_way_of(session: Session, staff_id: int) -> AdvisorContactWay | None:
    return session.scalars(
        select(AdvisorContactWay).where(AdvisorContactWay.staff_id == staff_id)
    ).one_or_none()


def ensure_contact_way(session: Session, wecom: WeComClient, staff_id: int) -> tuple[AdvisorContactWay, bool]:
    """The advisor's 联系我 QR code, created at WeCom the first time; True if created now."""
    staff = active_advisor(session, staff_id)
    existing = contact_way_of(session, staff_id)
    if existing is not None:
        return existing, False
    created = wecom.add_contact_way(staff.wecom_userid, contact_way_state(staff_id))
    return save_contact_way(session, staff_id, created)


def save_contact_way(session: Session, staff_id: int, created: ContactWay) -> tuple[AdvisorContactWay, bool]:
    """Keep the contact way WeCom created for the advisor; if a concurrent request saved one
    first, that one stays (ours is left unused at WeCom) and is returned with False."""
    row = AdvisorContactWay(
        staff_id=staff_id,
        config_id=created.config_id,
        qr_code=created.qr_code,
        state=contact_way_state(staff_id),
        # Whole seconds, as MariaDB stores it: the answer now matches every later read.
        created_at=utcnow().replace(microsecond=0),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = contact_way_of(session, staff_id)
        if existing is None:
            raise
        return existing, False
    return row, True


def list_contact_ways(session: Session) -> list[AdvisorContactWay]:
    return list(session.scalars(select(AdvisorContactWay).order_by(AdvisorContactWay.staff_id)))


def advisors_without_contact_way(session: Session) -> list[Staff]:
    return list(
        session.scalars(
            select(Staff)
            .where(
                Staff.role == StaffRole.ADVISOR,
                Staff.is_active.is_(True),
                ~exists().where(AdvisorContactWay.staff_id == Staff.id),
            )
            .order_by(Staff.id)
        )
    )


# External contacts


def staff_by_userid(session: Session, userid: str) -> Staff:
    staff = session.scalars(select(Staff).where(Staff.wecom_userid == userid)).one_or_none()
    if staff is None:
        raise UnknownStaff(f"WeCom user {userid!r} is not one of our staff")
    return staff


def record_contact(
    session: Session, userid: str, details: ExternalContactDetails, *, at: datetime
) -> ExternalContact:
    """A shopper added (or is still in) `userid`'s contacts: keep them, match them to a member by
    unionid, and make that advisor the member's advisor if the member has none yet.

    Repeating it with the same details changes nothing more.
    """
    staff = staff_by_userid(session, userid)
    contact = session.scalars(
        select(ExternalContact)
        .where(
            ExternalContact.external_userid == details.external_userid, ExternalContact.staff_id == staff.id
        )
        .with_for_update()
    ).one_or_none()
    # WeCom's current answer wins over the event: a late retry of an add whose contact has since
    # deleted the advisor must not bring the contact back.
    still_related = userid in details.follow_states
    if contact is None:
        contact = ExternalContact(
            external_userid=details.external_userid,
            staff_id=staff.id,
            added_at=at,
            removed_at=None if still_related else at,
        )
        session.add(contact)
    elif contact.removed_at is not None and still_related:
        contact.added_at, contact.removed_at = at, None
    contact.unionid = details.unionid or contact.unionid
    contact.name = details.name[:64]
    contact.state = details.follow_states.get(userid) or contact.state
    contact.updated_at = at
    if contact.member_id is None and contact.unionid:
        contact.member_id = _member_with_unionid(session, contact.unionid)
    try:
        session.flush()
    except IntegrityError as error:  # a concurrent event about the same contact inserted it first
        raise RetryableConflict() from error
    if (
        still_related
        and contact.member_id is not None
        and staff.role is StaffRole.ADVISOR
        and staff.is_active
    ):
        assign_if_unassigned(session, contact.member_id, staff.id, AssignmentReason.CONTACT_WAY, at=at)
    return contact


def mark_contact_removed(session: Session, userid: str, external_userid: str, *, at: datetime) -> bool:
    """The advisor and the shopper are no longer contacts (either side deleted the other).

    The member keeps their advisor: that is an operator's decision (reassignment), not WeCom's.
    """
    staff = staff_by_userid(session, userid)
    removed = session.execute(
        update(ExternalContact)
        .where(
            ExternalContact.external_userid == external_userid,
            ExternalContact.staff_id == staff.id,
            ExternalContact.removed_at.is_(None),
        )
        .values(removed_at=at, updated_at=at)
    ).rowcount  # type: ignore[attr-defined]
    return bool(removed)


def match_contacts_of_member(session: Session, member_id: int, unionid: str | None, *, at: datetime) -> int:
    """A member signed up with `unionid`: claim the external contacts recorded before we knew them,
    and bind them to the advisor who added them first if they have no advisor. How many matched."""
    if not unionid:
        return 0
    contacts = list(
        session.scalars(
            select(ExternalContact)
            .where(ExternalContact.unionid == unionid, ExternalContact.member_id.is_(None))
            .order_by(ExternalContact.added_at, ExternalContact.id)
            .with_for_update()
        )
    )
    for contact in contacts:
        contact.member_id = member_id
    session.flush()
    reason = AssignmentReason.CONTACT_WAY
    for contact in contacts:
        if (
            contact.removed_at is None
            and _is_active_advisor(session, contact.staff_id)
            and assign_if_unassigned(session, member_id, contact.staff_id, reason, at=at)
        ):
            break
    return len(contacts)


def match_pending_contacts(session: Session, *, at: datetime, limit: int = 500) -> int:
    """The periodic catch-up of `match_contacts_of_member`: unmatched contacts whose unionid now
    belongs to a member. How many contacts matched."""
    pairs = session.execute(
        select(WeChatAccount.member_id, ExternalContact.unionid)
        .join(ExternalContact, ExternalContact.unionid == WeChatAccount.unionid)
        .where(ExternalContact.member_id.is_(None), WeChatAccount.member_id.is_not(None))
        .distinct()
        .limit(limit)
    ).all()
    matched = 0
    for member_id, unionid in pairs:
        if member_id is not None:
            matched += match_contacts_of_member(session, member_id, unionid, at=at)
    return matched


def _member_with_unionid(session: Session, unionid: str) -> int | None:
    return session.scalar(
        select(WeChatAccount.member_id)
        .where(WeChatAccount.unionid == unionid, WeChatAccount.member_id.is_not(None))
        .order_by(WeChatAccount.id)
        .limit(1)
    )


def _is_active_advisor(session: Session, staff_id: int) -> bool:
    staff = session.get(Staff, staff_id)
    return staff is not None and staff.role is StaffRole.ADVISOR and staff.is_active


# Assignments


def assign_if_unassigned(
    session: Session,
    member_id: int,
    staff_id: int,
    reason: AssignmentReason,
    *,
    at: datetime,
    operator_id: int | None = None,
    store_id: int | None = None,
) -> bool:
    """Make `staff_id` the member's advisor if the member has none (and, with `store_id`, signed up
    in that store); False if someone else got there first. Safe under concurrency: the UPDATE's
    condition is re-checked on the locked row, so of two racing callers exactly one wins."""
    # A deleted member is nobody's to contact any more.
    condition = and_(Member.id == member_id, Member.advisor_id.is_(None), Member.deleted_at.is_(None))
    if store_id is not None:
        condition = and_(condition, Member.signup_scene_id.in_(_scenes_of_store(store_id)))
    won = session.execute(
        update(Member)
        .where(condition)
        .values(advisor_id=staff_id)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        return False
    session.add(
        AdvisorAssignment(
            member_id=member_id,
            staff_id=staff_id,
            reason=reason,
            assigned_at=at,
            assigned_by_operator_id=operator_id,
        )
    )
    session.flush()
    return True


def record_assignment(
    session: Session, member_id: int, staff_id: int, reason: AssignmentReason, *, at: datetime
) -> None:
    """History for an advisor set by other means (e.g. the sign-up scene of a new member)."""
    session.add(AdvisorAssignment(member_id=member_id, staff_id=staff_id, reason=reason, assigned_at=at))
    session.flush()


def assignment_history(session: Session, member_id: int) -> list[AdvisorAssignment]:
    return list(
        session.scalars(
            select(AdvisorAssignment)
            .where(AdvisorAssignment.member_id == member_id)
            .order_by(AdvisorAssignment.assigned_at, AdvisorAssignment.id)
        )
    )


# The store pool


@dataclass(frozen=True)
class PoolMember:
    id: int
    nickname: str | None
    phone_masked: str
    joined_at: datetime


def _scenes_of_store(store_id: int) -> Select[int]:
    return select(QrScene.id).where(QrScene.store_id == store_id)


def _store_of_advisor(staff: Staff) -> int:
    if staff.role is not StaffRole.ADVISOR or staff.store_id is None:
        raise Forbidden("只有门店导购可以查看和认领会员")
    return staff.store_id


def store_pool(session: Session, staff: Staff, *, after_member_id: int, limit: int) -> list[PoolMember]:
    """Members of the advisor's store (the store of their sign-up scene) who have no advisor."""
    store_id = _store_of_advisor(staff)
    rows = session.execute(
        select(Member.id, Member.nickname, Member.phone_masked, Member.joined_at)
        .join(QrScene, QrScene.id == Member.signup_scene_id)
        .where(
            QrScene.store_id == store_id,
            Member.advisor_id.is_(None),
            Member.deleted_at.is_(None),
            Member.id > after_member_id,
        )
        .order_by(Member.id)
        .limit(limit)
    ).all()
    return [PoolMember(*row) for row in rows]


@dataclass(frozen=True)
class PoolSize:
    store_id: int
    store_name: str
    members: int


def pool_sizes(session: Session, *, store_id: int | None = None) -> list[PoolSize]:
    """How many members wait in each store's pool (signed up there, no advisor), by store code; every
    store is listed, or only `store_id`. One grouped query."""
    waiting = (
        select(QrScene.store_id, func.count(Member.id).label("members"))
        .join(Member, Member.signup_scene_id == QrScene.id)
        .where(Member.advisor_id.is_(None), Member.deleted_at.is_(None), QrScene.store_id.is_not(None))
        .group_by(QrScene.store_id)
        .subquery()
    )
    query = (
        select(Store.id, Store.name, func.coalesce(waiting.c.members, 0))
        .outerjoin(waiting, waiting.c.store_id == Store.id)
        .order_by(Store.code)
    )
    if store_id is not None:
        query = query.where(Store.id == store_id)
    return [PoolSize(*row) for row in session.execute(query)]


def list_advisors(session: Session, *, store_id: int | None = None) -> list[Staff]:
    """Advisors, active or not (a leaving advisor's members still need moving), of one store or all."""
    query = select(Staff).where(Staff.role == StaffRole.ADVISOR).order_by(Staff.store_id, Staff.name)
    if store_id is not None:
        query = query.where(Staff.store_id == store_id)
    return list(session.scalars(query))


def claim_member(session: Session, staff: Staff, member_id: int, *, at: datetime) -> None:
    """The advisor takes a member from their store's pool; exactly one of racing claimants wins."""
    store_id = _store_of_advisor(staff)
    if assign_if_unassigned(
        session, member_id, staff.id, AssignmentReason.POOL_CLAIM, at=at, store_id=store_id
    ):
        return
    member = session.get(Member, member_id, populate_existing=True)
    if member is None:
        raise NotFound("会员不存在")
    if member.advisor_id is not None:
        raise MemberAlreadyAssigned()
    raise NotFound("该会员不在本门店的待认领会员中")


# Reassignment


def reassign_members(
    session: Session,
    from_staff_id: int,
    to_staff_id: int | None,
    operator_id: int,
    *,
    at: datetime | None = None,
) -> int:
    """Move every member of one advisor to another (or back to their stores' pools, with None):
    their current assignments end, new ones begin, all on the operator's name. How many moved."""
    at = at or utcnow()
    if session.get(Staff, from_staff_id) is None:
        raise NotFound("员工不存在")
    if to_staff_id is not None:
        if to_staff_id == from_staff_id:
            raise ValidationFailed("不能转给同一位导购")
        active_advisor(session, to_staff_id)
    member_ids = list(
        session.scalars(
            select(Member.id).where(Member.advisor_id == from_staff_id).order_by(Member.id).with_for_update()
        )
    )
    if not member_ids:
        tasks.move_open_tasks(session, from_staff_id, to_staff_id)
        return 0
    end = AssignmentEnd.REASSIGNED if to_staff_id is not None else AssignmentEnd.RETURNED_TO_POOL
    for chunk in _chunks(member_ids, 500):
        session.execute(
            update(Member)
            .where(Member.id.in_(chunk), Member.advisor_id == from_staff_id)
            .values(advisor_id=to_staff_id)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(AdvisorAssignment)
            .where(
                AdvisorAssignment.member_id.in_(chunk),
                AdvisorAssignment.staff_id == from_staff_id,
                AdvisorAssignment.ended_at.is_(None),
            )
            .values(ended_at=at, end_reason=end, ended_by_operator_id=operator_id)
        )
        if to_staff_id is not None:
            session.execute(
                insert(AdvisorAssignment),
                [
                    {
                        "member_id": member_id,
                        "staff_id": to_staff_id,
                        "reason": AssignmentReason.REASSIGNMENT,
                        "assigned_at": at,
                        "assigned_by_operator_id": operator_id,
                    }
                    for member_id in chunk
                ],
            )
    tasks.move_open_tasks(session, from_staff_id, to_staff_id)
    session.flush()
    return len(member_ids)


def members_of_advisor_count(session: Session, staff_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Member).where(Member.advisor_id == staff_id)) or 0


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]

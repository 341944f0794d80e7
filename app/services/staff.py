"""The mall's WeCom staff (员工): counter staff, advisors and managers, by their WeCom userid.

Counter staff and advisors belong to a store (their scans and members are that store's); managers may
work mall-wide. Staff are switched off, never deleted: tasks, assignments and scans keep pointing at
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Member, Staff, StaffRole, Store

ROLES_IN_A_STORE = (StaffRole.STORE_STAFF, StaffRole.ADVISOR)


class WeComUseridTaken(Conflict):
    code, message = "WECOM_USERID_TAKEN", "该企业微信账号已登记"


class StaffStoreRequired(ValidationFailed):
    code, message = "STAFF_STORE_REQUIRED", "店员和导购必须指定所属门店"


@dataclass(frozen=True)
class StaffFilter:
    store_id: int | None = None
    role: StaffRole | None = None
    active: bool | None = None


@dataclass(frozen=True)
class StaffRow:
    staff: Staff
    store_name: str | None
    members: int  # members whose advisor they are


def staff_page(
    session: Session, chosen: StaffFilter, *, offset: int, limit: int
) -> tuple[list[StaffRow], int]:
    """Staff matching the filter, by store then userid, with their store's name and bound members;
    and how many match."""
    conditions = []
    if chosen.store_id is not None:
        conditions.append(Staff.store_id == chosen.store_id)
    if chosen.role is not None:
        conditions.append(Staff.role == chosen.role)
    if chosen.active is not None:
        conditions.append(Staff.is_active.is_(chosen.active))
    total = session.scalar(select(func.count()).select_from(Staff).where(*conditions)) or 0
    members = (
        select(Member.advisor_id, func.count().label("members"))
        .where(Member.advisor_id.is_not(None))
        .group_by(Member.advisor_id)
        .subquery()
    )
    rows = session.execute(
        select(Staff, Store.name, func.coalesce(members.c.members, 0))
        .outerjoin(Store, Store.id == Staff.store_id)
        .outerjoin(members, members.c.advisor_id == Staff.id)
        .where(*conditions)
        .order_by(Staff.store_id, Staff.wecom_userid)
        .offset(offset)
        .limit(limit)
    ).all()
    return [StaffRow(staff, store_name, count) for staff, store_name, count in rows], total


def get_staff(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound("员工不存在")
    return staff


def create_staff(
    session: Session, *, wecom_userid: str, name: str, role: StaffRole, store_id: int | None
) -> Staff:
    _check_store(session, role, store_id)
    if session.scalar(select(Staff.id).where(Staff.wecom_userid == wecom_userid)) is not None:
        raise WeComUseridTaken()
    staff = Staff(wecom_userid=wecom_userid, name=name, role=role, store_id=store_id, is_active=True)
    try:
        with session.begin_nested():
            session.add(staff)
    except IntegrityError as error:  # a concurrent create took the userid first
        raise WeComUseridTaken() from error
    return staff


def update_staff(
    session: Session, staff_id: int, *, name: str, role: StaffRole, store_id: int | None
) -> dict[str, list[Any]]:
    """Change name, role and store; what changed (field → [before, after]). An advisor keeps their
    members through a move: reassigning them is a separate, deliberate step."""
    staff = get_staff(session, staff_id)
    _check_store(session, role, store_id)
    before = {"name": staff.name, "role": staff.role.value, "store_id": staff.store_id}
    staff.name, staff.role, staff.store_id = name, role, store_id
    after = {"name": staff.name, "role": staff.role.value, "store_id": staff.store_id}
    session.flush()
    return {field: [before[field], value] for field, value in after.items() if before[field] != value}


def set_active(session: Session, staff_id: int, active: bool) -> bool:
    """Switch a staff member off (they can no longer sign in to WeCom pages nor get tasks) or back
    on; True if it changed."""
    staff = get_staff(session, staff_id)
    if staff.is_active == active:
        return False
    staff.is_active = active
    session.flush()
    return True


def _check_store(session: Session, role: StaffRole, store_id: int | None) -> None:
    if store_id is None:
        if role in ROLES_IN_A_STORE:
            raise StaffStoreRequired(details={"store_id": ["店员和导购必须指定所属门店"]})
        return
    if session.get(Store, store_id) is None:
        raise NotFound("门店不存在", details={"store_id": store_id})

"""Members' licence plates (车牌): validation, normalisation and binding.

A plate belongs to at most one member (unique key, so two concurrent binds cannot both win),
and a member holds at most `MAX_PLATES_PER_MEMBER`; binds serialise on the member row.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.errors import DomainError
from app.mall_time import MallTime
from app.models import MemberPlate
from app.services import points

MAX_PLATES_PER_MEMBER = 3

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Plate letters never use I or O (they read as 1 and 0).
_LETTER = "A-HJ-NP-Z"
_PLATE = re.compile(
    rf"""^[{_PROVINCES}][{_LETTER}](?:
        [{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学警港澳]     # ordinary: 粤B12345, 粤B1234学
      | [DF][{_LETTER}0-9][0-9]{{4}}                   # small new-energy: 粤BD12345
      | [0-9]{{5}}[DF]                                 # large new-energy: 粤B12345D
    )$""",
    re.VERBOSE,
)
# What people type between the parts of a plate: "粤B·12345", "粤B 12345", "粤B-12345".
_SEPARATORS = re.compile(r"[\s·•\-.]")


class PlateInvalid(DomainError):
    code, status, message = "PLATE_INVALID", 422, "车牌号格式不正确，请检查后重新输入"


class PlateBoundToOtherMember(DomainError):
    code, status, message = "PLATE_BOUND_TO_OTHER_MEMBER", 409, "该车牌已被其他会员绑定，如有疑问请联系服务台"


class PlateLimitReached(DomainError):
    code, status, message = (
        "PLATE_LIMIT_REACHED",
        409,
        f"每位会员最多绑定 {MAX_PLATES_PER_MEMBER} 个车牌，请先解绑不用的车牌",
    )


class PlateNotBound(DomainError):
    code, status, message = "PLATE_NOT_BOUND", 404, "您尚未绑定该车牌"


def normalize_plate(raw: str) -> str:
    """The canonical form of a Chinese plate (full-width folded, upper case, no separators).

    Raises PlateInvalid unless it is an ordinary 7-character plate or an 8-character new-energy one.
    """
    plate = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
    if not _PLATE.match(plate):
        raise PlateInvalid()
    return plate


def member_plates(session: Session, member_id: int) -> list[MemberPlate]:
    return list(
        session.scalars(
            select(MemberPlate).where(MemberPlate.member_id == member_id).order_by(MemberPlate.id)
        )
    )


def bind(session: Session, member_id: int, raw_plate: str, *, at: MallTime) -> tuple[MemberPlate, bool]:
    """Bind a plate to the member. Returns (plate, created); binding one's own plate again is a no-op.

    Never takes a plate from another member. Raises RetryableConflict when a concurrent bind of the
    same plate won the unique key: the retry then reports who holds it.
    """
    plate = normalize_plate(raw_plate)
    points.lock_account(session, member_id)
    # Locking reads: current even if this transaction read something before taking the member lock.
    existing = session.scalars(
        select(MemberPlate).where(MemberPlate.plate == plate).with_for_update()
    ).one_or_none()
    if existing is not None:
        if existing.member_id != member_id:
            raise PlateBoundToOtherMember()
        return existing, False
    held = len(
        session.scalars(
            select(MemberPlate.id).where(MemberPlate.member_id == member_id).with_for_update()
        ).all()
    )
    if held >= MAX_PLATES_PER_MEMBER:
        raise PlateLimitReached()
    binding = MemberPlate(member_id=member_id, plate=plate, created_at=at.now)
    session.add(binding)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    return binding, True


def unbind(session: Session, member_id: int, raw_plate: str) -> None:
    """Remove one of the member's plates; someone else's plate is indistinguishable from an unbound one."""
    plate = normalize_plate(raw_plate)
    points.lock_account(session, member_id)
    binding = plate_binding(session, plate)
    if binding is None or binding.member_id != member_id:
        raise PlateNotBound()
    session.delete(binding)
    session.flush()


def plate_binding(session: Session, plate: str) -> MemberPlate | None:
    return session.scalars(select(MemberPlate).where(MemberPlate.plate == plate)).one_or_none()


def own_plate(session: Session, member_id: int, raw_plate: str) -> str:
    """The normalised plate if the member holds it; a plate of another member is a 409, not a quote."""
    plate = normalize_plate(raw_plate)
    binding = plate_binding(session, plate)
    if binding is None:
        raise PlateNotBound()
    if binding.member_id != member_id:
        raise PlateBoundToOtherMember()
    return plate

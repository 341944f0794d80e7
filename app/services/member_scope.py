"""Which members belong to a store, for operators held to one store (store managers).

A member of store S is one who signed up through a QR scene of S, or whose bound advisor works at S,
or who has bought something at S. One member may belong to several stores. This is the single
definition: member search, export and every member page use it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound
from app.models import Member, Purchase, QrScene, Staff


class MemberOutOfScope(Forbidden):
    code, message = "MEMBER_OUT_OF_SCOPE", "只能查看本门店的会员"


def of_store(store_id: int) -> ColumnElement[bool]:
    """SQL condition on `Member`: the member belongs to store `store_id` (see the module docstring)."""
    return or_(
        Member.signup_scene_id.in_(select(QrScene.id).where(QrScene.store_id == store_id)),
        Member.advisor_id.in_(select(Staff.id).where(Staff.store_id == store_id)),
        exists().where(Purchase.member_id == Member.id, Purchase.store_id == store_id),
    )


def belongs_to_store(session: Session, member_id: int, store_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Member.id == member_id, of_store(store_id)))))


def check_member_in_scope(session: Session, member_id: int, store_id: int | None) -> None:
    """NotFound for an unknown member; MemberOutOfScope (403) when `store_id` is set and the member is
    not one of that store's. `store_id` None means no store restriction."""
    if session.get(Member, member_id) is None:
        raise NotFound("会员不存在")
    if store_id is not None and not belongs_to_store(session, member_id, store_id):
        raise MemberOutOfScope()

"""QR scenes: the store, advisor, event, poster or referrer behind a sign-up code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.models import SCENE_MAX_LENGTH, Member, QrScene, SceneKind, Staff, StaffRole, Store

_PREFIX = {
    SceneKind.STORE: "st",
    SceneKind.ADVISOR: "ad",
    SceneKind.EVENT: "ev",
    SceneKind.POSTER: "po",
    SceneKind.REFERRAL: "rf",
}


@dataclass(frozen=True)
class NewScene:
    kind: SceneKind
    name: str
    store_id: int | None = None
    advisor_userid: str | None = None
    referrer_member_id: int | None = None


def create_scene(session: Session, new: NewScene, *, operator_id: int | None) -> QrScene:
    """A scene with a fresh, unguessable value that fits WeChat's 32-character limit."""
    scene = QrScene(
        kind=new.kind,
        name=new.name,
        scene=_new_scene_value(new.kind),
        created_by_operator_id=operator_id,
    )
    if new.store_id is not None:
        if session.get(Store, new.store_id) is None:
            raise NotFound("门店不存在", details={"store_id": new.store_id})
        scene.store_id = new.store_id
    if new.kind is SceneKind.STORE and scene.store_id is None:
        raise ValidationFailed(details={"store_id": ["门店码必须指定门店"]})
    if new.kind is SceneKind.ADVISOR:
        advisor = _advisor(session, new.advisor_userid)
        scene.advisor_id = advisor.id
        scene.store_id = scene.store_id or advisor.store_id
    if new.kind is SceneKind.REFERRAL:
        if new.referrer_member_id is None:
            raise ValidationFailed(details={"referrer_member_id": ["推荐码必须指定推荐会员"]})
        if session.get(Member, new.referrer_member_id) is None:
            raise NotFound("推荐会员不存在", details={"referrer_member_id": new.referrer_member_id})
        scene.referrer_member_id = new.referrer_member_id
    session.add(scene)
    session.flush()
    return scene


def get_scene(session: Session, scene_id: int) -> QrScene:
    scene = session.get(QrScene, scene_id)
    if scene is None:
        raise NotFound("二维码场景不存在")
    return scene


def list_scenes(session: Session, *, offset: int, limit: int) -> list[QrScene]:
    return list(session.scalars(select(QrScene).order_by(QrScene.id.desc()).offset(offset).limit(limit)))


def _advisor(session: Session, userid: str | None) -> Staff:
    if not userid:
        raise ValidationFailed(details={"advisor_userid": ["导购码必须指定导购"]})
    advisor = session.scalars(select(Staff).where(Staff.wecom_userid == userid)).one_or_none()
    if advisor is None or not advisor.is_active or advisor.role is not StaffRole.ADVISOR:
        raise NotFound("导购不存在或已停用", details={"advisor_userid": userid})
    return advisor


def _new_scene_value(kind: SceneKind) -> str:
    value = f"{_PREFIX[kind]}-{secrets.token_urlsafe(12)}"
    assert len(value) <= SCENE_MAX_LENGTH
    return value

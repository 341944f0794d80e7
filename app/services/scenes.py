"""QR scenes: the store, advisor, event, poster or referrer behind a sign-up code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.integrations.wechat_client import MiniProgramClient
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


def list_scenes(session: Session, *, offset: int, limit: int, store_id: int | None = None) -> list[QrScene]:
    """Scenes, newest first; with `store_id`, that store's only."""
    query = select(QrScene).order_by(QrScene.id.desc()).offset(offset).limit(limit)
    if store_id is not None:
        query = query.where(QrScene.store_id == store_id)
    return list(session.scalars(query))


def count_scenes(session: Session, *, store_id: int | None = None) -> int:
    query = select(func.count()).select_from(QrScene)
    if store_id is not None:
        query = query.where(QrScene.store_id == store_id)
    return session.scalar(query) or 0


def signup_counts(session: Session, scene_ids: list[int]) -> dict[int, int]:
    """scene id → members who signed up through it, for the scenes given (one grouped query)."""
    if not scene_ids:
        return {}
    rows = session.execute(
        select(Member.signup_scene_id, func.count())
        .where(Member.signup_scene_id.in_(scene_ids))
        .group_by(Member.signup_scene_id)
    )
    counts = {scene_id: 0 for scene_id in scene_ids}
    counts.update({scene_id: count for scene_id, count in rows if scene_id is not None})
    return counts


def signup_code_png(wechat: MiniProgramClient, scene: QrScene, signup_page: str) -> bytes:
    """The scene's mini-program code (WeChat getwxacodeunlimit), opening the sign-up page."""
    return wechat.get_unlimited_wxa_code(scene.scene, signup_page)


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

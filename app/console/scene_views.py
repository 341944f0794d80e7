"""QR scenes for sign-up codes: stores, advisors, events, posters, referrals."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.schemas import PageArgs, QrSceneIn, QrSceneOut
from app.db import transaction
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import extensions
from app.integrations import wechat_client
from app.models import QrScene
from app.services import scenes

blp = Blueprint("admin_qr_scenes", __name__, url_prefix="/api/admin/v1", description="运营后台：注册二维码")


@blp.route("/qr-scenes", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(QrSceneIn())
@blp.response(201, QrSceneOut)
@raises(NotFound, ValidationFailed)
def create_qr_scene(args: dict[str, Any]) -> QrScene:
    """新建注册二维码场景（门店、导购、活动、海报、推荐）"""
    with transaction() as session:
        return scenes.create_scene(session, scenes.NewScene(**args), operator_id=current_operator().id)


@blp.route("/qr-scenes", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PageArgs(), location="query")
@blp.response(200, QrSceneOut(many=True))
def list_qr_scenes(args: dict[str, Any]) -> list[QrScene]:
    """注册二维码场景列表（新建的在前）"""
    with transaction() as session:
        return scenes.list_scenes(
            session, offset=(args["page"] - 1) * args["per_page"], limit=args["per_page"]
        )


@blp.route("/qr-scenes/<int:scene_id>/image", methods=["GET"])
@blp.doc(
    security=BEARER_SECURITY,
    responses={"200": {"description": "小程序码 PNG 图片", "content": {"image/png": {}}}},
)
@operator_required
@raises(NotFound, wechat_client.WeChatRateLimited, wechat_client.WeChatUnavailable)
def qr_scene_image(scene_id: int) -> Response:
    """下载该场景的小程序码图片（微信 getwxacodeunlimit）"""
    with transaction() as session:
        scene = scenes.get_scene(session, scene_id)
    ext = extensions()
    return Response(
        scenes.signup_code_png(ext.wechat, scene, ext.config.WECHAT_SIGNUP_PAGE), mimetype="image/png"
    )

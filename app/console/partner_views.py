"""Partners that credit points for activity: their rules and their signing secrets."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, operator_required
from app.console.partner_schemas import PartnerIn, PartnerOut, PartnerUpdateIn, PartnerWithSecretOut
from app.db import transaction
from app.errors import raises
from app.models import Partner
from app.services import partners

blp = Blueprint("admin_partner_views", __name__, url_prefix="/api/admin/v1", description="运营后台：合作方")


def _rules(args: dict[str, Any]) -> partners.PartnerRules:
    return partners.PartnerRules(
        name=args["name"],
        activity_unit=args["activity_unit"],
        points_per_unit=args["points_per_unit"],
        daily_cap_points=args["daily_cap_points"],
    )


@blp.route("/partners", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PartnerIn())
@blp.response(201, PartnerWithSecretOut)
@raises(partners.PartnerExists)
def create_partner(args: dict[str, Any]) -> Partner:
    """新建合作方：返回签名密钥（仅此一次）；编码重复返回 409"""
    with transaction() as session:
        return partners.create_partner(session, args["code"], _rules(args))


@blp.route("/partners", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PartnerOut(many=True))
def list_partners() -> list[Partner]:
    """合作方列表（不含密钥）"""
    with transaction() as session:
        return partners.list_partners(session)


@blp.route("/partners/<int:partner_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PartnerUpdateIn())
@blp.response(200, PartnerOut)
@raises(partners.PartnerNotFound)
def update_partner(args: dict[str, Any], partner_id: int) -> Partner:
    """修改合作方的名称、积分规则、每日上限或启用状态（对之后的活动生效）"""
    with transaction() as session:
        return partners.update_partner(session, partner_id, _rules(args), is_active=args["is_active"])


@blp.route("/partners/<int:partner_id>/secret-rotations", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PartnerWithSecretOut)
@raises(partners.PartnerNotFound)
def rotate_partner_secret(partner_id: int) -> Partner:
    """更换合作方签名密钥：返回新密钥（仅此一次），旧密钥立即失效"""
    with transaction() as session:
        return partners.rotate_secret(session, partner_id)

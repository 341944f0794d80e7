"""Membership tiers for operators: thresholds, points multiplier and parking benefits."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, operator_required
from app.console.points_schemas import AdminTierIn, AdminTierOut
from app.db import run_transaction, transaction
from app.errors import NotFound, ValidationFailed, raises
from app.models import Tier
from app.services import points_rules, tiers

blp = Blueprint("admin_tier_views", __name__, url_prefix="/api/admin/v1", description="运营后台：会员等级")


@blp.route("/tiers", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminTierOut(many=True))
def list_tiers() -> list[Tier]:
    """会员等级，从低到高；benefits 为按等级设置生成的权益说明"""
    with transaction() as session:
        return tiers.tiers_by_rank(session)


@blp.route("/tiers", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminTierIn())
@blp.response(201, AdminTierOut)
@raises(
    points_rules.TierCodeExists,
    points_rules.TierRankExists,
    points_rules.TierThresholdsInvalid,
    ValidationFailed,
)
def create_tier(args: dict[str, Any]) -> Tier:
    """新增会员等级；升级门槛须随等级升高而提高。会员在下次消费或定期评级时进入新等级"""
    values = points_rules.TierValues(**args)
    return run_transaction(lambda session: points_rules.create_tier(session, values))


@blp.route("/tiers/<int:tier_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminTierIn())
@blp.response(200, AdminTierOut)
@raises(
    NotFound,
    points_rules.TierCodeExists,
    points_rules.TierRankExists,
    points_rules.TierThresholdsInvalid,
    ValidationFailed,
)
def update_tier(args: dict[str, Any], tier_id: int) -> Tier:
    """修改会员等级（需提交全部字段）；权益立即生效，门槛在下次消费或定期评级时生效"""
    values = points_rules.TierValues(**args)
    return run_transaction(lambda session: points_rules.update_tier(session, tier_id, values))


@blp.route("/tiers/<int:tier_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound, points_rules.LastTier, points_rules.TierInUse)
def delete_tier(tier_id: int) -> None:
    """删除会员等级；仍有会员或有升降级记录的等级不能删除"""
    run_transaction(lambda session: points_rules.delete_tier(session, tier_id))

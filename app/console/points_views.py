"""Points rules (settings, earning rates, promotions, check-in bonuses) and members' points, for operators."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.points_schemas import (
    AdminEntriesPageArgs,
    AdminPointsEntriesOut,
    AdminPointsEntryOut,
    CheckInBonusIn,
    CheckInBonusOut,
    EarningRateIn,
    EarningRateOut,
    IdempotencyKeyHeaders,
    MemberPointsOut,
    PointsAdjustmentIn,
    PointsPromotionIn,
    PointsPromotionOut,
    PointsSettingsIn,
    PointsSettingsOut,
)
from app.db import run_transaction, transaction
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import mall_time
from app.models import CheckInStreakBonus, EarningRate, Member, PointsEntry, PointsPromotion, PointsSettings
from app.services import points, points_rules, rewards

blp = Blueprint(
    "admin_points_views", __name__, url_prefix="/api/admin/v1", description="运营后台：积分规则与会员积分"
)


@blp.route("/points-settings", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PointsSettingsOut)
def get_points_settings() -> PointsSettings:
    """积分基础规则（从未保存过时为系统默认值）"""
    with transaction() as session:
        return points.points_settings(session)


@blp.route("/points-settings", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PointsSettingsIn())
@blp.response(200, PointsSettingsOut)
@raises(ValidationFailed)
def save_points_settings(args: dict[str, Any]) -> PointsSettings:
    """保存积分基础规则（需提交全部字段）；对此后的积分变动生效"""
    values = points_rules.SettingsValues(**args)
    operator_id, at = current_operator().id, mall_time()
    return run_transaction(
        lambda session: points_rules.save_settings(session, values, operator_id=operator_id, at=at)
    )


@blp.route("/earning-rates", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, EarningRateOut(many=True))
def list_earning_rates() -> list[EarningRate]:
    """各业态的消费积分规则；* 为未单独设置的业态通用"""
    with transaction() as session:
        return points_rules.list_earning_rates(session)


@blp.route("/earning-rates", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(EarningRateIn())
@blp.response(201, EarningRateOut)
@raises(points_rules.EarningRateExists, ValidationFailed)
def create_earning_rate(args: dict[str, Any]) -> EarningRate:
    """新增业态积分规则；同一业态只能有一条"""
    values = points_rules.EarningRateValues(**args)
    return run_transaction(lambda session: points_rules.create_earning_rate(session, values))


@blp.route("/earning-rates/<int:rate_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(EarningRateIn())
@blp.response(200, EarningRateOut)
@raises(NotFound, points_rules.EarningRateExists, ValidationFailed)
def update_earning_rate(args: dict[str, Any], rate_id: int) -> EarningRate:
    """修改业态积分规则"""
    values = points_rules.EarningRateValues(**args)
    return run_transaction(lambda session: points_rules.update_earning_rate(session, rate_id, values))


@blp.route("/earning-rates/<int:rate_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound)
def delete_earning_rate(rate_id: int) -> None:
    """删除业态积分规则；该业态改按 * 规则积分"""
    with transaction() as session:
        points_rules.delete_earning_rate(session, rate_id)


@blp.route("/points-promotions", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PointsPromotionOut(many=True))
def list_points_promotions() -> list[PointsPromotion]:
    """积分倍率活动（如双倍积分日），开始日期新的在前"""
    with transaction() as session:
        return points_rules.list_promotions(session)


@blp.route("/points-promotions", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PointsPromotionIn())
@blp.response(201, PointsPromotionOut)
@raises(ValidationFailed)
def create_points_promotion(args: dict[str, Any]) -> PointsPromotion:
    """新增积分倍率活动；同时进行的多个活动取倍率最高的一个，不叠加"""
    with transaction() as session:
        return points_rules.create_promotion(session, points_rules.PromotionValues(**args))


@blp.route("/points-promotions/<int:promotion_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PointsPromotionIn())
@blp.response(200, PointsPromotionOut)
@raises(NotFound, ValidationFailed)
def update_points_promotion(args: dict[str, Any], promotion_id: int) -> PointsPromotion:
    """修改积分倍率活动（可用 is_active 暂停）"""
    with transaction() as session:
        return points_rules.update_promotion(session, promotion_id, points_rules.PromotionValues(**args))


@blp.route("/points-promotions/<int:promotion_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound)
def delete_points_promotion(promotion_id: int) -> None:
    """删除积分倍率活动"""
    with transaction() as session:
        points_rules.delete_promotion(session, promotion_id)


@blp.route("/check-in-bonuses", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, CheckInBonusOut(many=True))
def list_check_in_bonuses() -> list[CheckInStreakBonus]:
    """连续签到奖励，按天数排列"""
    with transaction() as session:
        return points_rules.list_check_in_bonuses(session)


@blp.route("/check-in-bonuses", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(CheckInBonusIn())
@blp.response(201, CheckInBonusOut)
@raises(points_rules.CheckInBonusExists, ValidationFailed)
def create_check_in_bonus(args: dict[str, Any]) -> CheckInStreakBonus:
    """新增连续签到奖励：连续签到第 N 天额外奖励积分"""
    return run_transaction(lambda session: points_rules.create_check_in_bonus(session, **args))


@blp.route("/check-in-bonuses/<int:bonus_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound)
def delete_check_in_bonus(bonus_id: int) -> None:
    """删除连续签到奖励"""
    with transaction() as session:
        points_rules.delete_check_in_bonus(session, bonus_id)


@blp.route("/members/<int:member_id>/points", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, MemberPointsOut)
@raises(NotFound)
def member_points(member_id: int) -> points.PointsSummary:
    """会员的积分余额、30 天内将过期的积分、欠分"""
    with transaction() as session:
        return points.summary(session, member_id, at=mall_time())


@blp.route("/members/<int:member_id>/points/entries", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminEntriesPageArgs(), location="query")
@blp.response(200, AdminPointsEntriesOut)
@raises(NotFound)
def member_points_entries(args: dict[str, Any], member_id: int) -> dict[str, Any]:
    """会员的积分明细（新的在前），含经办员工与运营；用 next_cursor 翻页"""
    with transaction() as session:
        if session.get(Member, member_id) is None:
            raise NotFound("会员不存在")
        items, next_cursor = points.entries_page(
            session, member_id, before_id=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/members/<int:member_id>/points-adjustments", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PointsAdjustmentIn())
@blp.arguments(IdempotencyKeyHeaders(), location="headers")
@blp.response(201, AdminPointsEntryOut, description="积分明细中的调整记录；同一请求编号重复提交返回同一条")
@raises(NotFound, points.IdempotencyConflict, points.InsufficientPoints, rewards.AdjustmentInvalid)
def adjust_member_points(args: dict[str, Any], headers: dict[str, Any], member_id: int) -> PointsEntry:
    """人工调整会员积分（须填写原因，记录经办运营）；扣减不能超过可用积分"""
    operator_id, at = current_operator().id, mall_time()
    idempotency_key = headers["idempotency_key"] or str(uuid.uuid4())
    return run_transaction(
        lambda session: (
            rewards.adjust_by_operator(
                session,
                member_id,
                args["delta"],
                args["reason"],
                operator_id=operator_id,
                idempotency_key=idempotency_key,
                at=at,
            ).entry
        )
    )

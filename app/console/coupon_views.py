"""Coupon templates for operators: terms, stock, limits, validity, and their draft → active → ended life."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.coupon_schemas import (
    AdminCampaignIn,
    AdminCampaignOut,
    AdminCouponTemplateIn,
    AdminCouponTemplateOut,
    AdminCouponTemplatePageArgs,
)
from app.db import run_transaction, transaction
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import mall_time
from app.models import CouponTemplate
from app.services import campaigns, coupon_templates

blp = Blueprint(
    "admin_coupon_templates", __name__, url_prefix="/api/admin/v1", description="运营后台：优惠券模板"
)


@blp.route("/coupon-templates", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminCouponTemplateIn())
@blp.response(201, AdminCouponTemplateOut)
@raises(coupon_templates.CouponTermsInvalid, coupon_templates.CouponValidityInvalid, ValidationFailed)
def create_coupon_template(args: dict[str, Any]) -> CouponTemplate:
    """新建券模板（草稿状态，启用后才能领取或发放）；有效期为固定起止时间或领取后 N 天，二选一"""
    values = coupon_templates.TemplateValues(**args)
    return run_transaction(lambda session: coupon_templates.create_template(session, values))


@blp.route("/coupon-templates", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminCouponTemplatePageArgs(), location="query")
@blp.response(200, AdminCouponTemplateOut(many=True))
def list_coupon_templates(args: dict[str, Any]) -> list[CouponTemplate]:
    """券模板列表（新建的在前），可按状态筛选"""
    with transaction() as session:
        return coupon_templates.list_templates(
            session,
            status=args["status"],
            offset=(args["page"] - 1) * args["per_page"],
            limit=args["per_page"],
        )


@blp.route("/coupon-templates/<int:template_id>", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCouponTemplateOut)
@raises(NotFound)
def get_coupon_template(template_id: int) -> CouponTemplate:
    """券模板详情，含剩余库存和已发放数量"""
    with transaction() as session:
        return coupon_templates.get_template(session, template_id)


@blp.route("/coupon-templates/<int:template_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminCouponTemplateIn())
@blp.response(200, AdminCouponTemplateOut)
@raises(
    NotFound,
    coupon_templates.CouponStockBelowIssued,
    coupon_templates.CouponTemplateEnded,
    coupon_templates.CouponTermsInvalid,
    coupon_templates.CouponValidityInvalid,
    ValidationFailed,
)
def update_coupon_template(args: dict[str, Any], template_id: int) -> CouponTemplate:
    """修改券模板（需提交全部字段）；已发放的券不受影响。总库存不能少于已发放数量，已结束的模板不能修改"""
    values = coupon_templates.TemplateValues(**args)
    return run_transaction(lambda session: coupon_templates.update_template(session, template_id, values))


@blp.route("/coupon-templates/<int:template_id>/activate", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCouponTemplateOut)
@raises(NotFound, coupon_templates.CouponTemplateStatusInvalid)
def activate_coupon_template(template_id: int) -> CouponTemplate:
    """启用券模板（草稿或已暂停 → 进行中）"""
    return run_transaction(lambda session: coupon_templates.activate(session, template_id))


@blp.route("/coupon-templates/<int:template_id>/pause", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCouponTemplateOut)
@raises(NotFound, coupon_templates.CouponTemplateStatusInvalid)
def pause_coupon_template(template_id: int) -> CouponTemplate:
    """暂停券模板（进行中 → 已暂停）：暂停领取和发放，已发放的券照常可用"""
    return run_transaction(lambda session: coupon_templates.pause(session, template_id))


@blp.route("/coupon-templates/<int:template_id>/end", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCouponTemplateOut)
@raises(NotFound, coupon_templates.CouponTemplateStatusInvalid)
def end_coupon_template(template_id: int) -> CouponTemplate:
    """结束券模板（不可恢复、不可再修改）；已发放的券在有效期内照常可用"""
    return run_transaction(lambda session: coupon_templates.end(session, template_id))


@blp.route("/coupon-campaigns", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdminCampaignIn())
@blp.response(201, AdminCampaignOut)
@raises(NotFound, ValidationFailed)
def create_campaign(args: dict[str, Any]) -> campaigns.CampaignProgress:
    """向一批会员发券：后台分批执行（每分钟调度），中断后可继续，不会重复发放"""
    operator_id = current_operator().id
    with transaction() as session:
        if args["segment_id"] is not None:
            campaign = campaigns.create_segment_campaign(
                session,
                name=args["name"],
                template_id=args["template_id"],
                segment_id=args["segment_id"],
                operator_id=operator_id,
                at=mall_time(),
            )
        else:
            campaign = campaigns.create_campaign(
                session,
                name=args["name"],
                template_id=args["template_id"],
                member_ids=args["member_ids"],
                operator_id=operator_id,
            )
        return campaigns.progress(session, campaign.id)


@blp.route("/coupon-campaigns/<int:campaign_id>", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCampaignOut)
@raises(NotFound)
def campaign_progress(campaign_id: int) -> campaigns.CampaignProgress:
    """发券活动进度"""
    with transaction() as session:
        return campaigns.progress(session, campaign_id)


@blp.route("/coupon-campaigns/<int:campaign_id>/cancel", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AdminCampaignOut)
@raises(NotFound, campaigns.CampaignNotRunnable)
def cancel_campaign(campaign_id: int) -> campaigns.CampaignProgress:
    """取消尚未完成的发券活动（已发出的券保留）"""
    with transaction() as session:
        campaigns.cancel(session, campaign_id, at=mall_time())
        return campaigns.progress(session, campaign_id)

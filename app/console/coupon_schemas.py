"""Request and response shapes of the operators' coupon templates (券模板)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.console.schemas import PageArgs
from app.input_bounds import MAX_INT, instant_range
from app.models import CouponKind, TemplateStatus
from app.services import coupon_templates

# Ceilings that keep every value inside a 32-bit INT column: beyond them a typo is far likelier than intent.
MAX_AMOUNT_FEN = 100_000_000
MAX_POINTS = 1_000_000
MAX_PARKING_MINUTES = 7 * 24 * 60
MAX_PER_MEMBER = 10_000


def _integer(low: int, high: int, default: int, description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        load_default=default,
        validate=validate.Range(min=low, max=high),
        metadata={"description": description},
    )


def _instant(description: str) -> ma.fields.AwareDateTime:
    return ma.fields.AwareDateTime(
        load_default=None,
        allow_none=True,
        validate=instant_range(),
        error_messages={"invalid_awareness": "时间须带时区，如 2026-12-01T10:00:00+08:00"},
        metadata={"description": description},
    )


class AdminCouponTemplateIn(ma.Schema):
    """The whole template: a PUT replaces every field (omitted ones take their defaults)."""

    kind = ma.fields.Enum(
        CouponKind,
        by_value=True,
        required=True,
        metadata={"description": "cash_off 满减券；discount 折扣券；gift 礼品券；parking 停车券"},
    )
    name = ma.fields.String(
        required=True,
        validate=[validate.Length(1, 64), validate.Regexp(r"\s*\S", error="不能为空白")],
        metadata={"description": "券名称，如 满 200 减 30"},
    )
    description = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"description": "使用说明"},
    )
    face_value_fen = _integer(0, MAX_AMOUNT_FEN, 0, "满减券：减免金额（分），须大于 0")
    min_spend_fen = _integer(
        0, MAX_AMOUNT_FEN, 0, "满减券、折扣券：使用门槛（分），0 为无门槛；满减券的门槛不低于减免金额"
    )
    # A Field, not an Integer: the response shows it only on discount coupons.
    discount_percent: ma.fields.Field = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        metadata={"description": "折扣券必填：按原价的百分之几付款，1 到 99（88 即八八折）；其他券不填"},
    )
    max_discount_fen = _integer(0, MAX_AMOUNT_FEN, 0, "折扣券：最多优惠多少分，0 为不封顶")
    gift_name = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={"description": "礼品券必填：礼品名称；其他券不填"},
    )
    parking_minutes = _integer(0, MAX_PARKING_MINUTES, 0, "停车券：免费停车分钟数（与抵扣金额二选一）")
    parking_value_fen = _integer(0, MAX_AMOUNT_FEN, 0, "停车券：停车费抵扣金额（分）（与分钟数二选一）")
    store_ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_INT)),
        load_default=list,
        validate=validate.Length(max=1000),
        metadata={"description": "可用门店 ID；与 store_categories 都为空时全场可用"},
    )
    store_categories = ma.fields.List(
        ma.fields.String(validate=validate.Length(1, 32)),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "可用业态，如 餐饮；该业态的门店均可用"},
    )
    total_stock = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=coupon_templates.MAX_TOTAL_STOCK),
        metadata={"description": "总库存；修改时不能少于已发放数量"},
    )
    per_member_limit = _integer(0, MAX_PER_MEMBER, 1, "每人最多领取张数，0 为不限")
    per_member_daily_limit = _integer(0, MAX_PER_MEMBER, 0, "每人每天最多领取张数，0 为不限")
    eligible_tier_ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_INT)),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "可领取的会员等级 ID；为空时所有等级可领"},
    )
    valid_from = _instant("固定有效期的开始时间（与 valid_days_after_issue 二选一）")
    valid_until = _instant("固定有效期的结束时间，须晚于开始时间")
    valid_days_after_issue = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        metadata={
            "description": f"发放后有效天数，1 到 {coupon_templates.MAX_VALID_DAYS}（与固定有效期二选一）"
        },
    )
    claim_starts_at = _instant("开始领取时间；不填为启用后即可领取")
    claim_ends_at = _instant("结束领取时间，须晚于开始领取时间；不填为不限")
    points_price = _integer(0, MAX_POINTS, 0, "积分商城兑换所需积分，0 为免费领取")
    refund_points_on_expiry = ma.fields.Boolean(
        load_default=False,
        # JSON true/false only: "yes" or "0" from a careless client is an error, not a guess.
        truthy={True},
        falsy={False},
        metadata={"description": "用积分兑换的券过期未使用时是否退还积分"},
    )


class AdminCouponTemplateOut(AdminCouponTemplateIn):
    id = ma.fields.Integer()
    status = ma.fields.Enum(
        TemplateStatus,
        by_value=True,
        metadata={"description": "draft 草稿；active 进行中；paused 已暂停；ended 已结束"},
    )
    discount_percent = ma.fields.Function(
        coupon_templates.discount_percent,
        metadata={"type": "integer", "nullable": True, "description": "折扣券的折扣；其他券为 null"},
    )
    remaining_stock = ma.fields.Integer(metadata={"description": "剩余库存"})
    issued = ma.fields.Function(
        coupon_templates.issued,
        metadata={"type": "integer", "description": "已发放数量（总库存 − 剩余库存），含已使用和已过期的"},
    )
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class AdminCouponTemplatePageArgs(PageArgs):
    status = ma.fields.Enum(
        TemplateStatus, by_value=True, load_default=None, metadata={"description": "只看该状态的券模板"}
    )


class AdminCampaignIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    template_id = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_INT))
    member_ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_INT)),
        load_default=None,
        metadata={"description": "目标会员；与 segment_id 二选一"},
    )
    segment_id = ma.fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "目标人群（创建时按人群当前的会员确定名单）；与 member_ids 二选一"},
    )

    @ma.validates_schema
    def one_audience(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if (data["member_ids"] is None) == (data["segment_id"] is None):
            raise ma.ValidationError("请提供 member_ids 或 segment_id 其中之一", "segment_id")


class AdminCampaignOut(ma.Schema):
    id = ma.fields.Integer(attribute="campaign.id")
    name = ma.fields.String(attribute="campaign.name")
    template_id = ma.fields.Integer(attribute="campaign.template_id")
    segment_id = ma.fields.Integer(attribute="campaign.segment_id", allow_none=True)
    status = ma.fields.String(attribute="campaign.status")
    total = ma.fields.Integer(metadata={"description": "目标会员数"})
    processed = ma.fields.Integer(metadata={"description": "已处理会员数"})
    issued = ma.fields.Integer(metadata={"description": "已发放张数"})
    skipped = ma.fields.Integer(metadata={"description": "未发放（库存不足或券已停用）"})
    created_at = ma.fields.DateTime(attribute="campaign.created_at")
    started_at = ma.fields.DateTime(attribute="campaign.started_at", allow_none=True)
    finished_at = ma.fields.DateTime(attribute="campaign.finished_at", allow_none=True)

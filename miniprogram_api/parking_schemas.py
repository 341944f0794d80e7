"""Request and response shapes of the shoppers' parking API: plates, quotes, payments."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT
from app.models import ParkingPaymentStatus

MAX_POINTS = 1_000_000


class PlateIn(ma.Schema):
    plate = ma.fields.String(
        required=True,
        validate=validate.Length(1, 32),
        metadata={"description": "车牌号，如 粤B12345、粤BD12345（新能源）；大小写与空格不限"},
    )


class PlateOut(ma.Schema):
    plate = ma.fields.String(metadata={"description": "规范化后的车牌号"})
    bound_at = ma.fields.DateTime(attribute="created_at")


class QuoteArgs(ma.Schema):
    plate = ma.fields.String(required=True, validate=validate.Length(1, 32))


class CouponDeductionOut(ma.Schema):
    coupon_id = ma.fields.Integer()
    name = ma.fields.String()
    minutes = ma.fields.Integer(metadata={"description": "该券抵扣的停车时长（分钟），按金额抵扣的券为 0"})
    value_fen = ma.fields.Integer(metadata={"description": "按金额抵扣的券抵扣的金额（分）"})


class DeductionsOut(ma.Schema):
    tier_minutes = ma.fields.Integer(metadata={"description": "会员等级每日免费时长（当日已用的不再计入）"})
    spending_minutes = ma.fields.Integer(metadata={"description": "当日消费满额赠送的免费时长"})
    coupon_minutes = ma.fields.Integer(metadata={"description": "停车券抵扣的时长"})
    minutes_value_fen = ma.fields.Integer(metadata={"description": "以上免费时长合计抵扣的停车费（分）"})
    coupons = ma.fields.List(ma.fields.Nested(CouponDeductionOut))
    coupon_value_fen = ma.fields.Integer(metadata={"description": "停车券合计抵扣金额（分，不含按时长抵扣）"})
    points = ma.fields.Integer(metadata={"description": "抵扣使用的积分"})
    points_value_fen = ma.fields.Integer(metadata={"description": "积分抵扣的金额（分）"})


class PointsTermsOut(ma.Schema):
    points_per_yuan = ma.fields.Integer(metadata={"description": "多少积分抵 1 元"})
    max_points = ma.fields.Integer(metadata={"description": "本次最多可用积分（含单次上限与余额）"})
    balance = ma.fields.Integer()


class QuoteOut(ma.Schema):
    quote_id = ma.fields.Integer(attribute="quote.id", required=True)
    plate = ma.fields.String(attribute="quote.plate")
    entry_time = ma.fields.DateTime(attribute="quote.entry_time")
    parking_minutes = ma.fields.Integer(attribute="quote.parking_minutes")
    fee_fen = ma.fields.Integer(attribute="quote.fee_fen", metadata={"description": "停车费（分）"})
    deductions = ma.fields.Nested(DeductionsOut, attribute="breakdown")
    amount_due_fen = ma.fields.Integer(
        attribute="breakdown.amount_due_fen", metadata={"description": "抵扣后还需支付（分）"}
    )
    available_coupon_ids = ma.fields.List(
        ma.fields.Integer(), metadata={"description": "可用于本次停车的停车券"}
    )
    points_terms = ma.fields.Nested(PointsTermsOut)
    expires_at = ma.fields.DateTime(attribute="quote.expires_at")


class PaymentIn(ma.Schema):
    quote_id = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_INT))
    coupon_ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_INT)),
        load_default=None,
        validate=validate.Length(max=10),
        metadata={"description": "使用的停车券；不填则按报价推荐，[] 表示不用券"},
    )
    points = ma.fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=0, max=MAX_POINTS),
        metadata={"description": "抵扣使用的积分；不填则按报价推荐，0 表示不用积分"},
    )


class PaymentHeaders(ma.Schema):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=validate.Length(8, 64),
        metadata={"description": "客户端生成的唯一请求编号（如 UUID），重试时保持不变"},
    )


class PaymentCouponOut(ma.Schema):
    coupon_id = ma.fields.Integer()
    minutes = ma.fields.Integer()
    value_fen = ma.fields.Integer()


class PaymentOut(ma.Schema):
    id = ma.fields.Integer()
    order_no = ma.fields.String()
    quote_id = ma.fields.Integer()
    plate = ma.fields.String()
    entry_time = ma.fields.DateTime()
    parking_minutes = ma.fields.Integer()
    fee_fen = ma.fields.Integer()
    tier_minutes = ma.fields.Integer()
    spending_minutes = ma.fields.Integer()
    coupon_minutes = ma.fields.Integer()
    minutes_value_fen = ma.fields.Integer()
    coupon_value_fen = ma.fields.Integer()
    points = ma.fields.Integer()
    points_value_fen = ma.fields.Integer()
    deduction_fen = ma.fields.Integer(metadata={"description": "合计抵扣（分）"})
    amount_due_fen = ma.fields.Integer(metadata={"description": "出场时还需支付（分）"})
    status = ma.fields.Enum(
        ParkingPaymentStatus,
        by_value=True,
        metadata={"description": "paid 已生效；unknown 停车场确认中；refunded 未生效，积分与券已退回"},
    )
    failure_message = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    settled_at = ma.fields.DateTime(allow_none=True)

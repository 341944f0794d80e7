"""Request and response shapes of the operators' parking rules and payment records."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.console.schemas import PageArgs
from app.input_bounds import MAX_INT, date_range
from app.models import ParkingPaymentStatus

# Ceilings that keep every value inside a 32-bit INT column: beyond them a typo is far likelier than intent.
MAX_AMOUNT_FEN = 100_000_000
MAX_POINTS_PER_YUAN = 100_000
MAX_FREE_MINUTES = 24 * 60


class SpendingFreeMinutesIn(ma.Schema):
    min_spend_fen = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_AMOUNT_FEN)
    )
    free_minutes = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_FREE_MINUTES)
    )


class ParkingRulesIn(ma.Schema):
    """The whole rule set: a PUT replaces every field."""

    quote_ttl_seconds = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=30, max=3_600),
        metadata={"description": "报价有效期（秒）"},
    )
    points_per_yuan = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_POINTS_PER_YUAN),
        metadata={"description": "多少积分抵 1 元，如 100"},
    )
    points_max_fen_per_visit = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=0, max=MAX_AMOUNT_FEN),
        metadata={"description": "每次停车最多用积分抵扣的金额（分），0 为不接受积分"},
    )
    spending_free_minutes = ma.fields.List(
        ma.fields.Nested(SpendingFreeMinutesIn),
        required=True,
        validate=validate.Length(max=10),
        metadata={
            "description": "当日消费满额送免费停车时长，如 [{min_spend_fen: 20000, free_minutes: 120}]"
        },
    )


class ParkingRulesOut(ma.Schema):
    quote_ttl_seconds = ma.fields.Integer()
    points_per_yuan = ma.fields.Integer()
    points_max_fen_per_visit = ma.fields.Integer()
    spending_free_minutes = ma.fields.List(ma.fields.Dict())
    updated_at = ma.fields.DateTime(allow_none=True)


class ParkingPaymentArgs(PageArgs):
    status = ma.fields.Enum(ParkingPaymentStatus, by_value=True, load_default=None)
    plate = ma.fields.String(load_default=None, validate=validate.Length(1, 32))
    member_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    date_from = ma.fields.Date(
        load_default=None,
        validate=date_range(),
        metadata={"description": "起始营业日（含）"},
    )
    date_to = ma.fields.Date(
        load_default=None, validate=date_range(), metadata={"description": "截止营业日（含）"}
    )


class AdminParkingPaymentOut(ma.Schema):
    id = ma.fields.Integer()
    order_no = ma.fields.String()
    member_id = ma.fields.Integer()
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
    deduction_fen = ma.fields.Integer()
    amount_due_fen = ma.fields.Integer()
    status = ma.fields.Enum(ParkingPaymentStatus, by_value=True)
    failure_code = ma.fields.String(allow_none=True)
    failure_message = ma.fields.String(allow_none=True)
    business_date = ma.fields.Date()
    created_at = ma.fields.DateTime()
    settled_at = ma.fields.DateTime(allow_none=True)


class ParkingPaymentPageOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AdminParkingPaymentOut), required=True)
    total = ma.fields.Integer(required=True)

"""Request and response shapes of the POS API."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import instant_range

_AMOUNT = validate.Range(min=1, max=100_000_000)


class PosPurchaseIn(ma.Schema):
    receipt_no = ma.fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "小票号：同一门店同一小票只登记一次，重发返回首次结果"},
    )
    amount_fen = ma.fields.Integer(
        strict=True, required=True, validate=_AMOUNT, metadata={"description": "实付金额（分）"}
    )
    member_code = ma.fields.String(
        load_default=None,
        validate=validate.Length(1, 64),
        metadata={"description": "扫描会员码得到的内容（与 phone 二选一；都不填为非会员消费）"},
    )
    phone = ma.fields.String(
        load_default=None,
        validate=validate.Length(1, 32),
        metadata={
            "description": "会员手机号，可带 +86、空格、短横线或全角数字（与 member_code 二选一）；"
            "查无此会员返回 404"
        },
    )
    paid_at = ma.fields.AwareDateTime(
        load_default=None,
        validate=instant_range(),
        metadata={"description": "支付时间（带时区），默认为现在"},
    )

    @ma.validates_schema
    def _one_way_to_name_the_member(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("member_code") and data.get("phone"):
            raise ma.ValidationError("会员码与手机号只能填写一个", field_name="phone")


class PosPurchaseOut(ma.Schema):
    id = ma.fields.Integer()
    store_id = ma.fields.Integer()
    receipt_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    refunded_fen = ma.fields.Integer()
    member_id = ma.fields.Integer(allow_none=True, metadata={"description": "非会员消费为 null"})
    points_earned = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    purchased_at = ma.fields.DateTime()


class PosMemberOut(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.String(attribute="phone_masked", metadata={"description": "脱敏手机号"})
    points_balance = ma.fields.Integer()


class PosPurchaseResultOut(ma.Schema):
    purchase = ma.fields.Nested(PosPurchaseOut, required=True)
    member = ma.fields.Nested(PosMemberOut, allow_none=True, metadata={"description": "非会员消费为 null"})


class PosRefundIn(ma.Schema):
    receipt_no = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "原消费的小票号（本门店）"}
    )
    refund_no = ma.fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "退货单号：同一笔消费的同一退货单号只登记一次"},
    )
    amount_fen = ma.fields.Integer(
        strict=True, required=True, validate=_AMOUNT, metadata={"description": "退货金额（分）"}
    )


class PosRefundOut(ma.Schema):
    id = ma.fields.Integer()
    refund_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    purchase = ma.fields.Nested(PosPurchaseOut)

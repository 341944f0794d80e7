"""Request and response shapes of the staff API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT
from app.models import StaffRole


class WeComLoginIn(ma.Schema):
    code = ma.fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": "企业微信网页授权返回的 code"},
    )


class StaffOut(ma.Schema):
    id = ma.fields.Integer()
    userid = ma.fields.String(attribute="wecom_userid")
    name = ma.fields.String()
    role = ma.fields.Enum(StaffRole, by_value=True)
    store_id = ma.fields.Integer(allow_none=True)


class StaffLoginOut(ma.Schema):
    token = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True)
    staff = ma.fields.Nested(StaffOut, required=True)


class MemberCodeIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "扫描顾客会员码得到的内容"}
    )


class MemberSummaryOut(ma.Schema):
    """Dumps a `members.MemberCard`."""

    id = ma.fields.Integer(attribute="member.id")
    phone = ma.fields.String(attribute="member.phone_masked")
    nickname = ma.fields.String(attribute="member.nickname", allow_none=True)
    tier = ma.fields.Function(lambda card: {"code": card.tier.code, "name": card.tier.name})
    points_balance = ma.fields.Integer(attribute="member.points_balance")


class PurchaseIn(ma.Schema):
    member_code = ma.fields.String(
        load_default=None,
        validate=validate.Length(1, 64),
        metadata={"description": "扫描会员码得到的内容（与 member_id 二选一，都不填为非会员消费）"},
    )
    member_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    store_id = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_INT))
    receipt_no = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "小票号"}
    )
    amount_fen = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=100_000_000),
        metadata={"description": "实付金额（分）"},
    )
    paid_at = ma.fields.AwareDateTime(
        load_default=None, metadata={"description": "支付时间（带时区），默认为现在"}
    )


class PurchaseOut(ma.Schema):
    id = ma.fields.Integer()
    store_id = ma.fields.Integer()
    receipt_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    refunded_fen = ma.fields.Integer()
    member_id = ma.fields.Integer(allow_none=True)
    points_earned = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    purchased_at = ma.fields.DateTime()


class PurchaseResultOut(ma.Schema):
    purchase = ma.fields.Nested(PurchaseOut, required=True)
    member = ma.fields.Nested(MemberSummaryOut, allow_none=True)
    tier_upgraded_to = ma.fields.String(
        allow_none=True, metadata={"description": "本次消费后升级到的等级名称"}
    )


class RefundIn(ma.Schema):
    refund_no = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "退货单号"}
    )
    amount_fen = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=100_000_000)
    )


class RefundOut(ma.Schema):
    id = ma.fields.Integer()
    refund_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    purchase = ma.fields.Nested(PurchaseOut)


class CouponRedemptionIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "扫描券码得到的内容"}
    )
    store_id = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_INT))
    order_amount_fen = ma.fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1, max=100_000_000),
        metadata={"description": "订单金额（分）；满减券、折扣券必填"},
    )


class RedeemedCouponOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    gift_name = ma.fields.String(allow_none=True)
    member_id = ma.fields.Integer()
    status = ma.fields.String()


class CouponRedemptionOut(ma.Schema):
    id = ma.fields.Integer(attribute="redemption.id")
    store_id = ma.fields.Integer(attribute="redemption.store_id")
    order_amount_fen = ma.fields.Integer(attribute="redemption.order_amount_fen", allow_none=True)
    deduction_fen = ma.fields.Integer(
        attribute="redemption.deduction_fen", metadata={"description": "应抵扣金额（分）"}
    )
    redeemed_at = ma.fields.DateTime(attribute="redemption.redeemed_at")
    undone_at = ma.fields.DateTime(attribute="redemption.undone_at", allow_none=True)
    coupon = ma.fields.Nested(RedeemedCouponOut)


class PoolArgs(ma.Schema):
    after = ma.fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_INT),
        metadata={"description": "上一页最后的会员号"},
    )
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PoolMemberOut(ma.Schema):
    id = ma.fields.Integer()
    nickname = ma.fields.String(allow_none=True)
    phone = ma.fields.String(attribute="phone_masked", metadata={"description": "脱敏手机号"})
    joined_at = ma.fields.DateTime()


class ClaimOut(ma.Schema):
    member_id = ma.fields.Integer(required=True)
    advisor_id = ma.fields.Integer(required=True)

"""Request and response shapes of the mini-program API."""

from __future__ import annotations

from datetime import date

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT
from app.models import CouponKind, CouponSource, CouponStatus, PointsEntryKind, SceneKind
from app.services import tiers


class WeChatLoginIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=validate.Length(1, 128), metadata={"description": "wx.login() 返回的 code"}
    )


class TierOut(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class AdvisorOut(ma.Schema):
    userid = ma.fields.String(attribute="wecom_userid")
    name = ma.fields.String()


class SignupSceneOut(ma.Schema):
    kind = ma.fields.Enum(SceneKind, by_value=True)
    name = ma.fields.String()


class MemberOut(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.String(attribute="phone_masked", metadata={"description": "脱敏手机号，如 138****8000"})
    nickname = ma.fields.String(allow_none=True)
    birthday = ma.fields.Date(allow_none=True)
    tier = ma.fields.Nested(TierOut)
    points_balance = ma.fields.Integer()
    advisor = ma.fields.Nested(AdvisorOut, allow_none=True)
    joined_at = ma.fields.DateTime()
    signup_scene = ma.fields.Nested(SignupSceneOut, allow_none=True)


class LoginOut(ma.Schema):
    token = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True, metadata={"description": "token 有效期（秒）"})
    member = ma.fields.Nested(MemberOut, allow_none=True, metadata={"description": "尚未注册时为 null"})


def _not_in_future(value: date) -> None:
    if value > date.today() or value.year < 1900:
        raise ma.ValidationError("生日日期无效")


class SignUpIn(ma.Schema):
    phone_code = ma.fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": "手机号快速验证组件返回的 code"},
    )
    consent_version = ma.fields.String(
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "用户同意的隐私政策版本（必填）"},
    )
    scene = ma.fields.String(
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "扫码进入时的小程序码 scene"},
    )
    birthday = ma.fields.Date(load_default=None, validate=_not_in_future)
    nickname = ma.fields.String(load_default=None, validate=validate.Length(1, 32))


class MemberCodeOut(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "动态会员码，仅可使用一次"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "剩余有效秒数"})
    qr_png_base64 = ma.fields.String(required=True, metadata={"description": "会员码二维码 PNG（base64）"})


class PointsSummaryOut(ma.Schema):
    balance = ma.fields.Integer(required=True, metadata={"description": "可用积分"})
    debt = ma.fields.Integer(
        required=True, metadata={"description": "退货扣回不足形成的欠分，今后获得的积分优先抵扣"}
    )
    expiring_soon = ma.fields.Integer(required=True, metadata={"description": "30 天内将过期的积分"})
    expiring_before = ma.fields.Date(required=True)
    next_expiry_on = ma.fields.Date(allow_none=True, metadata={"description": "最近一批积分的到期日"})


class PointsEntryOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.Enum(PointsEntryKind, by_value=True)
    delta = ma.fields.Integer(metadata={"description": "正数为获得，负数为扣减"})
    balance_after = ma.fields.Integer()
    description = ma.fields.String()
    created_at = ma.fields.DateTime()


class PointsEntriesOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PointsEntryOut), required=True)
    next_cursor = ma.fields.Integer(
        allow_none=True, metadata={"description": "下一页的 cursor；为 null 表示没有更多"}
    )


class EntriesPageArgs(ma.Schema):
    cursor = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=50))


class CheckInOut(ma.Schema):
    date = ma.fields.Date(required=True, metadata={"description": "签到的营业日（商场时区）"})
    streak = ma.fields.Integer(required=True, metadata={"description": "连续签到天数"})
    points = ma.fields.Integer(required=True)
    bonus_points = ma.fields.Integer(required=True, metadata={"description": "连签奖励"})
    already_checked_in = ma.fields.Boolean(required=True)


class ShareOut(ma.Schema):
    points = ma.fields.Integer(
        required=True, metadata={"description": "本次分享获得的积分（超出每日上限为 0）"}
    )
    shares_rewarded_today = ma.fields.Integer(required=True)
    daily_limit = ma.fields.Integer(required=True)


class TierBenefitsOut(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    min_annual_spend_fen = ma.fields.Integer()
    points_multiplier_percent = ma.fields.Integer(metadata={"description": "积分倍率，150 表示 1.5 倍"})
    free_parking_minutes_per_day = ma.fields.Integer()
    benefits = ma.fields.Function(tiers.benefits, metadata={"description": "等级权益说明"})


class TierProgressOut(ma.Schema):
    current = ma.fields.Nested(TierBenefitsOut, attribute="tier", required=True)
    rolling_spend_fen = ma.fields.Integer(required=True, metadata={"description": "近 12 个月消费（分）"})
    next = ma.fields.Nested(TierBenefitsOut, attribute="next_tier", allow_none=True)
    spend_to_next_fen = ma.fields.Integer(required=True)


class CouponTermsOut(ma.Schema):
    kind = ma.fields.Enum(CouponKind, by_value=True)
    name = ma.fields.String()
    face_value_fen = ma.fields.Integer()
    min_spend_fen = ma.fields.Integer()
    discount_percent = ma.fields.Integer(metadata={"description": "折扣，88 表示八八折"})
    max_discount_fen = ma.fields.Integer(metadata={"description": "最多优惠（分），0 为不封顶"})
    gift_name = ma.fields.String(allow_none=True)
    parking_minutes = ma.fields.Integer()
    parking_value_fen = ma.fields.Integer()
    store_ids = ma.fields.List(ma.fields.Integer(), metadata={"description": "适用门店，空为全部"})
    store_categories = ma.fields.List(ma.fields.String(), metadata={"description": "适用业态，空为全部"})


class ClaimableTemplateOut(CouponTermsOut):
    id = ma.fields.Integer()
    description = ma.fields.String(allow_none=True)
    remaining_stock = ma.fields.Integer()
    points_price = ma.fields.Integer(metadata={"description": "兑换所需积分，0 为免费领取"})
    claim_ends_at = ma.fields.DateTime(allow_none=True)


class CouponOut(CouponTermsOut):
    id = ma.fields.Integer()
    template_id = ma.fields.Integer()
    status = ma.fields.Enum(CouponStatus, by_value=True)
    source = ma.fields.Enum(CouponSource, by_value=True)
    points_paid = ma.fields.Integer()
    valid_from = ma.fields.DateTime()
    valid_until = ma.fields.DateTime()
    issued_at = ma.fields.DateTime()
    used_at = ma.fields.DateTime(allow_none=True)


class MyCouponsArgs(ma.Schema):
    status = ma.fields.Enum(CouponStatus, by_value=True, load_default=CouponStatus.AVAILABLE)


class ClaimHeaders(ma.Schema):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=validate.Length(8, 64),
        metadata={"description": "客户端生成的唯一请求编号（如 UUID），重试时保持不变"},
    )


class CouponCodeOut(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "一次性券码，约一分钟内有效"})
    expires_in = ma.fields.Integer(required=True)
    qr_png_base64 = ma.fields.String(required=True)

"""Request and response shapes of the operators' points rules, tiers and points adjustments."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT, date_range
from app.models import ExpiryPolicy, PointsEntryKind
from app.services import tiers

# Ceilings that keep every value inside a 32-bit INT column: beyond them a typo is far likelier than intent.
MAX_POINTS = 1_000_000
MAX_DAILY_CAP_POINTS = 100_000_000
MAX_AMOUNT_FEN = 100_000_000
MAX_ANNUAL_SPEND_FEN = 2_000_000_000
MAX_MULTIPLIER_PERCENT = 1_000


def _required_integer(low: int, high: int, description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=low, max=high),
        metadata={"description": description},
    )


class PointsSettingsIn(ma.Schema):
    """The whole rule set: a PUT replaces every field."""

    welcome_points = _required_integer(0, MAX_POINTS, "新会员注册礼积分")
    checkin_points = _required_integer(0, MAX_POINTS, "每日签到积分")
    share_points = _required_integer(0, MAX_POINTS, "每次分享积分")
    share_daily_limit = _required_integer(0, 100, "每日计分的分享次数上限")
    referrer_points = _required_integer(0, MAX_POINTS, "推荐人获得的积分")
    referee_points = _required_integer(0, MAX_POINTS, "被推荐的新会员获得的积分")
    birthday_points = _required_integer(0, MAX_POINTS, "生日月礼遇积分")
    purchase_min_amount_fen = _required_integer(0, MAX_AMOUNT_FEN, "消费积分的最低金额（分）")
    purchase_daily_cap_points = _required_integer(
        0, MAX_DAILY_CAP_POINTS, "每人每日消费积分上限，0 表示不设上限"
    )
    expiry_policy = ma.fields.Enum(
        ExpiryPolicy,
        by_value=True,
        required=True,
        metadata={"description": "end_of_next_year：次年年底清零；days_after_earning：获得后 N 天过期"},
    )
    expiry_days = _required_integer(1, 3650, "days_after_earning 时积分的有效天数")
    welcome_coupon_template_id = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "新会员注册时发放的优惠券模板，null 为不发"},
    )


class PointsSettingsOut(PointsSettingsIn):
    updated_at = ma.fields.DateTime(allow_none=True, metadata={"description": "从未保存过时为 null"})
    updated_by_operator_id = ma.fields.Integer(allow_none=True)


class EarningRateIn(ma.Schema):
    category = ma.fields.String(
        required=True,
        validate=validate.Length(1, 32),
        metadata={"description": "门店业态，如 餐饮；* 为其他业态通用的规则"},
    )
    spend_unit_fen = _required_integer(1, MAX_AMOUNT_FEN, "每消费满多少分")
    points_per_unit = _required_integer(0, MAX_POINTS, "得多少积分")


class EarningRateOut(EarningRateIn):
    id = ma.fields.Integer()


class PointsPromotionIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    starts_on = ma.fields.Date(
        required=True,
        validate=date_range(),
        metadata={"description": "开始日期（含，商场时区）"},
    )
    ends_on = ma.fields.Date(
        required=True, validate=date_range(), metadata={"description": "结束日期（含），不早于开始日期"}
    )
    multiplier_percent = _required_integer(100, MAX_MULTIPLIER_PERCENT, "积分倍率，200 表示双倍积分")
    category = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 32),
        metadata={"description": "只对该业态生效；不填对所有业态生效"},
    )
    is_active = ma.fields.Boolean(load_default=True)


class PointsPromotionOut(PointsPromotionIn):
    id = ma.fields.Integer()


class CheckInBonusIn(ma.Schema):
    streak_days = _required_integer(2, 366, "连续签到第几天发放")
    bonus_points = _required_integer(1, MAX_POINTS, "额外奖励的积分")


class CheckInBonusOut(CheckInBonusIn):
    id = ma.fields.Integer()


class AdminTierIn(ma.Schema):
    code = ma.fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9_]{1,32}$", error="只能包含小写字母、数字和下划线，最长 32 位"),
        metadata={"description": "等级代码，如 gold"},
    )
    name = ma.fields.String(
        required=True, validate=validate.Length(1, 32), metadata={"description": "如 金卡"}
    )
    rank = _required_integer(1, 100, "等级序号：越大等级越高，最小的为新会员的初始等级")
    min_annual_spend_fen = _required_integer(
        0, MAX_ANNUAL_SPEND_FEN, "近 12 个月消费达到多少分可升至该等级；须随等级升高而提高"
    )
    points_multiplier_percent = _required_integer(100, MAX_MULTIPLIER_PERCENT, "积分倍率，150 表示 1.5 倍")
    free_parking_minutes_per_day = _required_integer(0, 1440, "每日免费停车分钟数")
    birthday_coupon_template_id = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "生日月发放给该等级会员的优惠券模板，null 为不发"},
    )


class AdminTierOut(AdminTierIn):
    id = ma.fields.Integer()
    benefits = ma.fields.Function(
        tiers.benefits, metadata={"description": "等级权益说明（由上面的字段生成）"}
    )


class PointsAdjustmentIn(ma.Schema):
    delta = ma.fields.Integer(
        strict=True,
        required=True,
        validate=[
            validate.Range(min=-MAX_POINTS, max=MAX_POINTS, error=f"绝对值不能超过 {MAX_POINTS}"),
            validate.NoneOf([0], error="调整积分不能为 0"),
        ],
        metadata={"description": "正数为增加，负数为扣减（不能超过可用积分）"},
    )
    reason = ma.fields.String(
        required=True,
        validate=[validate.Length(1, 100), validate.Regexp(r"\s*\S", error="不能为空白")],
        metadata={"description": "调整原因，记入积分明细"},
    )


class IdempotencyKeyHeaders(ma.Schema):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=validate.Length(1, 128),
        metadata={"description": "请求编号：重试时带同一编号只调整一次；不带则每次请求都是新的调整"},
    )


class AdminPointsEntryOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.Enum(PointsEntryKind, by_value=True)
    delta = ma.fields.Integer(metadata={"description": "正数为获得，负数为扣减"})
    balance_after = ma.fields.Integer()
    debt_after = ma.fields.Integer()
    description = ma.fields.String()
    reference = ma.fields.String(allow_none=True, metadata={"description": "来源，如 purchase:42"})
    operator_id = ma.fields.Integer(allow_none=True, metadata={"description": "人工调整的运营人员"})
    staff_id = ma.fields.Integer(allow_none=True, metadata={"description": "登记消费或退货的员工"})
    business_date = ma.fields.Date()
    created_at = ma.fields.DateTime()


class AdminPointsEntriesOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AdminPointsEntryOut), required=True)
    next_cursor = ma.fields.Integer(
        allow_none=True, metadata={"description": "下一页的 cursor；为 null 表示没有更多"}
    )


class AdminEntriesPageArgs(ma.Schema):
    cursor = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class MemberPointsOut(ma.Schema):
    balance = ma.fields.Integer(required=True, metadata={"description": "可用积分"})
    debt = ma.fields.Integer(required=True, metadata={"description": "退货扣回不足形成的欠分"})
    expiring_soon = ma.fields.Integer(required=True, metadata={"description": "30 天内将过期的积分"})
    expiring_before = ma.fields.Date(required=True, validate=date_range())
    next_expiry_on = ma.fields.Date(allow_none=True, metadata={"description": "最近一批积分的到期日"})

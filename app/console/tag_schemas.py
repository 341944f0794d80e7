"""Request and response shapes of tags, rule previews, segmentation settings and KPIs."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT, date_range
from app.models.tag import TagKind, TagSource
from app.services import kpis

RULE_DESCRIPTION = (
    '标签规则：{"all": [条件, ...]} 或 {"any": [条件, ...]}（可嵌套），条件为 '
    '{"field": 字段, "op": 运算, "value": 值}；字段与运算见 GET /tag-rules/fields'
)


class TagRuleIn(ma.Schema):
    rule = ma.fields.Dict(required=True, metadata={"description": RULE_DESCRIPTION})


class TagRuleFieldOut(ma.Schema):
    field = ma.fields.String()
    label = ma.fields.String()
    ops = ma.fields.List(ma.fields.String())
    value_type = ma.fields.String(metadata={"description": "int / str / bool"})
    choices = ma.fields.List(
        ma.fields.String(), allow_none=True, metadata={"description": "可选值（有限集合时）"}
    )


class MemberBriefOut(ma.Schema):
    id = ma.fields.Integer()
    nickname = ma.fields.String(allow_none=True)
    phone_masked = ma.fields.String()
    tier_name = ma.fields.String()
    joined_at = ma.fields.AwareDateTime()


class PreviewOut(ma.Schema):
    count = ma.fields.Integer(metadata={"description": "当前命中的会员数"})
    sample = ma.fields.List(
        ma.fields.Nested(MemberBriefOut), metadata={"description": "按会员号排序的前 10 位"}
    )


class TagIn(ma.Schema):
    code = ma.fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9_\-]{2,48}$", error="2–48 位小写字母、数字、下划线或连字符"),
        metadata={"description": "标签编码（系统标签以 rfm: / lifecycle: 开头，不能使用）"},
    )
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    kind = ma.fields.Enum(
        TagKind, by_value=True, required=True, validate=validate.OneOf([TagKind.RULE, TagKind.MANUAL])
    )
    rule = ma.fields.Dict(load_default=None, metadata={"description": "规则标签必填。" + RULE_DESCRIPTION})
    description = ma.fields.String(load_default=None, validate=validate.Length(max=500))


class TagUpdateIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    rule = ma.fields.Dict(load_default=None, metadata={"description": "规则标签必填"})
    description = ma.fields.String(load_default=None, validate=validate.Length(max=500))
    active = ma.fields.Boolean(
        required=True, metadata={"description": "停用的规则标签在下次刷新时从会员身上移除"}
    )


class TagOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.Enum(TagKind, by_value=True)
    rule = ma.fields.Dict(allow_none=True)
    description = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean()
    members = ma.fields.Integer(metadata={"description": "当前持有该标签的会员数（最近一次刷新后）"})


class HoldersArgs(ma.Schema):
    after = ma.fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_INT),
        metadata={"description": "上一页最后的会员号"},
    )
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class HolderOut(ma.Schema):
    id = ma.fields.Integer()
    nickname = ma.fields.String(allow_none=True)
    phone_masked = ma.fields.String()
    source = ma.fields.Enum(TagSource, by_value=True)
    since = ma.fields.AwareDateTime()


class MemberTagOut(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "标签 id"})
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.Enum(TagKind, by_value=True)
    source = ma.fields.Enum(TagSource, by_value=True)
    since = ma.fields.AwareDateTime()


class MemberTagHistoryOut(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "标签 id"})
    code = ma.fields.String()
    name = ma.fields.String()
    source = ma.fields.Enum(TagSource, by_value=True)
    since = ma.fields.AwareDateTime()
    until = ma.fields.AwareDateTime()


class MemberTagsOut(ma.Schema):
    current = ma.fields.List(ma.fields.Nested(MemberTagOut))
    history = ma.fields.List(ma.fields.Nested(MemberTagHistoryOut))


class SegmentationSettingsIn(ma.Schema):
    rfm_window_days = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=30, max=1095))
    new_member_days = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=365))
    dormant_after_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=2, max=1095)
    )
    churned_after_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=3, max=1095)
    )

    @ma.validates_schema
    def thresholds_in_order(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data["dormant_after_days"] < data["churned_after_days"]:
            raise ma.ValidationError("沉睡天数须小于流失天数", "churned_after_days")


class SegmentationSettingsOut(SegmentationSettingsIn):
    pass


class KpiArgs(ma.Schema):
    from_ = ma.fields.Date(
        required=True,
        data_key="from",
        validate=date_range(),
        metadata={"description": "起始营业日（含）"},
    )
    to = ma.fields.Date(required=True, validate=date_range(), metadata={"description": "结束营业日（含）"})
    store_id = ma.fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_INT),
        metadata={"description": "门店，0 为全场"},
    )

    @ma.validates_schema
    def at_most_a_year(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["to"] < data["from_"]:
            raise ma.ValidationError("结束日期不能早于起始日期", "to")
        if (data["to"] - data["from_"]).days > 366:
            raise ma.ValidationError("一次最多查询 366 天", "to")


def _ratio(numerator: str, denominator: str) -> ma.fields.Function:
    def compute(row: Any) -> float | None:
        value = kpis.rate(getattr(row, numerator), getattr(row, denominator))
        return None if value is None else round(float(value), 4)

    return ma.fields.Function(
        compute, metadata={"description": f"{numerator} / {denominator}，保留 4 位小数"}
    )


class KpiDayOut(ma.Schema):
    business_date = ma.fields.Date()
    store_id = ma.fields.Integer()
    members_total = ma.fields.Integer()
    new_members = ma.fields.Integer()
    active_30d = ma.fields.Integer()
    active_90d = ma.fields.Integer()
    previous_active_30d = ma.fields.Integer()
    churned_30d = ma.fields.Integer()
    repeat_buyers_90d = ma.fields.Integer()
    member_purchases = ma.fields.Integer()
    member_sales_fen = ma.fields.Integer()
    non_member_purchases = ma.fields.Integer()
    non_member_sales_fen = ma.fields.Integer()
    points_issued = ma.fields.Integer()
    points_spent = ma.fields.Integer()
    points_expired = ma.fields.Integer()
    coupons_issued = ma.fields.Integer()
    coupons_used = ma.fields.Integer()
    tier_distribution = ma.fields.Dict(allow_none=True)
    segment_distribution = ma.fields.Dict(allow_none=True)
    activation_rate = _ratio("active_30d", "members_total")
    churn_rate = _ratio("churned_30d", "previous_active_30d")
    repurchase_rate = _ratio("repeat_buyers_90d", "active_90d")
    member_share_of_sales = ma.fields.Function(
        lambda row: _share(row.member_sales_fen, row.non_member_sales_fen),
        metadata={"description": "会员销售额 / 全部销售额（含非会员），保留 4 位小数"},
    )
    average_ticket_fen = ma.fields.Function(
        lambda row: row.member_sales_fen // row.member_purchases if row.member_purchases else None,
        metadata={"description": "会员客单价（分）"},
    )


def _share(member: int, non_member: int) -> float | None:
    value = kpis.rate(member, member + non_member)
    return None if value is None else round(float(value), 4)


class SegmentIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    rule = ma.fields.Dict(
        required=True, metadata={"description": "可使用 tag 字段组合标签。" + RULE_DESCRIPTION}
    )
    description = ma.fields.String(load_default=None, validate=validate.Length(max=500))


class SegmentOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    rule = ma.fields.Dict()
    description = ma.fields.String(allow_none=True)
    members = ma.fields.Integer(metadata={"description": "当前人数（实时计算，标签以最近一次刷新为准）"})


class SegmentMemberOut(ma.Schema):
    id = ma.fields.Integer()
    nickname = ma.fields.String(allow_none=True)
    phone_masked = ma.fields.String()

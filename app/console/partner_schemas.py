"""Request and response shapes of the admin API for partners (合作方)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class PartnerRulesIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    activity_unit = ma.fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "每满多少活动量（如 100 千卡）计一次积分"},
    )
    points_per_unit = ma.fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=1_000),
        metadata={"description": "每满一个活动单位得多少积分"},
    )
    daily_cap_points = ma.fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=1_000_000),
        metadata={"description": "每位会员每天从该合作方最多获得的积分，0 表示不设上限"},
    )


class PartnerIn(PartnerRulesIn):
    code = ma.fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9_-]{2,32}$", error="只能包含小写字母、数字、下划线和连字符，长度 2 到 32"
        ),
        metadata={"description": "合作方编码，签名请求头 X-Partner-Code 的值，创建后不可修改"},
    )


class PartnerUpdateIn(PartnerRulesIn):
    is_active = ma.fields.Boolean(required=True, metadata={"description": "停用后该合作方的请求一律拒绝"})


class PartnerOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    activity_unit = ma.fields.Integer()
    points_per_unit = ma.fields.Integer()
    daily_cap_points = ma.fields.Integer()
    is_active = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


class PartnerWithSecretOut(PartnerOut):
    secret = ma.fields.String(
        metadata={"description": "签名密钥：仅在创建和更换密钥时返回一次，请妥善交给合作方"}
    )

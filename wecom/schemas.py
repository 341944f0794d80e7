"""Request and response shapes of the staff API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

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
    id = ma.fields.Integer()
    phone = ma.fields.String(attribute="phone_masked")
    nickname = ma.fields.String(allow_none=True)
    tier = ma.fields.Function(lambda member: {"code": member.tier.code, "name": member.tier.name})
    points_balance = ma.fields.Integer()

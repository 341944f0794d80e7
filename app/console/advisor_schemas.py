"""Request and response shapes of the operators' advisor endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.models import AssignmentEnd, AssignmentReason


class ContactWayOut(ma.Schema):
    staff_id = ma.fields.Integer()
    config_id = ma.fields.String(metadata={"description": "企业微信「联系我」配置 ID"})
    qr_code = ma.fields.String(allow_none=True, metadata={"description": "联系我二维码图片地址"})
    state = ma.fields.String(metadata={"description": "渠道参数，客户添加时随回调返回"})
    created_at = ma.fields.DateTime()


class ReassignIn(ma.Schema):
    to_staff_id = ma.fields.Integer(
        strict=True,
        required=True,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "接手的导购；null 表示退回各自门店的待认领池"},
    )


class ReassignOut(ma.Schema):
    moved = ma.fields.Integer(required=True, metadata={"description": "转出的会员数"})


class AssignmentOut(ma.Schema):
    staff_id = ma.fields.Integer()
    reason = ma.fields.Enum(AssignmentReason, by_value=True)
    assigned_at = ma.fields.DateTime()
    ended_at = ma.fields.DateTime(allow_none=True)
    end_reason = ma.fields.Enum(AssignmentEnd, by_value=True, allow_none=True)
    assigned_by_operator_id = ma.fields.Integer(allow_none=True)
    ended_by_operator_id = ma.fields.Integer(allow_none=True)

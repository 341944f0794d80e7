"""Request and response shapes of the operators' advisor endpoints."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT
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
        validate=validate.Range(min=1, max=MAX_INT),
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


class AdvisorKpiArgs(ma.Schema):
    from_ = ma.fields.Date(required=True, data_key="from", metadata={"description": "起始营业日（含）"})
    to = ma.fields.Date(required=True, metadata={"description": "结束营业日（含）"})
    store_id = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "门店；不填为全部门店"},
    )

    @ma.validates_schema
    def at_most_a_year(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["to"] < data["from_"]:
            raise ma.ValidationError("结束日期不能早于起始日期", "to")
        if (data["to"] - data["from_"]).days > 366:
            raise ma.ValidationError("一次最多查询 366 天", "to")


class AdvisorKpiRowOut(ma.Schema):
    advisor_id = ma.fields.Integer(allow_none=True, metadata={"description": "导购；门店汇总行为 null"})
    advisor_name = ma.fields.String(allow_none=True)
    store_id = ma.fields.Integer(allow_none=True)
    bound_members = ma.fields.Integer(metadata={"description": "当前绑定的会员数"})
    tasks_generated = ma.fields.Integer(metadata={"description": "期间生成的任务数"})
    tasks_done = ma.fields.Integer(metadata={"description": "其中已完成"})
    tasks_overdue = ma.fields.Integer(metadata={"description": "其中逾期（已过期或超过截止日仍未完成）"})
    completion_rate = ma.fields.Float(allow_none=True, metadata={"description": "完成率 = 已完成 / 生成"})
    contacted_members = ma.fields.Integer(metadata={"description": "完成任务涉及的会员数"})
    converted_members = ma.fields.Integer(metadata={"description": "完成任务后 7 天内有消费的会员数"})
    conversion_rate = ma.fields.Float(
        allow_none=True, metadata={"description": "转化率 = 转化会员 / 完成任务涉及的会员"}
    )
    converted_sales_fen = ma.fields.Integer(metadata={"description": "这些消费的金额（分，扣除退货）"})
    new_members = ma.fields.Integer(metadata={"description": "期间通过其二维码注册的新会员数"})


class AdvisorKpisOut(ma.Schema):
    advisors = ma.fields.List(ma.fields.Nested(AdvisorKpiRowOut), metadata={"description": "按导购"})
    stores = ma.fields.List(ma.fields.Nested(AdvisorKpiRowOut), metadata={"description": "按门店汇总"})

"""Request and response shapes of the partner API."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT, instant_range


class ActivityCreditIn(ma.Schema):
    event_id = ma.fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "合作方的事件编号：同一合作方的同一事件只积分一次"},
    )
    member_id = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "会员编号（与 phone 二选一）"},
    )
    phone = ma.fields.String(
        load_default=None,
        validate=validate.Regexp(r"^1[0-9]{10}$", error="手机号应为 11 位数字"),
        metadata={"description": "会员手机号，11 位（与 member_id 二选一）"},
    )
    activity = ma.fields.String(
        required=True, validate=validate.Length(1, 32), metadata={"description": "活动类型，如 running"}
    )
    amount = ma.fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "活动量，按合作方约定的单位（如千卡）"},
    )
    occurred_at = ma.fields.AwareDateTime(
        required=True, validate=instant_range(), metadata={"description": "活动发生时间（带时区）"}
    )

    @ma.validates_schema
    def _one_way_to_name_the_member(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("member_id") is not None and data.get("phone") is not None:
            raise ma.ValidationError("会员编号与手机号只能填写一个", field_name="phone")
        if data.get("member_id") is None and data.get("phone") is None:
            raise ma.ValidationError("请填写会员编号或手机号", field_name="member_id")


class ActivityCreditOut(ma.Schema):
    event_id = ma.fields.String(required=True)
    member_id = ma.fields.Integer(required=True)
    points = ma.fields.Integer(required=True, metadata={"description": "本次实际获得的积分（可能为 0）"})
    capped = ma.fields.Boolean(required=True, metadata={"description": "是否因每日上限而少得积分"})

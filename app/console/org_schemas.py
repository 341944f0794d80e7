"""Form and filter shapes of the console's organisation pages: audit log, job runs, stores, staff,
operators, advisors and QR scenes."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT, date_range
from app.models import OperatorRole, StaffRole

OPERATOR_PASSWORD_MIN_LENGTH = 10


class DateRangeArgs(ma.Schema):
    from_ = ma.fields.Date(load_default=None, data_key="from", validate=date_range())
    to = ma.fields.Date(load_default=None, validate=date_range())

    @ma.validates_schema
    def ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("from_") and data.get("to") and data["to"] < data["from_"]:
            raise ma.ValidationError("结束日期不能早于起始日期", "to")
        if data.get("from_") and data.get("to") and (data["to"] - data["from_"]).days > 366:
            raise ma.ValidationError("一次最多查询 366 天", "to")


class AuditFilterArgs(DateRangeArgs):
    operator_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    action = ma.fields.String(load_default=None, validate=validate.Length(max=64))
    target_type = ma.fields.String(load_default=None, validate=validate.Length(max=32))
    target_id = ma.fields.String(load_default=None, validate=validate.Length(max=64))
    before = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class StoreIn(ma.Schema):
    code = ma.fields.String(required=True, validate=validate.Length(1, 32))
    name = ma.fields.String(required=True, validate=validate.Length(1, 100))
    category = ma.fields.String(required=True, validate=validate.Length(1, 32))
    floor = ma.fields.String(load_default=None, validate=validate.Length(max=16))


class StaffIn(ma.Schema):
    wecom_userid = ma.fields.String(
        required=True,
        validate=[
            validate.Length(1, 64),
            validate.Regexp(r"^[A-Za-z0-9_.@-]+$", error="只能包含字母、数字和 _ . @ -"),
        ],
    )
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    role = ma.fields.Enum(StaffRole, by_value=True, required=True)
    store_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class StaffUpdateIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    role = ma.fields.Enum(StaffRole, by_value=True, required=True)
    store_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class OperatorIn(ma.Schema):
    username = ma.fields.String(
        required=True,
        validate=[
            validate.Length(2, 64),
            validate.Regexp(r"^[A-Za-z0-9_.-]+$", error="只能包含字母、数字和 _ . -"),
        ],
    )
    display_name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    role = ma.fields.Enum(OperatorRole, by_value=True, required=True)
    store_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(OPERATOR_PASSWORD_MIN_LENGTH, 128)
    )


class OperatorUpdateIn(ma.Schema):
    display_name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    role = ma.fields.Enum(OperatorRole, by_value=True, required=True)
    store_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class PasswordResetIn(ma.Schema):
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(OPERATOR_PASSWORD_MIN_LENGTH, 128)
    )


ADVISOR_SORTS = ("completion_rate", "conversion_rate", "converted_sales_fen", "bound_members")


class AdvisorBoardArgs(DateRangeArgs):
    store_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    sort = ma.fields.String(load_default="completion_rate", validate=validate.OneOf(ADVISOR_SORTS))

"""The information desk (服务台) looks up a plate: who holds it and its parking payments."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from app import idempotency
from app.auth import BEARER_SECURITY, staff_required
from app.db import transaction
from app.errors import NotFound, raises
from app.integrations import carpark
from app.models import ParkingPaymentStatus
from app.services import parking, plates

blp = Blueprint(
    "staff_parking", __name__, url_prefix="/api/staff/v1", description="员工（企业微信）：车牌停车记录查询"
)
idempotency.enable(blp)


class PlateRecordArgs(ma.Schema):
    plate = ma.fields.String(required=True, validate=validate.Length(1, 32))


class PlateHolderOut(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.String(attribute="phone_masked")
    nickname = ma.fields.String(allow_none=True)


class StaffParkingPaymentOut(ma.Schema):
    id = ma.fields.Integer()
    order_no = ma.fields.String()
    entry_time = ma.fields.DateTime()
    parking_minutes = ma.fields.Integer()
    fee_fen = ma.fields.Integer()
    deduction_fen = ma.fields.Integer()
    amount_due_fen = ma.fields.Integer()
    points = ma.fields.Integer()
    status = ma.fields.Enum(ParkingPaymentStatus, by_value=True)
    failure_message = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


class PlateRecordOut(ma.Schema):
    plate = ma.fields.String()
    member = ma.fields.Nested(PlateHolderOut, allow_none=True, metadata={"description": "未绑定时为 null"})
    payments = ma.fields.List(
        ma.fields.Nested(StaffParkingPaymentOut), metadata={"description": "最近 20 笔"}
    )


@blp.route("/parking/records", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@staff_required()
@blp.arguments(PlateRecordArgs(), location="query")
@blp.response(200, PlateRecordOut)
@raises(carpark.CarNotInLot, NotFound, plates.PlateInvalid, carpark.CarParkUnavailable)
def plate_record(args: dict[str, Any]) -> parking.PlateRecord:
    """按车牌查询绑定会员（手机号脱敏）与最近的停车缴费记录，供服务台解答顾客疑问"""
    with transaction() as session:
        return parking.plate_record(session, args["plate"])

"""Parking rules and parking payment records, for operators."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.parking_schemas import (
    ParkingPaymentArgs,
    ParkingPaymentPageOut,
    ParkingRulesIn,
    ParkingRulesOut,
)
from app.db import run_transaction, transaction
from app.errors import ValidationFailed, raises
from app.extensions import mall_time
from app.models import ParkingRules
from app.services import parking, plates

blp = Blueprint(
    "admin_parking", __name__, url_prefix="/api/admin/v1", description="运营后台：停车规则与停车缴费记录"
)


@blp.route("/parking-rules", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, ParkingRulesOut)
def get_parking_rules() -> ParkingRules:
    """停车抵扣规则（从未保存过时为系统默认值）；等级免费时长在会员等级中设置"""
    with transaction() as session:
        return parking.parking_rules(session)


@blp.route("/parking-rules", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(ParkingRulesIn())
@blp.response(200, ParkingRulesOut)
@raises(ValidationFailed)
def save_parking_rules(args: dict[str, Any]) -> ParkingRules:
    """保存停车抵扣规则（需提交全部字段）；对此后的报价生效"""
    values = parking.RulesValues(**args)
    operator_id, at = current_operator().id, mall_time()
    return run_transaction(
        lambda session: parking.save_rules(session, values, operator_id=operator_id, at=at)
    )


@blp.route("/parking-payments", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(ParkingPaymentArgs(), location="query")
@blp.response(200, ParkingPaymentPageOut)
@raises(plates.PlateInvalid)
def list_parking_payments(args: dict[str, Any]) -> dict[str, Any]:
    """停车缴费记录（新的在前），可按状态、车牌、会员、营业日筛选"""
    at = mall_time()
    filters = parking.PaymentFilter(
        status=args["status"],
        plate=args["plate"],
        member_id=args["member_id"],
        created_from=at.start_of(args["date_from"]) if args["date_from"] else None,
        created_before=at.start_of(args["date_to"] + timedelta(days=1)) if args["date_to"] else None,
    )
    with transaction() as session:
        items, total = parking.list_payments(
            session, filters, offset=(args["page"] - 1) * args["per_page"], limit=args["per_page"]
        )
    return {"items": items, "total": total}

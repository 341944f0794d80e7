"""Parking for shoppers: my plates, a quote for a car in the lot, paying it down."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from app import idempotency
from app.auth import BEARER_SECURITY, current_wechat_account_id, wechat_account_required
from app.db import run_transaction, transaction
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import extensions, mall_time
from app.integrations import carpark
from app.integrations.carpark import (
    CarParkClient,
    CarParkNoAnswer,
    CarParkNotReached,
    CarParkRejected,
    ParkingFee,
)
from app.mall_time import MallTime
from app.models import MemberPlate, ParkingPayment, ParkingQuote
from app.services import coupons, members, parking, plates
from miniprogram_api.parking_schemas import (
    PaymentHeaders,
    PaymentIn,
    PaymentOut,
    PlateIn,
    PlateOut,
    QuoteArgs,
    QuoteOut,
)
from miniprogram_api.views.privacy import acting_member_id

blp = Blueprint("mp_parking", __name__, url_prefix="/api/mp/v1", description="小程序：车牌与停车缴费")
idempotency.enable(blp)


@blp.route("/me/plates", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, PlateOut(many=True))
@raises(members.MemberNotRegistered)
def my_plates() -> list[MemberPlate]:
    """我绑定的车牌（最多 3 个）"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        return plates.member_plates(session, member_id)


@blp.route("/me/plates", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(PlateIn())
@blp.response(201, PlateOut, description="新绑定的车牌")
@blp.alt_response(200, schema=PlateOut, description="该车牌已绑定在我名下")
@raises(NotFound, plates.PlateBoundToOtherMember, plates.PlateLimitReached, plates.PlateInvalid)
def bind_plate(args: dict[str, Any]) -> tuple[MemberPlate, int]:
    """绑定车牌；已被其他会员绑定的车牌返回 409"""
    at = mall_time()

    def work(session: Session) -> tuple[MemberPlate, bool]:
        member_id = acting_member_id(session)
        return plates.bind(session, member_id, args["plate"], at=at)

    plate, created = run_transaction(work)
    return plate, 201 if created else 200


@blp.route("/me/plates/<string:plate>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(204)
@raises(members.MemberNotRegistered, NotFound, plates.PlateNotBound, plates.PlateInvalid)
def unbind_plate(plate: str) -> None:
    """解绑车牌"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        plates.unbind(session, member_id, plate)


@dataclass(frozen=True)
class QuoteView:
    quote: ParkingQuote
    breakdown: parking.Breakdown
    available_coupon_ids: list[int]
    points_terms: dict[str, int]


@blp.route("/me/parking/quote", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(QuoteArgs(), location="query")
@blp.response(200, QuoteOut)
@raises(
    carpark.CarNotInLot,
    members.MemberNotRegistered,
    plates.PlateNotBound,
    parking.FeeChanged,
    plates.PlateBoundToOtherMember,
    parking.VisitAlreadyPaid,
    parking.CouponNotNeeded,
    plates.PlateInvalid,
    parking.PointsOverLimit,
    carpark.CarParkUnavailable,
)
def quote(args: dict[str, Any]) -> QuoteView:
    """查询停车费：入场时间、时长、费用，以及依次按等级免费时长、消费满额免费时长、停车券、积分抵扣后
    还需支付的金额；报价几分钟内有效"""
    at = mall_time()
    carpark = extensions().carpark
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        context = parking.quote_context(session, member_id, args["plate"], at=at)
    # The car park is asked outside any transaction: no lock or connection waits on it.
    priced = parking.price(context, partial(_fee, carpark, context.plate))
    saved = run_transaction(lambda session: parking.save_quote(session, context, priced, at=at))
    return QuoteView(
        quote=saved,
        breakdown=priced.breakdown,
        available_coupon_ids=[coupon.id for coupon in context.coupons],
        points_terms={
            "points_per_yuan": context.points_per_yuan,
            "max_points": min(context.points_balance, priced.points_limit),
            "balance": context.points_balance,
        },
    )


@blp.route("/me/parking/payments", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(PaymentIn())
@blp.arguments(PaymentHeaders(), location="headers")
@blp.response(201, PaymentOut, description="抵扣已被停车场接受（status=paid）")
@blp.alt_response(202, schema=PaymentOut, description="停车场未及时答复（status=unknown），稍后自动核对")
@blp.alt_response(200, schema=PaymentOut, description="同一请求编号重试：返回原缴费记录")
@raises(
    carpark.CarNotInLot,
    coupons.CouponNotFound,
    parking.QuoteNotFound,
    coupons.CouponExpired,
    coupons.CouponNotYetValid,
    coupons.CouponUsed,
    parking.FeeChanged,
    parking.NothingToPay,
    parking.PaymentKeyConflict,
    parking.PaymentRefused,
    parking.QuoteExpired,
    parking.QuoteUsed,
    parking.CouponNotForParking,
    parking.CouponNotNeeded,
    parking.PointsOverLimit,
    ValidationFailed,
    carpark.CarParkUnavailable,
    parking.PaymentNotDelivered,
)
def pay(args: dict[str, Any], headers: dict[str, Any]) -> tuple[ParkingPayment, int]:
    """按报价缴费：扣积分、用停车券和免费时长（同一事务），再通知停车场；停车场拒绝或无法连接时全部退回。
    停车费有变化时返回 409，请重新查询"""
    at = mall_time()
    carpark = extensions().carpark
    key = headers["idempotency_key"]
    with transaction() as session:
        member_id = acting_member_id(session)
        context = parking.payment_context(
            session,
            member_id,
            args["quote_id"],
            coupon_ids=args["coupon_ids"],
            points_chosen=args["points"],
            idempotency_key=key,
            at=at,
        )
    if context.existing_payment is not None:
        return context.existing_payment, 200
    priced = parking.price(context, partial(_fee, carpark, context.plate))
    parking.check_as_quoted(context, priced)
    payment, created = run_transaction(
        partial(parking.reserve, context=context, priced=priced, idempotency_key=key, at=at)
    )
    if not created:
        return payment, 200
    return _tell_car_park(carpark, payment, at)


def _fee(carpark: CarParkClient, plate: str, free_minutes: int) -> ParkingFee:
    return carpark.query_fee(plate, free_minutes=free_minutes)


def _tell_car_park(
    carpark: CarParkClient, payment: ParkingPayment, at: MallTime
) -> tuple[ParkingPayment, int]:
    """Tell the car park outside any transaction, then settle: paid, refunded, or left for reconciliation."""
    try:
        carpark.notify_discount(parking.discount_notice(payment))
    except CarParkRejected as exc:
        run_transaction(
            partial(parking.refund, payment_id=payment.id, code=str(exc.code), message=exc.msg, at=at)
        )
        details = {"payment_id": payment.id, "carpark_code": exc.code, "carpark_message": exc.msg}
        if exc.fee_changed:
            raise parking.FeeChanged(details=details) from exc
        raise parking.PaymentRefused(details=details) from exc
    except CarParkNotReached as exc:
        run_transaction(
            partial(
                parking.refund, payment_id=payment.id, code="NOT_REACHED", message="停车场系统无法连接", at=at
            )
        )
        raise parking.PaymentNotDelivered(details={"payment_id": payment.id}) from exc
    except CarParkNoAnswer as exc:
        unknown = run_transaction(
            partial(parking.mark_unknown, payment_id=payment.id, reason=str(exc), at=at)
        )
        return unknown, 202
    return run_transaction(partial(parking.mark_paid, payment_id=payment.id, at=at)), 201

"""Verifying coupons at the counter (核销), and undoing a mistaken verification."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import idempotency
from app.auth import BEARER_SECURITY, current_staff, staff_required
from app.db import transaction
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.models import StaffRole
from app.ratelimit import LimitKind
from app.services import coupons
from app.throttling import code_verification, rate_limited
from wecom.schemas import CouponRedemptionIn, CouponRedemptionOut

blp = Blueprint(
    "staff_coupons", __name__, url_prefix="/api/staff/v1", description="员工（企业微信）：优惠券核销"
)
idempotency.enable(blp)


@blp.route("/coupon-redemptions", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@rate_limited(LimitKind.VERIFY)
@code_verification
@blp.arguments(CouponRedemptionIn())
@blp.response(201, CouponRedemptionOut)
@raises(
    coupons.CouponCodeExpired,
    coupons.CouponCodeInvalid,
    NotFound,
    coupons.CouponExpired,
    coupons.CouponNotYetValid,
    coupons.CouponUsed,
    coupons.MinimumSpendNotMet,
    coupons.NotForCounter,
    coupons.OrderAmountRequired,
    coupons.StoreNotEligible,
)
def redeem(args: dict[str, Any]) -> coupons.Redemption:
    """扫券核销：校验归属、有效期、适用门店与使用门槛，返回应抵扣金额；每张券只能核销一次"""
    with transaction() as session:
        return coupons.redeem(
            session,
            args["code"],
            args["store_id"],
            args["order_amount_fen"],
            staff=current_staff(),
            signer=extensions().coupon_code_signer,
            at=mall_time(),
        )


@blp.route("/coupon-redemptions/<int:redemption_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@blp.response(200, CouponRedemptionOut)
@raises(coupons.UndoOtherStore, coupons.RedemptionNotFound, coupons.UndoWindowPassed)
def undo(redemption_id: int) -> coupons.Redemption:
    """撤销误核销：仅限本门店、核销后 10 分钟内；券恢复可用"""
    with transaction() as session:
        return coupons.undo_redemption(session, redemption_id, staff=current_staff(), at=mall_time())

"""Coupons for shoppers: what can be claimed, claiming (free or with points), my coupons, a coupon's code."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from app import idempotency, qr
from app.auth import BEARER_SECURITY, current_wechat_account_id, wechat_account_required
from app.db import transaction
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.models import Coupon, CouponTemplate
from app.ratelimit import LimitKind
from app.services import consents, coupon_claims, coupons, members, points
from app.throttling import rate_limited
from miniprogram_api.schemas import (
    ClaimableTemplateOut,
    ClaimHeaders,
    CouponCodeOut,
    CouponOut,
    MyCouponsArgs,
)

blp = Blueprint("mp_coupons", __name__, url_prefix="/api/mp/v1", description="小程序：优惠券与积分商城")
idempotency.enable(blp)


@blp.route("/coupon-templates", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, ClaimableTemplateOut(many=True))
def claimable_templates() -> list[CouponTemplate]:
    """可领取 / 可兑换的优惠券"""
    with transaction() as session:
        return coupons.claimable_templates(session, at=mall_time())


def _known_sold_out(template_id: int) -> None:
    """A flash claim refused from memory, without the database (app.services.coupon_claims)."""
    key = request.headers.get(idempotency.HEADER, "")
    if extensions().claim_shortcut.refuses(template_id, current_wechat_account_id(), key):
        raise coupons.SoldOut()


@blp.route("/coupon-templates/<int:template_id>/claims", methods=["POST"])
@idempotency.refuse_first(_known_sold_out)
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@rate_limited(LimitKind.CLAIM)
@blp.arguments(ClaimHeaders(), location="headers")
@blp.response(201, CouponOut, description="领到的优惠券")
@blp.alt_response(200, schema=CouponOut, description="同一请求编号重试：返回已领到的券")
@raises(
    consents.ConsentRenewalRequired,
    coupons.NotEligible,
    coupons.CouponTemplateNotFound,
    members.MemberNotRegistered,
    NotFound,
    coupons.CouponNotAvailable,
    coupons.DailyLimitReached,
    points.IdempotencyConflict,
    points.InsufficientPoints,
    coupons.IssueKeyConflict,
    coupons.LimitReached,
    coupons.OutsideClaimWindow,
    coupons.SoldOut,
)
def claim(headers: dict[str, Any], template_id: int) -> tuple[Coupon, int]:
    """领券；积分商城的券同时扣除积分（要么都成功，要么都不发生）"""
    coupon, created = coupon_claims.claim_for_shopper(
        current_wechat_account_id(),
        template_id,
        request_key=headers["idempotency_key"],
        at=mall_time(),
        shortcut=extensions().claim_shortcut,
        policy_version=extensions().config.PRIVACY_POLICY_VERSION,
    )
    return coupon, 201 if created else 200


@blp.route("/me/coupons", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(MyCouponsArgs(), location="query")
@blp.response(200, CouponOut(many=True))
@raises(members.MemberNotRegistered)
def my_coupons(args: dict[str, Any]) -> list[Coupon]:
    """我的优惠券（可用 / 已使用 / 已过期）"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        return coupons.member_coupons(session, member_id, status=args["status"], at=mall_time())


@blp.route("/me/coupons/<int:coupon_id>/code", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, CouponCodeOut)
@raises(
    coupons.CouponNotFound,
    members.MemberNotRegistered,
    coupons.CouponExpired,
    coupons.CouponNotYetValid,
    coupons.CouponUsed,
)
def coupon_code(coupon_id: int) -> dict[str, Any]:
    """出示优惠券：一次性券码，约每分钟变化"""
    at = mall_time()
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        coupon = coupons.own_coupon(session, member_id, coupon_id)
        coupons.check_usable(coupon, at)
    issued = extensions().coupon_code_signer.issue(coupon.id, at.now)
    return {"code": issued.code, "expires_in": issued.expires_in, "qr_png_base64": qr.png_base64(issued.code)}

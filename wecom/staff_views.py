"""Staff login through WeCom OAuth, and scanning a shopper's member code."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from app import idempotency
from app.auth import BEARER_SECURITY, Audience, current_staff, issue_token, staff_required
from app.db import continues_opening_transaction, run_transaction, transaction, utcnow
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.integrations import wechat_client
from app.models import StaffRole
from app.ratelimit import LimitKind
from app.services import authentication, member_codes, members, points, purchases
from app.throttling import code_verification, rate_limited
from wecom.schemas import (
    MemberCodeIn,
    MemberSummaryOut,
    PurchaseIn,
    PurchaseResultOut,
    RefundIn,
    RefundOut,
    StaffLoginOut,
    WeComLoginIn,
)

blp = Blueprint("staff", __name__, url_prefix="/api/staff/v1", description="员工（企业微信）：登录与扫码")
idempotency.enable(blp)


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(WeComLoginIn())
@blp.response(200, StaffLoginOut)
@raises(authentication.WeComCodeInvalid, authentication.StaffNotRegistered, wechat_client.WeComUnavailable)
def login(args: dict[str, Any]) -> dict[str, Any]:
    """用企业微信网页授权 code 登录；非本商场员工返回 403"""
    with transaction() as session:
        staff_member = authentication.staff_from_wecom_code(session, extensions().wecom, args["code"])
    token, expires_in = issue_token(Audience.STAFF, staff_member.id)
    return {"token": token, "expires_in": expires_in, "staff": staff_member}


@blp.route("/member-codes/verify", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@rate_limited(LimitKind.VERIFY)
@code_verification
@blp.arguments(MemberCodeIn())
@blp.response(200, MemberSummaryOut)
@raises(member_codes.MemberCodeInvalid, member_codes.MemberCodeUsed)
def verify_member_code(args: dict[str, Any]) -> members.MemberCard:
    """扫描会员码：返回会员概要；每个会员码只能使用一次"""
    with transaction() as session:
        member = member_codes.redeem_member_code(
            session,
            extensions().member_code_signer,
            args["code"],
            staff_id=current_staff().id,
            at=utcnow(),
        )
        return members.member_card(session, member)


@blp.route("/purchases", methods=["POST"])
@continues_opening_transaction
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@rate_limited(LimitKind.VERIFY)
@code_verification
@blp.arguments(PurchaseIn())
@blp.response(201, PurchaseResultOut, description="新登记的消费")
@blp.alt_response(200, schema=PurchaseResultOut, description="同一小票重复提交：返回原记录")
@raises(*purchases.RECORDING_ERRORS)
def record_purchase(args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """登记消费并为会员积分：扫会员码或填会员编号；同一门店同一小票只记一次"""
    staff = current_staff()
    signer = extensions().member_code_signer
    at = mall_time()
    new = purchases.NewPurchase(
        store_id=args["store_id"],
        receipt_no=args["receipt_no"],
        amount_fen=args["amount_fen"],
        member_id=args["member_id"],
        paid_at=args["paid_at"],
    )

    def work(session: Session) -> dict[str, Any]:
        result = purchases.credit_scanned_purchase(
            session,
            new,
            member_code=args["member_code"],
            signer=signer,
            staff=staff,
            at=at,
            settings=points.points_settings(session),
        )
        card = members.member_card(session, result.member) if result.member else None
        return {
            "purchase": result.purchase,
            "member": card,
            "tier_upgraded_to": card.tier.name if result.tier_change and card else None,
            "created": result.created,
        }

    body = run_transaction(work)
    return body, 201 if body.pop("created") else 200


@blp.route("/purchases/<int:purchase_id>/refunds", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@blp.arguments(RefundIn())
@blp.response(201, RefundOut, description="新登记的退货")
@blp.alt_response(200, schema=RefundOut, description="同一退货单号重复提交：返回原记录")
@raises(
    purchases.StoreNotAllowed,
    NotFound,
    points.IdempotencyConflict,
    purchases.RefundConflict,
    purchases.RefundExceedsPurchase,
)
def refund_purchase(args: dict[str, Any], purchase_id: int) -> tuple[dict[str, Any], int]:
    """登记退货（部分或全部），按比例扣回积分；同一退货单号只记一次"""
    staff = current_staff()
    at = mall_time()
    result = run_transaction(
        lambda session: purchases.refund_purchase(
            session, purchase_id, args["refund_no"], args["amount_fen"], staff=staff, at=at
        )
    )
    refund = result.refund
    body = {
        "id": refund.id,
        "refund_no": refund.refund_no,
        "amount_fen": refund.amount_fen,
        "points_clawed_back": refund.points_clawed_back,
        "purchase": result.purchase,
    }
    return body, 201 if result.created else 200

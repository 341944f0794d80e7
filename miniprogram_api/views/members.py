"""Signing up, the member card and the dynamic member code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request
from flask_smorest import Blueprint

from app import idempotency, qr
from app.auth import BEARER_SECURITY, current_wechat_account_id, wechat_account_required
from app.db import run_transaction, transaction, utcnow
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import extensions, mall_time
from app.integrations import wechat_client
from app.models import Member
from app.ratelimit import LimitKind
from app.services import consents, coupons, members, points
from app.throttling import rate_limited
from miniprogram_api.privacy_schemas import MeOut
from miniprogram_api.schemas import MemberCodeOut, MemberOut, SignUpIn


@dataclass(frozen=True)
class MemberWithConsent:
    member: Member
    consent: consents.ConsentStatus


blp = Blueprint("mp_members", __name__, url_prefix="/api/mp/v1", description="小程序：会员注册与会员卡")
idempotency.enable(blp)


@blp.route("/members", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@rate_limited(LimitKind.LOGIN)
@blp.arguments(SignUpIn())
@blp.response(201, MemberOut, description="新注册的会员")
@blp.alt_response(200, schema=MemberOut, description="已是会员（或手机号已在商场登记）：返回同一会员")
@raises(
    members.PhoneCodeInvalid,
    NotFound,
    points.IdempotencyConflict,
    coupons.SoldOut,
    members.ConsentOutdated,
    members.ConsentRequired,
    members.PhoneNotSupported,
    ValidationFailed,
    wechat_client.WeChatRateLimited,
    wechat_client.WeChatUnavailable,
)
def sign_up(args: dict[str, Any]) -> tuple[Member, int]:
    """注册会员：手机号授权 + 同意隐私政策；重复提交返回同一会员"""
    ext = extensions()
    account_id = current_wechat_account_id()
    details = members.SignUp(
        consent_version=members.accepted_policy_version(
            args["consent_version"], ext.config.PRIVACY_POLICY_VERSION
        ),
        scene=args["scene"],
        birthday=args["birthday"],
        nickname=args["nickname"],
        client_ip=request.remote_addr,
    )
    with transaction() as session:
        existing = members.member_of_account(session, account_id)
    if existing is not None:
        return existing, 200

    # Asked once, outside the transaction: WeChat phone codes are single-use.
    phone = members.phone_from_code(ext.wechat, args["phone_code"])
    result = run_transaction(
        lambda session: members.register(
            session, account_id, phone, details, vault=ext.phone_vault, at=mall_time()
        )
    )
    return result.member, 201 if result.created else 200


@blp.route("/me", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, MeOut)
@raises(members.MemberNotRegistered, NotFound)
def me() -> MemberWithConsent:
    """我的会员卡：脱敏手机号、等级、积分、专属顾问；隐私政策更新后 consent.required 为 true"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        return MemberWithConsent(
            members.shown_profile(session, member_id),
            consents.status(session, member_id, extensions().config.PRIVACY_POLICY_VERSION),
        )


@blp.route("/me/code", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, MemberCodeOut)
@raises(members.MemberNotRegistered)
def member_code() -> dict[str, Any]:
    """动态会员码：约每分钟变化，扫码一次即失效"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
    issued = extensions().member_code_signer.issue(member_id, utcnow())
    return {"code": issued.code, "expires_in": issued.expires_in, "qr_png_base64": qr.png_base64(issued.code)}

"""A member's rights over their personal data (PIPL): consent again, export it all, delete the account."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from app import idempotency
from app.auth import BEARER_SECURITY, current_wechat_account_id, wechat_account_required
from app.db import run_transaction, transaction
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.models import MemberConsent
from app.services import consents, members, personal_data, points
from miniprogram_api.privacy_schemas import ConsentIn, ConsentOut, DeletionOut, ExportOut

blp = Blueprint(
    "mp_privacy", __name__, url_prefix="/api/mp/v1", description="小程序：个人信息（隐私政策、导出、注销）"
)
idempotency.enable(blp)


@blp.route("/me/consents", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(ConsentIn())
@blp.response(201, ConsentOut, description="已记录本次同意（版本、时间、来源 IP）")
@raises(members.MemberNotRegistered, members.ConsentOutdated, members.ConsentRequired)
def consent(args: dict[str, Any]) -> MemberConsent:
    """同意最新版本的隐私政策（政策更新后须重新同意）"""
    account_id = current_wechat_account_id()
    with transaction() as session:
        member_id = members.member_id_of_account(session, account_id)
        return consents.record(
            session,
            member_id,
            account_id,
            args["policy_version"],
            extensions().config.PRIVACY_POLICY_VERSION,
            client_ip=request.remote_addr,
        )


@blp.route("/me/export", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, ExportOut)
@raises(members.MemberNotRegistered, NotFound)
def export() -> dict[str, Any]:
    """导出我的全部个人信息（JSON）：资料、同意记录、微信身份、积分、优惠券、消费、车牌、停车、标签、顾问与签到"""
    at = mall_time()
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        document = personal_data.export(session, member_id, extensions().phone_vault)
    return {"exported_at": at.now, **document}


@blp.route("/me", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, DeletionOut, description="已注销：说明删除了什么、保留了什么以及原因")
@raises(
    members.MemberNotRegistered,
    NotFound,
    personal_data.AlreadyDeleted,
    personal_data.DeletionRefused,
    points.IdempotencyConflict,
)
def delete_account() -> dict[str, Any]:
    """注销会员账号：删除或匿名化个人信息，登录凭证立即失效；停车缴费未完成时不能注销"""
    account_id = current_wechat_account_id()
    at = mall_time()

    def work(session: Any) -> personal_data.Erasure:
        member_id = members.member_id_of_account(session, account_id)
        return personal_data.erase(session, member_id, at=at, reason="member", client_ip=request.remote_addr)

    erasure = run_transaction(work)
    return {
        "member_id": erasure.member_id,
        "deleted_at": erasure.deleted_at,
        "points_forfeited": erasure.points_forfeited,
        **personal_data.DELETION_EXPLANATION,
    }


def acting_member_id(session: Any) -> int:
    """The caller's member id for an action that needs their consent to the current privacy policy
    (403 CONSENT_RENEWAL_REQUIRED until they consent again); reads use members.member_id_of_account."""
    return consents.member_id_for_action(
        session, current_wechat_account_id(), extensions().config.PRIVACY_POLICY_VERSION
    )

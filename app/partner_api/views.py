"""Partners credit their members' activity (e.g. a running track's calories) as points."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db import run_transaction
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.partner_api import signing
from app.partner_api.schemas import ActivityCreditIn, ActivityCreditOut
from app.services import partners, points

SIGNATURE_SECURITY: list[dict[str, list[str]]] = [{"partnerSignature": []}]

_SIGNATURE_HEADERS = signing.header_parameters(
    signing.PARTNER_CODE_HEADER, "合作方编码", "partnerSignature", with_nonce=False
)

_SIGNATURE_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": signing.SIGNATURE_HEADER,
    "description": (
        "合作方签名：X-Signature = hex(HMAC-SHA256(secret, "
        '"{X-Timestamp}\\n{METHOD}\\n{path}\\n" + 原始请求体字节))，'
        "path 不含查询串，如 /api/partner/v1/activity-credits；"
        "同时携带 X-Partner-Code 与 X-Timestamp（Unix 秒）。"
    ),
}


blp = signing.SignedBlueprint(
    "partner",
    __name__,
    url_prefix="/api/partner/v1",
    description="合作方：活动积分（HMAC 签名）",
    scheme_name="partnerSignature",
    scheme=_SIGNATURE_SCHEME,
)


@blp.route("/activity-credits", methods=["POST"])
@blp.doc(security=SIGNATURE_SECURITY, parameters=_SIGNATURE_HEADERS)
@signing.partner_signature_required
@blp.arguments(ActivityCreditIn())
@blp.response(201, ActivityCreditOut, description="新登记的活动")
@blp.alt_response(200, schema=ActivityCreditOut, description="同一事件重复提交：返回首次结果")
@raises(partners.MemberNotFound, NotFound, partners.EventConflict, points.IdempotencyConflict)
def credit_activity(args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """合作方为会员的活动（如跑步消耗的千卡）积分；同一事件编号只积分一次，每人每日有上限"""
    partner = signing.current_partner()
    vault = extensions().phone_vault
    at = mall_time()
    report = partners.ActivityReport(**args)

    def work(session: Session) -> partners.CreditResult:
        return partners.credit_activity(
            session, partner, report, vault=vault, at=at, settings=points.points_settings(session)
        )

    result = run_transaction(work)
    body = {
        "event_id": result.credit.event_id,
        "member_id": result.credit.member_id,
        "points": result.credit.points,
        "capped": result.capped,
    }
    return body, 201 if result.created else 200

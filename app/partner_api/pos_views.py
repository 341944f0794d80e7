"""Store POS terminals report sales and refunds in real time, each request HMAC-signed with a nonce."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app import idempotency
from app.db import run_transaction
from app.errors import NotFound, raises
from app.extensions import extensions, mall_time
from app.partner_api import signing
from app.partner_api.pos_schemas import PosPurchaseIn, PosPurchaseResultOut, PosRefundIn, PosRefundOut
from app.services import points, pos, purchases

POS_SECURITY: list[dict[str, list[str]]] = [{"posSignature": []}]

_SIGNATURE_HEADERS = signing.header_parameters(
    signing.POS_KEY_ID_HEADER, "终端密钥编号（新建终端或更换密钥时获得）", "posSignature", with_nonce=True
)

_SIGNATURE_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": signing.SIGNATURE_HEADER,
    "description": (
        "POS 终端签名：X-Signature = hex(HMAC-SHA256(终端密钥, "
        '"{X-Timestamp}\\n{X-Nonce}\\n{METHOD}\\n{path}\\n" + 原始请求体字节))，'
        "path 不含查询串，如 /api/pos/v1/purchases；同时携带 X-Pos-Key-Id、X-Timestamp（Unix 秒）"
        "与 X-Nonce。签名错误、密钥已更换或终端停用、时间戳超出 ±5 分钟、nonce 重复均返回 401。"
    ),
}


blp = signing.SignedBlueprint(
    "pos",
    __name__,
    url_prefix="/api/pos/v1",
    description="门店 POS：实时消费与退货（HMAC 签名）",
    scheme_name="posSignature",
    scheme=_SIGNATURE_SCHEME,
)
idempotency.enable(blp)


@blp.route("/purchases", methods=["POST"])
@blp.doc(security=POS_SECURITY, parameters=_SIGNATURE_HEADERS)
@signing.pos_signature_required
@blp.arguments(PosPurchaseIn())
@blp.response(201, PosPurchaseResultOut, description="新登记的消费")
@blp.alt_response(200, schema=PosPurchaseResultOut, description="同一小票重复提交：返回原记录")
@raises(*purchases.RECORDING_ERRORS, pos.MemberNotFound)
def record_purchase(args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """登记本终端门店的消费并为会员积分：会员码或手机号识别会员，都不填为非会员消费；同一小票只记一次"""
    terminal = signing.current_pos_terminal()
    ext = extensions()
    at = mall_time()
    sale = pos.PosSale(**args)

    def work(session: Session) -> dict[str, Any]:
        result = pos.record_sale(
            session,
            terminal,
            sale,
            vault=ext.phone_vault,
            signer=ext.member_code_signer,
            at=at,
            settings=points.points_settings(session),
        )
        return {"purchase": result.purchase, "member": result.member, "created": result.created}

    body = run_transaction(work)
    return body, 201 if body.pop("created") else 200


@blp.route("/refunds", methods=["POST"])
@blp.doc(security=POS_SECURITY, parameters=_SIGNATURE_HEADERS)
@signing.pos_signature_required
@blp.arguments(PosRefundIn())
@blp.response(201, PosRefundOut, description="新登记的退货")
@blp.alt_response(200, schema=PosRefundOut, description="同一退货单号重复提交：返回原记录")
@raises(
    purchases.StoreNotAllowed,
    NotFound,
    pos.PurchaseNotFound,
    points.IdempotencyConflict,
    purchases.RefundConflict,
    purchases.RefundExceedsPurchase,
)
def record_refund(args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """登记本终端门店一笔消费的退货（部分或全部），按比例扣回积分；同一退货单号只记一次"""
    terminal = signing.current_pos_terminal()
    at = mall_time()
    result = run_transaction(lambda session: pos.record_refund(session, terminal, at=at, **args))
    refund = result.refund
    body = {
        "id": refund.id,
        "refund_no": refund.refund_no,
        "amount_fen": refund.amount_fen,
        "points_clawed_back": refund.points_clawed_back,
        "purchase": result.purchase,
    }
    return body, 201 if result.created else 200

"""Console pages for merging two members (admin only): the member 360 page's "合并会员" form asks for
the other member's id, a confirmation page shows both members (phones masked) and what will move,
and only its POST (CSRF-checked) merges, through `app.services.member_merge`, which audits it.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.member_labels import LABELS
from app.console.member_schemas import MemberMergeIn
from app.console.pages import bp, console_operator, console_page
from app.db import run_transaction, transaction
from app.errors import NotFound
from app.extensions import mall_time
from app.models import Member, OperatorRole
from app.services import member_merge

# What the confirmation page lists, in this order, with the words operators use.
MOVE_LABELS = {
    "points": "可用积分",
    "points_debt": "欠分",
    "coupons": "优惠券",
    "purchases": "消费记录（含退货）",
    "plates": "车牌",
    "tags": "标签",
    "tag_history": "标签历史",
    "tasks": "导购任务",
    "wechat_accounts": "微信账号",
    "consents": "隐私授权记录",
    "wecom_contacts": "企业微信外部联系人",
    "wecom_tag_syncs": "企业微信标签同步",
    "referred_members": "推荐的会员",
    "referral_scenes": "推荐码",
    "partner_credits": "合作方积分记录",
    "parking_payments": "停车缴费记录",
    "parking_quotes": "停车报价",
}


def _source_id(raw: str | None) -> int:
    """The other member's id through the admin API's schema; a DomainError (422) in Chinese otherwise."""
    text = (raw or "").strip()
    if not text:
        raise member_merge.SameMember("请填写要并入的会员 ID")
    if not text.isdigit():
        raise member_merge.SameMember("会员 ID 应为正整数")
    try:
        loaded = MemberMergeIn().load({"source_member_id": int(text)})
    except ValidationError as invalid:
        raise member_merge.SameMember("会员 ID 应为正整数") from invalid
    return int(loaded["source_member_id"])


def _confirm_page(survivor_id: int, raw_source: str | None, *, error: str | None = None) -> tuple[str, int]:
    """The confirmation page; a pair that cannot be shown renders the form again with the reason."""
    try:
        source_id = _source_id(raw_source)
        with transaction() as session:
            preview = member_merge.preview(session, survivor_id, source_id)
    except (member_merge.SameMember, NotFound) as invalid:
        with transaction() as session:
            if session.get(Member, survivor_id) is None:
                raise NotFound("会员不存在") from invalid
        return _render(survivor_id, None, raw_source, invalid.message), 422
    return _render(survivor_id, preview, raw_source, error or preview.refusal), 409 if error else 200


def _render(
    survivor_id: int, preview: member_merge.MergePreview | None, raw_source: str | None, error: str | None
) -> str:
    return render_template(
        "console/member_merge.html",
        survivor_id=survivor_id,
        preview=preview,
        source_text=(raw_source or "").strip()[:20],
        error=error,
        move_labels=MOVE_LABELS,
        labels=LABELS,
    )


@bp.get("/members/<int:member_id>/merge")
@console_page(OperatorRole.ADMIN)
def confirm_member_merge(member_id: int) -> tuple[str, int]:
    return _confirm_page(member_id, request.args.get("source_member_id"))


@bp.post("/members/<int:member_id>/merge")
@console_page(OperatorRole.ADMIN)
def merge_members(member_id: int) -> Response | tuple[str, int]:
    raw_source = request.form.get("source_member_id")
    try:
        source_id = _source_id(raw_source)
    except member_merge.SameMember:
        return _confirm_page(member_id, raw_source)
    operator_id, at, client_ip = console_operator().id, mall_time(), request.remote_addr

    def work(session: Session) -> member_merge.MergeOutcome:
        return member_merge.merge(
            session, member_id, source_id, operator_id=operator_id, at=at, client_ip=client_ip
        )

    try:
        run_transaction(work)
    except (member_merge.MergeRefused, member_merge.SameMember, NotFound) as refused:
        return _confirm_page(member_id, raw_source, error=refused.message)
    return redirect(url_for("console.member_detail", member_id=member_id, merged=source_id))

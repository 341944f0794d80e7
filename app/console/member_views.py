"""Console pages for members: search (phone, nickname, id), the member 360 page, revealing a phone
(admin only, audited), adjusting points (admin and marketing, audited, once per form) and the Excel
export of a search (phones masked, at most MAX_EXPORT_ROWS rows, audited).

A store manager finds and opens only their store's members (`app.services.member_scope`); another
store's member is a 403 on every page and action.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import redirect, render_template, request, send_file, url_for
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.excel import XLSX_MIMETYPE, workbook_of
from app.console.forms import format_mall_date
from app.console.member_labels import LABELS
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.points_schemas import PointsAdjustmentIn
from app.db import report_transaction, run_transaction, transaction
from app.errors import DomainError, Forbidden
from app.extensions import extensions, mall_time
from app.models import Operator, OperatorRole
from app.services import member_overview, member_scope, member_search, points, rewards
from app.services.member_search import MemberRow, MemberSearch, SearchBy, SearchInvalid

# An export is a spreadsheet for a person to read, not a data dump: past this, narrow the search.
MAX_EXPORT_ROWS = 10_000
ADJUSTERS = (OperatorRole.ADMIN, OperatorRole.MARKETING)
EXPORT_COLUMNS = ("会员ID", "手机号", "昵称", "等级", "积分", "注册日期", "专属顾问")
_WHOLE_NUMBER = re.compile(r"^[+-]?\d{1,9}$")
_FORM_KEY = re.compile(r"^[0-9a-f]{32}$")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _store_scope(operator: Operator) -> int | None:
    """The store an operator is held to (store managers), None for the roles that see every member."""
    if operator.role != OperatorRole.STORE_MANAGER:
        return None
    if operator.store_id is None:
        raise Forbidden("您的账号还没有所属门店，请联系管理员")
    return operator.store_id


def _search_from(values: Mapping[str, str], store_id: int | None) -> MemberSearch:
    try:
        by = SearchBy(values.get("by", SearchBy.AUTO.value) or SearchBy.AUTO.value)
    except ValueError as exc:
        raise SearchInvalid("搜索方式有误") from exc
    return MemberSearch(text=values.get("q", "").strip(), by=by, store_id=store_id)


def _cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > member_search.MAX_MEMBER_ID:
        raise SearchInvalid("翻页参数有误")
    return int(raw)


_FORMATTERS = {"labels": LABELS}


@bp.route("/members", methods=["GET", "POST"])
@console_page(changes_data=False)
def members() -> tuple[str, int]:
    """The search form posts, so that a phone typed into it stays out of URLs (and access logs);
    paging links are GETs, and a phone search never has a next page (phones are unique)."""
    store_id = _store_scope(console_operator())
    values = request.form if request.method == "POST" else request.args
    raw = {"q": values.get("q", ""), "by": values.get("by", "auto")}
    rows: list[MemberRow] = []
    next_cursor, error = None, None
    try:
        search = _search_from(values, store_id)
        before = _cursor(request.args.get("before"))
        with transaction() as session:
            rows, next_cursor = member_search.search_page(
                session, search, extensions().phone_vault, before_id=before
            )
    except SearchInvalid as invalid:
        error = invalid.message
    return _search_page(raw, rows, next_cursor, error), 422 if error else 200


def _search_page(
    raw: dict[str, str], rows: list[MemberRow], next_cursor: int | None, error: str | None
) -> str:
    return render_template(
        "console/members.html",
        raw=raw,
        rows=rows,
        next_cursor=next_cursor,
        paged=bool(request.args.get("before")),
        error=error,
        store_locked=console_operator().role == OperatorRole.STORE_MANAGER,
        search_by=[(by.value, LABELS["search_by"][by]) for by in SearchBy],
        max_export_rows=MAX_EXPORT_ROWS,
        **_FORMATTERS,
    )


@bp.post("/members/export")
@console_page(changes_data=False)  # reading, for auditors too; the export itself is audited
def export_members() -> Response | tuple[str, int]:
    store_id = _store_scope(console_operator())
    try:
        search = _search_from(request.form, store_id)
        vault = extensions().phone_vault
        # Read on the report replica, if any; the audit record goes to the primary.
        with report_transaction() as session:
            rows = member_search.export_rows(session, search, vault, limit=MAX_EXPORT_ROWS)
            workbook, count = workbook_of("会员", EXPORT_COLUMNS, (_export_line(row) for row in rows))
        with transaction() as session:
            audit_console_action(
                session, "member.export", "member", detail={"filter": search.describe(), "rows": count}
            )
    except SearchInvalid as invalid:
        raw = {"q": request.form.get("q", ""), "by": request.form.get("by", "auto")}
        return _search_page(raw, [], None, invalid.message), 422
    name = f"members-{mall_time().now.astimezone(mall_time().tz):%Y%m%d-%H%M%S}.xlsx"
    return send_file(
        workbook,
        mimetype=XLSX_MIMETYPE,
        as_attachment=True,
        download_name=name,
    )


def _export_line(row: MemberRow) -> tuple[object, ...]:
    """The phone column is the masked phone; no role may export full numbers."""
    return (
        row.id,
        row.phone_masked,
        row.nickname or "",
        row.tier_name,
        row.points_balance,
        format_mall_date(row.joined_at),
        row.advisor_name or "",
    )


@dataclass
class AdjustForm:
    delta: str = ""
    reason: str = ""
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    errors: dict[str, str] = field(default_factory=dict)


@bp.get("/members/<int:member_id>")
@console_page()
def member_detail(member_id: int) -> str:
    return _detail_page(member_id, AdjustForm())


def _detail_page(member_id: int, form: AdjustForm, *, revealed_phone: str | None = None) -> str:
    operator = console_operator()
    store_id = _store_scope(operator)
    before = request.args.get("ledger_before", "")
    if before and not before.isdigit():
        raise DomainError("翻页参数有误")
    with transaction() as session:
        member_scope.check_member_in_scope(session, member_id, store_id)
        view = member_overview.overview(session, member_id, ledger_before=int(before) if before else None)
    active = view.profile.merged_into_member_id is None and view.profile.deleted_at is None
    return render_template(
        "console/member_detail.html",
        view=view,
        form=form,
        revealed_phone=revealed_phone,
        can_reveal=operator.role == OperatorRole.ADMIN and active,
        can_adjust=operator.role in ADJUSTERS and active,
        can_merge=operator.role == OperatorRole.ADMIN and active,
        adjusted=request.args.get("adjusted"),
        merged=request.args.get("merged", ""),
        **_FORMATTERS,
    )


@bp.post("/members/<int:member_id>/phone")
@console_page(OperatorRole.ADMIN)
def reveal_phone(member_id: int) -> Response | tuple[str, int, dict[str, str]]:
    """Shows the full number once (never stored in a page cache), and logs who looked."""
    vault = extensions().phone_vault
    with transaction() as session:
        member_scope.check_member_in_scope(session, member_id, _store_scope(console_operator()))
        phone = member_overview.full_phone(session, member_id, vault)
        audit_console_action(session, "member.view_phone", "member", member_id)
    no_store = {"Cache-Control": "no-store"}
    if request.headers.get("HX-Request"):
        return render_template("console/member_phone.html", phone=phone), 200, no_store
    return _detail_page(member_id, AdjustForm(), revealed_phone=phone), 200, no_store


@bp.post("/members/<int:member_id>/points-adjustments")
@console_page(*ADJUSTERS)
def adjust_points(member_id: int) -> Response | tuple[str, int]:
    form = AdjustForm(
        delta=request.form.get("delta", "").strip(),
        reason=request.form.get("reason", "").strip(),
        key=request.form.get("idempotency_key", ""),
    )
    values = _validated_adjustment(form)
    if values is None:
        return _detail_page(member_id, form), 422
    delta, reason = values
    operator_id, at, store_id = console_operator().id, mall_time(), _store_scope(console_operator())

    def work(session: Session) -> int:
        member_scope.check_member_in_scope(session, member_id, store_id)
        result = rewards.adjust_by_operator(
            session, member_id, delta, reason, operator_id=operator_id, idempotency_key=form.key, at=at
        )
        if not result.repeated:  # a double submit adjusts once, and is logged once
            audit_console_action(
                session,
                "points.adjust",
                "member",
                member_id,
                detail={"points": delta, "reason": reason, "entry_id": result.entry.id},
            )
        return result.entry.id

    try:
        entry_id = run_transaction(work)
    except (points.InsufficientPoints, points.IdempotencyConflict, rewards.AdjustmentInvalid) as refused:
        form.errors["delta"] = (
            "扣减积分不能超过会员当前可用积分"
            if isinstance(refused, points.InsufficientPoints)
            else refused.message
        )
        return _detail_page(member_id, form), 422
    return redirect(url_for("console.member_detail", member_id=member_id, adjusted=entry_id) + "#points")


def _validated_adjustment(form: AdjustForm) -> tuple[int, str] | None:
    """(delta, reason) through the admin API's own schema, or None with `form.errors` filled in."""
    if not _FORM_KEY.match(form.key):
        form.key = uuid.uuid4().hex
        form.errors["form"] = "表单已过期，请核对后重新提交"
        return None
    if not _WHOLE_NUMBER.match(form.delta):
        form.errors["delta"] = "调整积分应为整数，正数为增加，负数为扣减"
        return None
    try:
        loaded = PointsAdjustmentIn().load({"delta": int(form.delta), "reason": form.reason})
    except ValidationError as invalid:
        fallback = {"delta": "调整积分有误", "reason": "请填写调整原因（不超过 100 个字）"}
        for name, messages in invalid.normalized_messages().items():
            message = messages[0] if isinstance(messages, list) and messages else str(messages)
            form.errors[name] = message if _CJK.search(message) else fallback.get(name, "输入有误")
        return None
    return loaded["delta"], loaded["reason"]

"""Console pages of segments (人群分组): the list with live member counts, create and edit with the rule
builder, a segment's members, an Excel export of them (masked phones) and deleting one.

Everything goes through app.services.segments, as the admin API does; the export reads the members a
batch at a time and streams them into a write-only workbook."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, send_file, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.excel import XLSX_MIMETYPE, workbook_of
from app.console.forms import FORM_STATUSES, format_mall_datetime, load_form
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.rule_form import (
    RuleDraft,
    draft_from_form,
    draft_from_rule,
    load_catalog,
    rule_of,
    summarize,
)
from app.console.tag_pages import (
    EDITORS,
    VIEWERS,
    builder_context,
    can_change,
    message_of,
    page_after,
)
from app.console.tag_schemas import SegmentIn
from app.db import report_transaction, run_transaction, transaction
from app.errors import DomainError
from app.extensions import mall_time
from app.models import Segment
from app.services import audit, segments

SEGMENT_FORM_LABELS = {"name": "名称", "description": "说明", "rule": "规则"}
EXPORT_COLUMNS = ("会员号", "昵称", "手机号（脱敏）", "会员等级", "积分余额", "入会时间")


@bp.get("/segments")
@console_page(*VIEWERS)
def segments_list() -> str:
    at = mall_time()
    with transaction() as session:
        catalog = load_catalog(session, at, with_tags=True)
        rows = [
            {
                "segment": segment,
                "members": segments.live_count(session, segment, at),
                "summary": summarize(segment.rule, catalog),
            }
            for segment in segments.list_segments(session)
        ]
    return render_template("console/segments.html", rows=rows, can_change=can_change())


@bp.get("/segments/<int:segment_id>")
@console_page(*VIEWERS)
def segment_detail(segment_id: int) -> str:
    after, limit = page_after()
    at = mall_time()
    with transaction() as session:
        segment = segments.get_segment(session, segment_id)
        catalog = load_catalog(session, at, with_tags=True)
        total = segments.live_count(session, segment, at)
        members = segments.member_page(session, segment, at, after_member_id=after, limit=limit + 1)
    return render_template(
        "console/segment_detail.html",
        segment=segment,
        summary=summarize(segment.rule, catalog),
        total=total,
        members=members[:limit],
        next_after=members[limit - 1].id if len(members) > limit else None,
        after=after,
        can_change=can_change(),
    )


@bp.route("/segments/new", methods=["GET", "POST"])
@console_page(*EDITORS)
def segment_new() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return _segment_form(None, {}, RuleDraft(), None)
    draft, values = draft_from_form(request.form), _segment_fields()
    operator_id, at = console_operator().id, mall_time()

    def create(session: Session) -> int:
        rule = rule_of(draft, load_catalog(session, at, with_tags=True))
        args = load_form(SegmentIn(), {**values, "rule": rule}, labels=SEGMENT_FORM_LABELS)
        segment = segments.create_segment(session, **args, operator_id=operator_id, at=at)
        audit_console_action(
            session, "segment.create", "segment", segment.id, {"name": segment.name, "rule": segment.rule}
        )
        return segment.id

    try:
        segment_id = run_transaction(create)
    except DomainError as error:
        if error.status not in FORM_STATUSES:
            raise
        return _segment_form(None, values, draft, message_of(error)), error.status
    return redirect(url_for("console.segment_detail", segment_id=segment_id))


@bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
@console_page(*EDITORS)
def segment_edit(segment_id: int) -> Response | str | tuple[str, int]:
    with transaction() as session:
        segment = segments.get_segment(session, segment_id)
    if request.method == "GET":
        current = {"name": segment.name, "description": segment.description or ""}
        return _segment_form(segment, current, draft_from_rule(segment.rule), None)
    draft, values = draft_from_form(request.form), _segment_fields()
    at = mall_time()

    def update(session: Session) -> None:
        rule = rule_of(draft, load_catalog(session, at, with_tags=True))
        args = load_form(SegmentIn(), {**values, "rule": rule}, labels=SEGMENT_FORM_LABELS)
        stored = segments.get_segment(session, segment_id)
        before = {"name": stored.name, "description": stored.description, "rule": stored.rule}
        segments.update_segment(session, segment_id, **args, at=at)
        after = {"name": stored.name, "description": stored.description, "rule": stored.rule}
        audit_console_action(session, "segment.update", "segment", segment_id, audit.changes(before, after))

    try:
        run_transaction(update)
    except DomainError as error:
        if error.status not in FORM_STATUSES:
            raise
        return _segment_form(segment, values, draft, message_of(error)), error.status
    return redirect(url_for("console.segment_detail", segment_id=segment_id))


@bp.post("/segments/<int:segment_id>/delete")
@console_page(*EDITORS)
def segment_delete(segment_id: int) -> Response:
    def delete(session: Session) -> None:
        segment = segments.get_segment(session, segment_id)
        detail = {"name": segment.name, "rule": segment.rule}
        segments.delete_segment(session, segment_id)
        audit_console_action(session, "segment.delete", "segment", segment_id, detail)

    run_transaction(delete)
    return redirect(url_for("console.segments_list"))


@bp.post("/segments/<int:segment_id>/export")
@console_page(*EDITORS, changes_data=False)
def segment_export(segment_id: int) -> Response:
    """The segment's members as an .xlsx (phones masked), audited as `segment.export` with the count."""
    at = mall_time()
    # Read on the report replica, if any; the audit record goes to the primary.
    with report_transaction() as session:
        segment = segments.get_segment(session, segment_id)
        lines = (_export_line(row) for row in segments.export_rows(session, segment, at))
        workbook, exported = workbook_of("会员", EXPORT_COLUMNS, lines)
    with transaction() as session:
        audit_console_action(
            session, "segment.export", "segment", segment_id, {"name": segment.name, "members": exported}
        )
    name = f"人群_{segment.name}_{at.today.isoformat()}.xlsx"
    return send_file(workbook, mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=name)


def _export_line(row: Any) -> tuple[Any, ...]:
    return (
        row.id,
        row.nickname or "",
        row.phone_masked,
        row.tier_name,
        row.points_balance,
        format_mall_datetime(row.joined_at),
    )


def _segment_fields() -> dict[str, Any]:
    form = request.form
    return {"name": form.get("name", "").strip(), "description": form.get("description", "").strip() or None}


def _segment_form(
    segment: Segment | None, values: dict[str, Any], draft: RuleDraft, error: str | None
) -> str:
    with transaction() as session:
        catalog = load_catalog(session, mall_time(), with_tags=True)
    return render_template(
        "console/segment_form.html",
        segment=segment,
        values=values,
        error=error,
        with_builder=True,
        **builder_context(catalog, draft),
    )

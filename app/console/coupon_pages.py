"""Console pages for coupon templates (券模板): the list with live issue/use figures, the create and edit
forms (validated by the admin API's schema, saved by its service), and publish / pause / end."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app.console.coupon_schemas import AdminCouponTemplateIn, AdminCouponTemplateOut
from app.console.dashboard_views import percent
from app.console.forms import (
    FormFailure,
    form_failure,
    instant_from_local,
    integer,
    load_form,
    local_input,
    page_number,
    parse_yuan,
    yuan_text,
)
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.db import run_transaction, transaction
from app.errors import DomainError
from app.models import CouponKind, CouponTemplate, OperatorRole, Store, TemplateStatus, Tier
from app.services import audit, coupon_templates

VIEW_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING, OperatorRole.AUDITOR)
CHANGE_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING)
PER_PAGE = 20

KIND_LABELS = {
    CouponKind.CASH_OFF: "满减券",
    CouponKind.DISCOUNT: "折扣券",
    CouponKind.GIFT: "礼品券",
    CouponKind.PARKING: "停车券",
}
STATUS_LABELS = {
    TemplateStatus.DRAFT: "草稿",
    TemplateStatus.ACTIVE: "进行中",
    TemplateStatus.PAUSED: "已暂停",
    TemplateStatus.ENDED: "已结束",
}

# Form inputs by how they are typed; every name is the schema's field name.
TERM_FIELDS = (
    "face_value_fen",
    "min_spend_fen",
    "discount_percent",
    "max_discount_fen",
    "gift_name",
    "parking_minutes",
    "parking_value_fen",
)
# One hint for every way an amount can be mistyped here (letters, a third decimal, a minus sign).
YUAN_HINT = "金额应为数字，最多两位小数"
YUAN_FIELDS = ("face_value_fen", "min_spend_fen", "max_discount_fen", "parking_value_fen")
INTEGER_FIELDS = (
    "discount_percent",
    "parking_minutes",
    "total_stock",
    "per_member_limit",
    "per_member_daily_limit",
    "points_price",
    "valid_days_after_issue",
)
INSTANT_FIELDS = ("valid_from", "valid_until", "claim_starts_at", "claim_ends_at")
LIST_FIELDS = ("store_ids", "store_categories", "eligible_tier_ids")
FIXED, RELATIVE = "fixed", "relative"


# --- form ⇄ schema -------------------------------------------------------------------------------


def _form_state(form: MultiDict[str, str]) -> dict[str, Any]:
    """What was posted, kept as typed so that a refused form shows it again."""
    state: dict[str, Any] = {name: form.get(name, "") for name in form if name not in LIST_FIELDS}
    state.update({name: form.getlist(name) for name in LIST_FIELDS})
    state["refund_points_on_expiry"] = bool(form.get("refund_points_on_expiry"))
    return state


def _payload(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The schema's input from the form, and the fields refused already: money that is no number, no
    kind chosen, the chosen validity left empty."""
    errors: dict[str, str] = {}
    kind = state.get("kind", "")
    if kind not in {item.value for item in CouponKind}:
        errors["kind"] = "请选择券类型"
    data: dict[str, Any] = {
        "kind": kind,
        "name": state.get("name", "").strip() or None,
        "description": state.get("description", "").strip() or None,
        "refund_points_on_expiry": bool(state.get("refund_points_on_expiry")),
    }
    # Only the terms of the chosen kind: the others may still hold what was typed before switching.
    terms = coupon_templates.KIND_FIELDS.get(CouponKind(kind), set()) if not errors else set()
    for name in TERM_FIELDS:
        if name not in terms:
            continue
        if name in YUAN_FIELDS:
            raw = state.get(name, "").strip()
            try:
                data[name] = parse_yuan(raw) if raw else None
            except ValueError:
                errors[name] = YUAN_HINT
        elif name in INTEGER_FIELDS:
            data[name] = integer(state.get(name))
        else:
            data[name] = state.get(name, "").strip() or None
    for name in ("total_stock", "per_member_limit", "per_member_daily_limit", "points_price"):
        data[name] = integer(state.get(name))
    if state.get("validity_mode") == RELATIVE:
        data["valid_days_after_issue"] = integer(state.get("valid_days_after_issue"))
        if data["valid_days_after_issue"] is None:
            errors["valid_days_after_issue"] = "请填写领取后有效天数"
    else:
        for name in ("valid_from", "valid_until"):
            data[name] = instant_from_local(state.get(name))
            if data[name] is None:
                errors[name] = "固定有效期须同时填写开始和结束时间"
    data["claim_starts_at"] = instant_from_local(state.get("claim_starts_at"))
    data["claim_ends_at"] = instant_from_local(state.get("claim_ends_at"))
    data["store_ids"] = [integer(value) for value in state["store_ids"]]
    data["eligible_tier_ids"] = [integer(value) for value in state["eligible_tier_ids"]]
    data["store_categories"] = [value for value in state["store_categories"] if value.strip()]
    # Left empty: the schema's default (or its "必填"), not an explicit null.
    return {name: value for name, value in data.items() if value is not None or name == "kind"}, errors


def _template_values(form: MultiDict[str, str]) -> coupon_templates.TemplateValues:
    """The posted form, checked by the admin API's schema; FormInvalid says what to correct."""
    data, errors = _payload(_form_state(form))
    return coupon_templates.TemplateValues(**load_form(AdminCouponTemplateIn(), data, errors=errors))


def _state_of(template: CouponTemplate) -> dict[str, Any]:
    """A stored template as the form shows it."""
    state: dict[str, Any] = {
        "kind": template.kind.value,
        "name": template.name,
        "description": template.description or "",
        "gift_name": template.gift_name or "",
        "discount_percent": str(coupon_templates.discount_percent(template) or ""),
        "parking_minutes": str(template.parking_minutes or ""),
        "total_stock": str(template.total_stock),
        "per_member_limit": str(template.per_member_limit),
        "per_member_daily_limit": str(template.per_member_daily_limit),
        "points_price": str(template.points_price),
        "validity_mode": RELATIVE if template.valid_days_after_issue is not None else FIXED,
        "valid_days_after_issue": str(template.valid_days_after_issue or ""),
        "store_ids": [str(store_id) for store_id in template.store_ids],
        "store_categories": list(template.store_categories),
        "eligible_tier_ids": [str(tier_id) for tier_id in template.eligible_tier_ids],
        "refund_points_on_expiry": template.refund_points_on_expiry,
    }
    state.update({name: yuan_text(getattr(template, name) or None) for name in YUAN_FIELDS})
    state.update({name: local_input(getattr(template, name)) for name in INSTANT_FIELDS})
    return state


NEW_TEMPLATE_STATE: dict[str, Any] = {
    "kind": CouponKind.CASH_OFF.value,
    "per_member_limit": "1",
    "per_member_daily_limit": "0",
    "points_price": "0",
    "validity_mode": RELATIVE,
    "valid_days_after_issue": "30",
    "store_ids": [],
    "store_categories": [],
    "eligible_tier_ids": [],
}


def _render_form(
    state: dict[str, Any],
    *,
    template: CouponTemplate | None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> str:
    with transaction() as session:
        stores = list(session.scalars(select(Store).order_by(Store.code)))
        tiers = list(session.scalars(select(Tier).order_by(Tier.rank)))
    categories = sorted({store.category for store in stores} | set(state.get("store_categories", [])))
    return render_template(
        "console/coupon_form.html",
        state=state,
        template=template,
        errors=errors or {},
        message=message,
        stores=stores,
        tiers=tiers,
        categories=categories,
        kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS,
        issued=coupon_templates.issued(template) if template else 0,
        field_kinds={
            name: " ".join(kind.value for kind, used in coupon_templates.KIND_FIELDS.items() if name in used)
            for name in TERM_FIELDS
        },
    )


def _refused(error: DomainError, template: CouponTemplate | None) -> tuple[str, int]:
    failure: FormFailure = form_failure(error, missing_is_invalid=True)
    state = _form_state(request.form)
    return _render_form(
        state, template=template, errors=failure.errors, message=failure.message
    ), failure.status


def _snapshot(template: CouponTemplate) -> dict[str, Any]:
    """The template as the admin API shows it: JSON-ready, for the audit log."""
    snapshot: dict[str, Any] = AdminCouponTemplateOut().dump(template)
    snapshot.pop("updated_at", None)
    return snapshot


# --- pages ---------------------------------------------------------------------------------------


@bp.get("/coupons")
@console_page(*VIEW_ROLES)
def coupons() -> str:
    raw_status = request.args.get("status", "")
    status = TemplateStatus(raw_status) if raw_status in {item.value for item in TemplateStatus} else None
    page = page_number(request.args.get("page"))
    with transaction() as session:
        rows, total = coupon_templates.templates_with_stats(
            session, status=status, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
        )
    return render_template(
        "console/coupons.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        status=status,
        kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS,
        percent=percent,
        can_change=console_operator().role in CHANGE_ROLES,
    )


@bp.route("/coupons/new", methods=["GET", "POST"])
@console_page(*CHANGE_ROLES)
def new_coupon() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _render_form(dict(NEW_TEMPLATE_STATE), template=None)
    try:
        values = _template_values(request.form)

        def create(session: Session) -> int:
            template = coupon_templates.create_template(session, values)
            audit_console_action(
                session,
                "coupon_template.create",
                "coupon_template",
                template.id,
                {"after": _snapshot(template)},
            )
            return template.id

        template_id = run_transaction(create)
    except DomainError as error:
        return _refused(error, None)
    return redirect(url_for("console.coupons", saved=template_id))


@bp.route("/coupons/<int:template_id>/edit", methods=["GET", "POST"])
@console_page(*CHANGE_ROLES)
def edit_coupon(template_id: int) -> str | Response | tuple[str, int]:
    with transaction() as session:
        template = coupon_templates.get_template(session, template_id)
    if request.method == "GET":
        return _render_form(_state_of(template), template=template)
    try:
        values = _template_values(request.form)

        def update(session: Session) -> None:
            before = _snapshot(coupon_templates.get_template(session, template_id))
            after = _snapshot(coupon_templates.update_template(session, template_id, values))
            audit_console_action(
                session,
                "coupon_template.update",
                "coupon_template",
                template_id,
                audit.changes(before, after),
            )

        run_transaction(update)
    except DomainError as error:
        return _refused(error, template)
    return redirect(url_for("console.coupons", saved=template_id))


def _move(template_id: int, action: str, move: Any) -> Response:
    def work(session: Session) -> None:
        before = coupon_templates.get_template(session, template_id).status.value
        after = move(session, template_id).status.value
        audit_console_action(
            session, f"coupon_template.{action}", "coupon_template", template_id, {"status": [before, after]}
        )

    run_transaction(work)
    return redirect(url_for("console.coupons", moved=template_id))


@bp.post("/coupons/<int:template_id>/publish")
@console_page(*CHANGE_ROLES)
def publish_coupon(template_id: int) -> Response:
    return _move(template_id, "publish", coupon_templates.activate)


@bp.post("/coupons/<int:template_id>/pause")
@console_page(*CHANGE_ROLES)
def pause_coupon(template_id: int) -> Response:
    return _move(template_id, "pause", coupon_templates.pause)


@bp.post("/coupons/<int:template_id>/end")
@console_page(*CHANGE_ROLES)
def end_coupon(template_id: int) -> Response:
    return _move(template_id, "end", coupon_templates.end)

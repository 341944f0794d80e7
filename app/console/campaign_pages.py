"""Console pages for coupon campaigns (发券活动): issue a template's coupons to a segment, and follow
each campaign's progress (the list refreshes a running campaign's row by htmx)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.coupon_schemas import AdminCampaignIn
from app.console.forms import form_failure, integer, load_form, page_number
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.db import run_transaction, transaction
from app.errors import DomainError
from app.extensions import mall_time
from app.models import CampaignStatus, OperatorRole, TemplateStatus
from app.services import campaigns, coupon_templates, segments

VIEW_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING, OperatorRole.AUDITOR)
CHANGE_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING)
PER_PAGE = 20
TEMPLATE_CHOICES = 200

STATUS_LABELS = {
    CampaignStatus.PENDING: "等待执行",
    CampaignStatus.RUNNING: "发放中",
    CampaignStatus.COMPLETED: "已完成",
    CampaignStatus.CANCELLED: "已取消",
}
UNFINISHED = (CampaignStatus.PENDING, CampaignStatus.RUNNING)


@bp.get("/campaigns")
@console_page(*VIEW_ROLES)
def campaigns_list() -> str:
    page = page_number(request.args.get("page"))
    with transaction() as session:
        rows, total = campaigns.campaigns_with_progress(session, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
        segment_names = {segment.id: segment.name for segment in segments.list_segments(session)}
    return render_template(
        "console/campaigns.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        segment_names=segment_names,
        status_labels=STATUS_LABELS,
        unfinished=UNFINISHED,
        can_change=console_operator().role in CHANGE_ROLES,
    )


@bp.get("/campaigns/<int:campaign_id>/progress")
@console_page(*VIEW_ROLES)
def campaign_progress(campaign_id: int) -> str:
    """The progress cell alone, for htmx to swap in while the campaign runs."""
    with transaction() as session:
        progress = campaigns.progress(session, campaign_id)
    return render_template(
        "console/_campaign_progress.html",
        progress=progress,
        status_labels=STATUS_LABELS,
        unfinished=UNFINISHED,
    )


def _render_form(
    state: dict[str, Any], errors: dict[str, str] | None = None, message: str | None = None
) -> str:
    with transaction() as session:
        templates = coupon_templates.list_templates(
            session, status=TemplateStatus.ACTIVE, offset=0, limit=TEMPLATE_CHOICES
        )
        choices = segments.list_segments(session)
    return render_template(
        "console/campaign_form.html",
        state=state,
        errors=errors or {},
        message=message,
        templates=templates,
        segments=choices,
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@console_page(*CHANGE_ROLES)
def new_campaign() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _render_form({"template_id": request.args.get("template_id", "")})
    state = {name: request.form.get(name, "") for name in ("name", "template_id", "segment_id")}
    errors = {}
    if not state["template_id"].strip():
        errors["template_id"] = "请选择券模板"
    if not state["segment_id"].strip():
        errors["segment_id"] = "请选择目标人群"
    data = {
        "name": state["name"].strip() or None,
        "template_id": integer(state["template_id"]),
        "segment_id": integer(state["segment_id"]),
    }
    operator_id = console_operator().id
    try:
        args = load_form(AdminCampaignIn(), {k: v for k, v in data.items() if v is not None}, errors=errors)

        def create(session: Session) -> int:
            campaign = campaigns.create_segment_campaign(
                session,
                name=args["name"],
                template_id=args["template_id"],
                segment_id=args["segment_id"],
                operator_id=operator_id,
                at=mall_time(),
            )
            audit_console_action(
                session,
                "coupon_campaign.create",
                "coupon_campaign",
                campaign.id,
                {
                    "after": {
                        "name": campaign.name,
                        "template_id": campaign.template_id,
                        "segment_id": campaign.segment_id,
                        "members": len(campaign.member_ids),
                    }
                },
            )
            return campaign.id

        campaign_id = run_transaction(create)
    except DomainError as error:
        refused = form_failure(error, missing_is_invalid=True)
        return _render_form(state, refused.errors, refused.message), refused.status
    return redirect(url_for("console.campaigns_list", created=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@console_page(*CHANGE_ROLES)
def cancel_campaign(campaign_id: int) -> Response:
    def cancel(session: Session) -> None:
        before = campaigns.progress(session, campaign_id).campaign.status.value
        campaigns.cancel(session, campaign_id, at=mall_time())
        audit_console_action(
            session,
            "coupon_campaign.cancel",
            "coupon_campaign",
            campaign_id,
            {"status": [before, CampaignStatus.CANCELLED.value]},
        )

    run_transaction(cancel)
    return redirect(url_for("console.campaigns_list", cancelled=campaign_id))

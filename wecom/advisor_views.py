"""Advisor pages inside WeCom (导购工作台): today's tasks, a member's profile, completing a task,
correcting a member's info and manual tags. Server-rendered; the services do the work."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.db import run_transaction, transaction, utcnow
from app.errors import ValidationFailed
from app.extensions import extensions, mall_time, settings
from app.models import TaskOutcome
from app.services import advisor_members, advisors, tasks
from wecom.pages import (
    allow_advisors,
    csrf_token,
    oauth_login,
    page_login_required,
    page_staff,
    register_page_errors,
)

bp = Blueprint("advisor_pages", __name__, url_prefix="/wecom/advisor", template_folder="templates")
register_page_errors(bp)

OUTCOME_LABELS = {
    TaskOutcome.CONTACTED: "已联系",
    TaskOutcome.NO_ANSWER: "未接通",
    TaskOutcome.NOT_INTERESTED: "无意向",
    TaskOutcome.BOOKED_VISIT: "已预约到店",
}
NOTE_MAX_LENGTH = 500

login_required = page_login_required("advisor_pages.login", allow_advisors)


@bp.get("/login")
def login() -> Response:
    return oauth_login("advisor_pages.login", url_for("advisor_pages.my_tasks"), allow_advisors)


@bp.get("/")
@login_required
def my_tasks() -> str:
    staff, today = page_staff(), mall_time().today
    with transaction() as session:
        mine = tasks.advisor_daily_tasks(session, staff.id, today)
        pool = tasks.store_pool_tasks(session, staff.store_id, today) if staff.store_id else []
    open_tasks = [item for item in mine if item.task.status.value == "open"]
    return render_template(
        "wecom/advisor_tasks.html",
        staff=staff,
        today=today,
        mine=mine,
        pool=pool,
        counts={
            "total": len(mine),
            "open": len(open_tasks),
            "overdue": sum(item.overdue for item in mine),
            "done": sum(item.task.status.value == "done" for item in mine),
        },
        outcomes=OUTCOME_LABELS,
        csrf_token=csrf_token(),
    )


@bp.get("/members/<int:member_id>")
@login_required
def member(member_id: int) -> str:
    staff = page_staff()
    with transaction() as session:
        page = advisor_members.member_page(session, staff, member_id)
        syncs = advisor_members.syncs_of_member(session, member_id)
    held_ids = {tag_id for tag_id, _, _ in page.tags}
    return render_template(
        "wecom/advisor_member.html",
        page=page,
        member=page.member,
        held_ids=held_ids,
        syncs=syncs,
        outcomes=OUTCOME_LABELS,
        today=mall_time().today,
        csrf_token=csrf_token(),
        saved=request.args.get("saved"),
    )


@bp.post("/tasks/<int:task_id>/complete")
@login_required
def complete_task(task_id: int) -> Response:
    outcome = _outcome(request.form.get("outcome"))
    note = (request.form.get("note") or "").strip() or None
    if note and len(note) > NOTE_MAX_LENGTH:
        raise ValidationFailed(f"备注最多 {NOTE_MAX_LENGTH} 字")
    staff, at = page_staff(), mall_time()
    task = run_transaction(
        lambda session: tasks.complete_task(
            session, task_id, staff_id=staff.id, outcome=outcome, note=note, at=at
        )
    )
    back = request.form.get("back")
    if back == "member":
        return redirect(url_for("advisor_pages.member", member_id=task.member_id, saved="task"))
    return redirect(url_for("advisor_pages.my_tasks"))


@bp.post("/members/<int:member_id>/claim")
@login_required
def claim_member(member_id: int) -> Response:
    """Take a member of my store's pool as mine (409 page if a colleague was quicker)."""
    staff, at = page_staff(), utcnow()
    run_transaction(lambda session: advisors.claim_member(session, staff, member_id, at=at))
    return redirect(url_for("advisor_pages.member", member_id=member_id, saved="claim"))


@bp.post("/members/<int:member_id>/info")
@login_required
def correct_info(member_id: int) -> Response:
    birthday = _birthday(request.form.get("birthday"))
    note = request.form.get("advisor_note") or ""
    if len(note) > NOTE_MAX_LENGTH:
        raise ValidationFailed(f"备注最多 {NOTE_MAX_LENGTH} 字")
    staff = page_staff()
    run_transaction(
        lambda session: advisor_members.correct_member_info(
            session, staff, member_id, birthday=birthday, advisor_note=note
        )
    )
    return redirect(url_for("advisor_pages.member", member_id=member_id, saved="info"))


@bp.post("/members/<int:member_id>/tags")
@login_required
def change_tag(member_id: int) -> Response:
    tag_id = request.form.get("tag_id", type=int)
    action = request.form.get("action")
    if tag_id is None or action not in ("add", "remove"):
        raise ValidationFailed("请选择标签")
    staff, at = page_staff(), mall_time()

    def work(session: Session) -> int | None:
        change = advisor_members.set_member_tag if action == "add" else advisor_members.remove_member_tag
        sync = change(session, staff, member_id, tag_id, at=at)
        return sync.id if sync else None

    sync_id = run_transaction(work)
    if sync_id is not None:
        # After the tag change is committed: a WeCom failure leaves the sync pending, not the tag undone.
        run_transaction(
            lambda session: advisor_members.send_corp_tag_sync(
                session, extensions().wecom, sync_id, group_name=settings().WECOM_CORP_TAG_GROUP, at=utcnow()
            )
        )
    return redirect(url_for("advisor_pages.member", member_id=member_id, saved="tag"))


def _outcome(raw: str | None) -> TaskOutcome:
    try:
        return TaskOutcome(raw or "")
    except ValueError:
        raise ValidationFailed("请选择跟进结果") from None


def _birthday(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("生日格式不正确，应为 年-月-日") from None

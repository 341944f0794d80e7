"""Console page: advisors (导购) — a KPI leaderboard over a date range, sortable by completion rate,
conversion or sales; moving one advisor's members and open tasks to another (or to the store pool);
and how many members wait in each store's pool. A store manager sees and moves within their store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.advisor_schemas import ReassignIn
from app.console.forms import FormInvalid, explained, form_status, format_yuan, load_form
from app.console.org_pages import managed_store_id
from app.console.org_schemas import ADVISOR_SORTS, AdvisorBoardArgs
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.db import report_transaction, run_transaction, transaction, utcnow
from app.errors import DomainError, Forbidden
from app.extensions import mall_time
from app.models import OperatorRole
from app.services import advisor_kpis, advisors, staff, stores
from app.url_converters import MAX_DATABASE_ID

ADMIN, MARKETING = OperatorRole.ADMIN, OperatorRole.MARKETING
STORE_MANAGER, AUDITOR = OperatorRole.STORE_MANAGER, OperatorRole.AUDITOR
DEFAULT_RANGE_DAYS = 30

SORT_LABELS = {
    "completion_rate": "任务完成率",
    "conversion_rate": "转化率",
    "converted_sales_fen": "转化销售额",
    "bound_members": "绑定会员数",
}
BOARD_LABELS = {"from": "起始日期", "to": "结束日期", "store_id": "门店", "sort": "排序"}
REASSIGN_LABELS = {"from_staff_id": "转出导购", "to_staff_id": "接手导购"}


class OtherStoreAdvisor(Forbidden):
    code, message = "OTHER_STORE_FORBIDDEN", "店长只能查看和转移本门店导购的会员"


@dataclass(frozen=True)
class BoardLine:
    advisor_id: int | None
    name: str
    store: str
    bound_members: int
    tasks: str  # done / generated
    tasks_overdue: int
    completion_rate: str
    conversion: str  # converted / contacted
    conversion_rate: str
    converted_sales: str
    new_members: int


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


@bp.get("/advisors", endpoint="advisors")
@console_page(ADMIN, MARKETING, STORE_MANAGER, AUDITOR)
def advisors_board() -> str | tuple[str, int]:
    return _render_board(error=None)


@bp.post("/advisors/reassign")
@console_page(ADMIN, STORE_MANAGER)
def advisors_reassign() -> Response | str | tuple[str, int]:
    own_store = managed_store_id(console_operator())
    try:
        from_id, to_id = _reassign_args()
        with transaction() as session:
            source = staff.get_staff(session, from_id)
            target = staff.get_staff(session, to_id) if to_id is not None else None
        if own_store is not None and any(
            person is not None and person.store_id != own_store for person in (source, target)
        ):
            raise OtherStoreAdvisor()
        operator_id, at = console_operator().id, utcnow()

        def move(session: Session) -> int:
            moved = advisors.reassign_members(session, from_id, to_id, operator_id, at=at)
            detail = {"to_staff_id": to_id, "moved": moved}
            audit_console_action(session, "advisor.reassign", "staff", from_id, detail)
            return moved

        moved = run_transaction(move)
    except OtherStoreAdvisor:
        raise
    except DomainError as error:
        return _render_board(error=error)
    return redirect(url_for("console.advisors", moved=moved, moved_from=source.name))


def _reassign_args() -> tuple[int, int | None]:
    raw_from = request.form.get("from_staff_id", "").strip()
    raw_to = request.form.get("to_staff_id", "").strip()
    if not raw_from.isdigit() or int(raw_from) > MAX_DATABASE_ID:
        raise FormInvalid({"from_staff_id": "必填"}, "请选择转出导购")
    args = load_form(
        ReassignIn(),
        {"to_staff_id": int(raw_to) if raw_to.isdigit() else (raw_to or None)},
        labels=REASSIGN_LABELS,
    )
    return int(raw_from), args["to_staff_id"]


def _render_board(error: DomainError | None) -> str | tuple[str, int]:
    operator = console_operator()
    own_store = managed_store_id(operator)
    at = mall_time()
    raw = {key: value for key, value in request.args.items() if value.strip()}
    try:
        args = load_form(AdvisorBoardArgs(), raw, labels=BOARD_LABELS)
    except FormInvalid as bad_filter:
        error, args = bad_filter, load_form(AdvisorBoardArgs(), {}, labels=BOARD_LABELS)
    last: date = args["to"] or at.today
    first: date = args["from_"] or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    store_id = args["store_id"]
    if own_store is not None:
        if store_id is not None and store_id != own_store:
            raise OtherStoreAdvisor()
        store_id = own_store
    with report_transaction() as session:
        per_advisor, _per_store = advisor_kpis.advisor_kpis(session, first, last, store_id=store_id, at=at)
        store_names = {store.id: store.name for store in stores.list_stores(session, store_id=own_store)}
        pools = advisors.pool_sizes(session, store_id=store_id)
        everyone = advisors.list_advisors(session, store_id=store_id)
    ranked = sorted(per_advisor, key=lambda row: _sort_key(row, args["sort"]), reverse=True)
    page = render_template(
        "console/advisors.html",
        lines=[_line(row, store_names) for row in ranked],
        first=first,
        last=last,
        store_id=store_id,
        stores=store_names,
        store_locked=own_store is not None,
        sort=args["sort"],
        sorts=SORT_LABELS,
        pools=pools,
        sources=everyone,
        targets=[person for person in everyone if person.is_active],
        can_reassign=operator.role in (ADMIN, STORE_MANAGER),
        conversion_days=advisor_kpis.CONVERSION_DAYS,
        moved=request.args.get("moved"),
        moved_from=request.args.get("moved_from"),
        error=explained(error, REASSIGN_LABELS) if error else None,
    )
    return (page, form_status(error)) if error else page


def _sort_key(row: advisor_kpis.AdvisorKpi, sort: str) -> tuple[bool, float]:
    assert sort in ADVISOR_SORTS
    value = getattr(row, sort)
    return (value is not None, float(value or 0))  # no rate yet sorts last


def _line(row: advisor_kpis.AdvisorKpi, store_names: dict[int, str]) -> BoardLine:
    return BoardLine(
        advisor_id=row.advisor_id,
        name=row.advisor_name or "—",
        store=store_names.get(row.store_id, "—") if row.store_id else "—",
        bound_members=row.bound_members,
        tasks=f"{row.tasks_done} / {row.tasks_generated}",
        tasks_overdue=row.tasks_overdue,
        completion_rate=percent(row.completion_rate),
        conversion=f"{row.converted_members} / {row.contacted_members}",
        conversion_rate=percent(row.conversion_rate),
        converted_sales=format_yuan(row.converted_sales_fen),
        new_members=row.new_members,
    )

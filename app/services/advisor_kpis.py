"""Advisor KPIs (导购绩效) over a range of business days, per advisor and per store.

Each figure is one GROUP BY over all advisors (set-based; no per-advisor queries):
- bound members: members whose advisor they are now;
- tasks generated: tasks given to them for business days in the range; done / overdue of those
  (overdue: expired, or still open past the due date); completion rate = done / generated;
- conversion: of the members of those tasks they completed, how many bought within 7 days after the
  completion (purchased_at in [completed_at, completed_at + 7 days)), and those purchases' sales in fen
  net of refunds (a purchase counts once per advisor however many tasks it follows);
- new members: members who joined in the range through one of the advisor's QR scenes.
A store's row adds up its advisors' rows (by the advisor's store).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.db import plus_days
from app.mall_time import MallTime
from app.models import Member, Purchase, QrScene, Staff, StaffRole
from app.models.task import AdvisorTask, TaskStatus

CONVERSION_DAYS = 7


@dataclass
class AdvisorKpi:
    advisor_id: int | None  # None on a store's row
    advisor_name: str | None
    store_id: int | None
    bound_members: int = 0
    tasks_generated: int = 0
    tasks_done: int = 0
    tasks_overdue: int = 0
    contacted_members: int = 0
    converted_members: int = 0
    converted_sales_fen: int = 0
    new_members: int = 0

    @property
    def completion_rate(self) -> float | None:
        return round(self.tasks_done / self.tasks_generated, 4) if self.tasks_generated else None

    @property
    def conversion_rate(self) -> float | None:
        return round(self.converted_members / self.contacted_members, 4) if self.contacted_members else None


_COUNTERS = [f.name for f in fields(AdvisorKpi) if f.name not in ("advisor_id", "advisor_name", "store_id")]


def advisor_kpis(
    session: Session, first_day: date, last_day: date, *, store_id: int | None, at: MallTime
) -> tuple[list[AdvisorKpi], list[AdvisorKpi]]:
    """Rows per advisor (of `store_id`, or all), by id, and per store, by id, for the business days
    `first_day`..`last_day` (inclusive); overdue is judged on `at`'s business day."""
    advisor_filter = [Staff.role == StaffRole.ADVISOR]
    if store_id:
        advisor_filter.append(Staff.store_id == store_id)
    advisors = session.execute(
        select(Staff.id, Staff.name, Staff.store_id).where(*advisor_filter).order_by(Staff.id)
    ).all()
    rows = {staff_id: AdvisorKpi(staff_id, name, store) for staff_id, name, store in advisors}
    if not rows:
        return [], []
    advisor_ids = select(Staff.id).where(*advisor_filter)
    start, end = at.start_of(first_day), at.start_of(last_day + timedelta(days=1))
    in_range = and_(
        AdvisorTask.advisor_id.in_(advisor_ids),
        AdvisorTask.business_date >= first_day,
        AdvisorTask.business_date <= last_day,
    )
    done = AdvisorTask.status == TaskStatus.DONE
    overdue = or_(
        AdvisorTask.status == TaskStatus.EXPIRED,
        and_(AdvisorTask.status == TaskStatus.OPEN, AdvisorTask.due_date < at.today),
    )

    _fill(
        rows,
        ("bound_members",),
        session.execute(
            select(Member.advisor_id, func.count())
            .where(Member.advisor_id.in_(advisor_ids))
            .group_by(Member.advisor_id)
        ),
    )
    _fill(
        rows,
        ("tasks_generated", "tasks_done", "tasks_overdue", "contacted_members"),
        session.execute(
            select(
                AdvisorTask.advisor_id,
                func.count(),
                func.sum(case((done, 1), else_=0)),
                func.sum(case((overdue, 1), else_=0)),
                func.count(func.distinct(case((done, AdvisorTask.member_id)))),
            )
            .where(in_range)
            .group_by(AdvisorTask.advisor_id)
        ),
    )
    converting = (
        select(
            AdvisorTask.advisor_id.label("advisor_id"),
            Purchase.id.label("purchase_id"),
            Purchase.member_id.label("member_id"),
            (Purchase.amount_fen - Purchase.refunded_fen).label("net_fen"),
        )
        .join(
            Purchase,
            and_(
                Purchase.member_id == AdvisorTask.member_id,
                Purchase.purchased_at >= AdvisorTask.completed_at,
                Purchase.purchased_at < plus_days(AdvisorTask.completed_at, CONVERSION_DAYS),
            ),
        )
        .where(in_range, done)
        .distinct()
        .subquery()
    )
    _fill(
        rows,
        ("converted_members", "converted_sales_fen"),
        session.execute(
            select(
                converting.c.advisor_id,
                func.count(func.distinct(converting.c.member_id)),
                func.coalesce(func.sum(converting.c.net_fen), 0),
            ).group_by(converting.c.advisor_id)
        ),
    )
    _fill(
        rows,
        ("new_members",),
        session.execute(
            select(QrScene.advisor_id, func.count())
            .join(Member, Member.signup_scene_id == QrScene.id)
            .where(QrScene.advisor_id.in_(advisor_ids), Member.joined_at >= start, Member.joined_at < end)
            .group_by(QrScene.advisor_id)
        ),
    )
    per_advisor = list(rows.values())
    return per_advisor, _store_totals(per_advisor)


def _fill(rows: dict[int, AdvisorKpi], names: tuple[str, ...], result: Iterable[Any]) -> None:
    for advisor_id, *values in result:
        row = rows.get(advisor_id)
        if row is not None:
            for name, value in zip(names, values, strict=True):
                setattr(row, name, int(value or 0))


def _store_totals(per_advisor: list[AdvisorKpi]) -> list[AdvisorKpi]:
    stores: dict[int, AdvisorKpi] = {}
    for row in per_advisor:
        if row.store_id is None:
            continue
        total = stores.setdefault(row.store_id, AdvisorKpi(None, None, row.store_id))
        for name in _COUNTERS:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return [stores[store_id] for store_id in sorted(stores)]

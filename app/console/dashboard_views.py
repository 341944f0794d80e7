"""Console pages: the KPI dashboard (cards and charts for a date range and a store) and the operators
list. A store manager sees their own store only, whatever the query string asks.

Some figures have no store: a points ledger entry and an issued coupon do not record one, and the
tier and segment distributions are taken for the whole mall. Those charts show the whole mall's
figures under any store filter, store managers included, and say so ("全场"): they are aggregates,
not another store's records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from flask import redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.console.pages import ROLE_LABELS, bp, console_operator, console_page, echarts_available
from app.db import report_transaction, run_transaction, transaction
from app.errors import DomainError, Forbidden
from app.extensions import mall_time
from app.models import Operator, OperatorRole, Store
from app.models.kpi import MALL_WIDE, KpiDaily
from app.services import kpis

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366


class BadDashboardFilter(DomainError):
    code, message = "BAD_FILTER", "筛选条件有误"


class OtherStoreForbidden(Forbidden):
    code, message = "OTHER_STORE_FORBIDDEN", "店长只能查看本门店的数据"


@dataclass(frozen=True)
class DashboardFilter:
    first: date
    last: date
    store_id: int


def _parse_date(name: str, default: date) -> date:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadDashboardFilter("日期格式应为 YYYY-MM-DD") from exc


def _dashboard_filter(operator: Operator) -> DashboardFilter:
    last = _parse_date("to", mall_time().today)
    first = _parse_date("from", last - timedelta(days=DEFAULT_RANGE_DAYS - 1))
    if last < first:
        raise BadDashboardFilter("结束日期不能早于起始日期")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise BadDashboardFilter(f"一次最多查询 {MAX_RANGE_DAYS} 天")
    raw_store = request.args.get("store_id", "").strip()
    if raw_store and not raw_store.isdigit():
        raise BadDashboardFilter("门店参数有误")
    if operator.role == OperatorRole.STORE_MANAGER:
        if operator.store_id is None:
            raise Forbidden("您的账号还没有所属门店，请联系管理员")
        if raw_store and int(raw_store) != operator.store_id:
            raise OtherStoreForbidden()
        return DashboardFilter(first, last, operator.store_id)
    return DashboardFilter(first, last, int(raw_store) if raw_store else MALL_WIDE)


def percent(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


@bp.get("/")
@console_page()
def dashboard() -> str:
    operator = console_operator()
    chosen = _dashboard_filter(operator)
    with report_transaction() as session:
        days = kpis.trend(session, chosen.first, chosen.last, chosen.store_id)
        points = kpis.points_flows(session, chosen.first, chosen.last)
        coupons = kpis.coupon_flows(session, chosen.first, chosen.last, chosen.store_id)
        shares = kpis.latest_distributions(session, chosen.first, chosen.last)
        if operator.role == OperatorRole.STORE_MANAGER:
            stores = list(session.scalars(select(Store).where(Store.id == operator.store_id)))
        else:
            stores = list(session.scalars(select(Store).order_by(Store.code)))
    summary = kpis.summarize(days)
    charts = _charts(days, points, coupons, shares, whole_mall=chosen.store_id == MALL_WIDE)
    cards = [
        ("会员总数", f"{summary.members_total:,}"),
        ("新增会员", f"{summary.new_members:,}"),
        ("活跃率（30 天）", percent(summary.activation_rate)),
        ("流失率（30 天）", percent(summary.churn_rate)),
        ("复购率（90 天）", percent(summary.repurchase_rate)),
        ("会员销售占比", percent(summary.member_share_of_sales)),
        ("发放积分", f"{sum(day.issued for day in points):,}"),
        ("消耗积分", f"{sum(day.spent for day in points):,}"),
    ]
    return render_template(
        "console/dashboard.html",
        chosen=chosen,
        summary=summary,
        cards=cards,
        stores=stores,
        store_locked=operator.role == OperatorRole.STORE_MANAGER,
        can_recompute=operator.role == OperatorRole.ADMIN,
        with_charts=echarts_available(),
        charts=charts,
        shares_as_of=shares.as_of if shares else None,
        chart_json=Markup(json.dumps(charts, ensure_ascii=False).replace("</", "<\\/")),
    )


def _charts(
    days: list[KpiDaily],
    points: list[kpis.PointsFlow],
    coupons: list[kpis.CouponFlow],
    shares: kpis.Distributions | None,
    *,
    whole_mall: bool,
) -> dict[str, Any]:
    """What dashboard.js draws, by chart; a chart without data is left out (the page says so)."""
    charts: dict[str, Any] = {}
    if days:
        charts["trend"] = {
            "dates": [day.business_date.isoformat() for day in days],
            "series": [
                {"name": "会员总数", "data": [day.members_total for day in days]},
                {"name": "新增会员", "data": [day.new_members for day in days]},
            ],
        }
    if shares and any(count for _, count in shares.tiers):
        charts["tiers"] = [{"name": name, "value": count} for name, count in shares.tiers]
    if shares and shares.segments:
        charts["segments"] = [{"name": name, "value": count} for name, count in shares.segments]
    charts["points"] = {
        "dates": [day.business_date.isoformat() for day in points],
        "series": [
            {"name": "发放", "data": [day.issued for day in points]},
            {"name": "消耗", "data": [day.spent for day in points]},
            {"name": "过期", "data": [day.expired for day in points]},
        ],
    }
    if coupons:
        charts["coupons"] = {
            "dates": [day.business_date.isoformat() for day in coupons],
            "series": [
                {"name": "全场发放" if not whole_mall else "发放", "data": [day.issued for day in coupons]},
                {"name": "门店核销" if not whole_mall else "核销", "data": [day.used for day in coupons]},
            ],
        }
    return charts


@bp.post("/kpis/recompute")
@console_page(OperatorRole.ADMIN)
def recompute_today() -> Response:
    at = mall_time()
    run_transaction(lambda session: kpis.compute_day(session, at.today, at))
    return redirect(url_for("console.dashboard", recomputed=1))


@bp.get("/operators")
@console_page(OperatorRole.ADMIN, OperatorRole.AUDITOR)
def operators() -> str:
    with transaction() as session:
        rows = list(session.scalars(select(Operator).order_by(Operator.username)))
        store_names = {store_id: name for store_id, name in session.execute(select(Store.id, Store.name))}
    return render_template(
        "console/operators.html",
        operators=rows,
        store_names=store_names,
        role_labels=ROLE_LABELS,
        saved=request.args.get("saved"),
    )

"""The dashboard's charts against hand-computed figures: points issued/spent/expired from the ledger,
coupons issued and used, tier and RFM segment distributions; a store manager's view of them."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.console import pages
from app.extensions import extensions
from app.models import OperatorRole, PointsEntry, PointsEntryKind
from app.models.kpi import MALL_WIDE, KpiDaily
from tests import factories
from tests.app.console.console_flows import signed_in

DATA = re.compile(r'<script id="dashboard-data" type="application/json">(.*?)</script>', re.S)
CARD = re.compile(r'<div class="label">([^<]+)</div><div class="value">([^<]+)</div>')
RANGE = "from=2026-11-01&to=2026-11-02"
NOV_1, NOV_2 = date(2026, 11, 1), date(2026, 11, 2)


def chart_data(html: str) -> dict[str, Any]:
    found = DATA.search(html)
    assert found, "no chart data on the page"
    return json.loads(found.group(1).replace("<\\/", "</"))


def series(chart: dict[str, Any]) -> dict[str, list[int]]:
    return {line["name"]: line["data"] for line in chart["series"]}


@pytest.fixture(autouse=True)
def echarts_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The charts' data is on the page only with ECharts vendored; a stand-in keeps the tests
    independent of `make` having fetched it."""
    (tmp_path / "echarts.min.js").write_text("/* echarts */")
    monkeypatch.setattr(pages, "VENDOR_DIR", tmp_path)


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, int]:
    """A ledger and two days of snapshots, small enough to add up by hand."""
    tier = factories.create_tiers(session)[0]
    with app.app_context():
        vault = extensions().phone_vault
    member = factories.create_member(session, vault, "13900000001", tier)
    ours, theirs = factories.create_store(session, name="本店"), factories.create_store(session, name="他店")
    entries = [
        (date(2026, 10, 31), PointsEntryKind.PURCHASE, 999),  # before the range
        (NOV_1, PointsEntryKind.PURCHASE, 100),
        (NOV_1, PointsEntryKind.PURCHASE, 20),
        (NOV_1, PointsEntryKind.CHECK_IN, 5),
        (NOV_1, PointsEntryKind.REDEMPTION, -30),
        (NOV_1, PointsEntryKind.REFUND, -10),  # a correction: neither issued nor spent
        (NOV_1, PointsEntryKind.ADJUSTMENT, 50),  # likewise
        (NOV_2, PointsEntryKind.WELCOME, 100),
        (NOV_2, PointsEntryKind.REDEMPTION, -40),
        (NOV_2, PointsEntryKind.EXPIRY, -20),
        (date(2026, 11, 3), PointsEntryKind.EXPIRY, -500),  # after the range
    ]
    for n, (day, kind, delta) in enumerate(entries):
        session.add(
            PointsEntry(
                member_id=member.id, kind=kind, delta=delta, balance_after=0, description="测试",
                idempotency_key=f"test:{n}", business_date=day,
            )
        )  # fmt: skip
    older = {"tier_distribution": {"normal": 7, "gold": 2}}
    older |= {"segment_distribution": {"no_purchase": 6, "important_value": 3}}
    snapshots = [
        (NOV_1, MALL_WIDE, {"coupons_issued": 5, "coupons_used": 2, **older}),
        (NOV_2, MALL_WIDE, {"coupons_issued": 3, "coupons_used": 4}),
        (NOV_2, ours.id, {"coupons_used": 1}),
        (NOV_2, theirs.id, {"coupons_used": 3}),
    ]
    for day, store_id, figures in snapshots:
        session.add(KpiDaily(business_date=day, store_id=store_id, **figures))
    session.flush()
    return {"ours": ours.id, "theirs": theirs.id}


def test_points_are_summed_by_day_and_kind_from_the_ledger(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    points = chart_data(html)["points"]
    assert points["dates"] == ["2026-11-01", "2026-11-02"]
    assert series(points) == {"发放": [125, 100], "消耗": [30, 40], "过期": [0, 20]}
    cards = dict(CARD.findall(html))
    assert (cards["发放积分"], cards["消耗积分"]) == ("225", "70")


def test_a_day_without_points_is_drawn_as_zero(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    html = client.get("/console/?from=2026-11-01&to=2026-11-03").get_data(as_text=True)

    points = chart_data(html)["points"]

    assert points["dates"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert series(points)["发放"] == [0, 0, 0]


def test_coupons_issued_and_used_per_day_for_the_mall(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    coupons = chart_data(client.get(f"/console/?{RANGE}").get_data(as_text=True))["coupons"]

    assert coupons["dates"] == ["2026-11-01", "2026-11-02"]
    assert series(coupons) == {"发放": [5, 3], "核销": [2, 4]}


def test_tier_and_segment_distributions_are_the_latest_in_the_range_in_rank_order(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    session.add(
        KpiDaily(
            business_date=date(2026, 10, 20), store_id=MALL_WIDE, tier_distribution={"normal": 1},
            segment_distribution={"general_keep": 1},
        )
    )  # fmt: skip
    session.flush()

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    data = chart_data(html)
    assert data["tiers"] == [
        {"name": "普卡", "value": 7},
        {"name": "银卡", "value": 0},
        {"name": "金卡", "value": 2},
        {"name": "钻石卡", "value": 0},
    ]
    assert data["segments"] == [{"name": "重要价值", "value": 3}, {"name": "近期无消费", "value": 6}]
    assert "全场，截至 2026-11-01" in html
    earlier = chart_data(client.get("/console/?from=2026-10-01&to=2026-10-31").get_data(as_text=True))
    assert earlier["tiers"][0] == {"name": "普卡", "value": 1}
    assert earlier["segments"] == [{"name": "一般保持", "value": 1}]


def test_charts_without_data_say_so_instead_of_drawing_nothing(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    assert set(chart_data(html)) == {"points"}  # zeros from the ledger; snapshots there are none
    for note in ("趋势图暂不可用", "还没有等级分布数据", "还没有分群数据", "还没有优惠券指标数据"):
        assert note in html
    assert 'data-chart="points"' in html and 'data-chart="tiers"' not in html


def test_a_store_manager_sees_their_stores_coupon_use_beside_mall_wide_figures_marked_as_such(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=mall["ours"])

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    data = chart_data(html)
    assert data["coupons"]["dates"] == ["2026-11-02"]
    assert series(data["coupons"]) == {"全场发放": [3], "门店核销": [1]}
    assert series(data["points"])["发放"] == [125, 100]
    assert "全场（积分流水不记录门店）" in html and "发放为全场数，核销为所选门店" in html
    forced = client.get(f"/console/?{RANGE}&store_id={mall['theirs']}")
    assert forced.status_code == 403 and "dashboard-data" not in forced.get_data(as_text=True)


def test_without_echarts_the_page_says_the_charts_are_unavailable(
    client: FlaskClient,
    session: Session,
    mall: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    monkeypatch.setattr(pages, "VENDOR_DIR", tmp_path / "missing")

    response = client.get(f"/console/?{RANGE}")

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "dashboard-data" not in html
    assert html.count("图表组件未安装，图表暂不可用") == 5

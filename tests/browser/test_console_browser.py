"""The console in a real browser: signing in through the form, the dashboard's ECharts charts drawn
without JS errors, a store manager refused another store's figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.console import pages
from app.extensions import extensions, mall_time
from app.models import OperatorRole, PointsEntry, PointsEntryKind
from app.models.kpi import MALL_WIDE, KpiDaily
from tests import factories
from tests.app.console.console_flows import PASSWORD
from tests.browser.conftest import ConsolePage, LiveServer, open_tab

CHARTS = ("trend", "tiers", "segments", "points", "coupons")


def test_an_operator_signs_in_through_the_form_and_out_again(
    browser_context: Any, live_server: LiveServer, session: Session
) -> None:
    factories.create_operator(session, "ops", PASSWORD, display_name="王运营")
    tab = open_tab(browser_context, live_server, "ops")
    page = tab.page

    tab.goto("/console/")  # a stranger is sent to the login, and back after it
    assert "/console/login?next=" in page.url
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "wrong")
    page.click("form button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "用户名或密码错误"
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/")

    assert page.locator(".whoami span").inner_text() == "王运营（管理员）"
    assert page.locator("h1").inner_text() == "数据看板"
    page.click("text=退出登录")
    page.wait_for_url("**/console/login")
    assert tab.goto("/console/").url.startswith(f"{live_server.url}/console/login")


@pytest.fixture
def kpis_for_charts(live_server: LiveServer, session: Session) -> int:
    """A week of snapshots with distributions and some points moved: every chart has data."""
    with live_server.app.app_context():
        today, vault = mall_time().today, extensions().phone_vault
    store = factories.create_store(session, name="本店")
    member = factories.create_member(session, vault, "13900000001", factories.create_tiers(session)[0])
    for days_ago in range(7):
        day = today - timedelta(days=days_ago)
        figures = {"members_total": 100 - days_ago, "new_members": 3, "coupons_issued": 4, "coupons_used": 2}
        session.add(KpiDaily(business_date=day, store_id=MALL_WIDE, **figures))
        session.add(KpiDaily(business_date=day, store_id=store.id, members_total=10, coupons_used=1))
        session.add(
            PointsEntry(
                member_id=member.id, kind=PointsEntryKind.PURCHASE, delta=100 + days_ago, balance_after=0,
                description="消费积分", idempotency_key=f"browser:{days_ago}", business_date=day,
            )
        )  # fmt: skip
    latest = session.query(KpiDaily).filter_by(business_date=today, store_id=MALL_WIDE).one()
    latest.tier_distribution = {"normal": 80, "silver": 15, "gold": 5}
    latest.segment_distribution = {"important_value": 12, "general_retain": 30, "no_purchase": 58}
    session.flush()
    return store.id


def chart_sizes(tab: ConsolePage) -> dict[str, list[float]]:
    """For each chart container: the width and height of the canvas ECharts drew in it."""
    return tab.page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(holder => {
            const canvas = holder.querySelector('canvas');
            const box = canvas ? canvas.getBoundingClientRect() : {width: 0, height: 0};
            return [holder.dataset.chart, [box.width, box.height]];
        }))"""
    )


def test_the_dashboard_draws_every_chart_without_js_errors(
    console_page: Callable[..., ConsolePage], kpis_for_charts: int
) -> None:
    if not pages.echarts_available():
        pytest.skip("ECharts is not vendored (make vendors it from the npm registry)")
    admin = console_page(OperatorRole.ADMIN)

    response = admin.goto("/console/")

    assert response.status == 200
    sizes = chart_sizes(admin)
    assert set(sizes) == set(CHARTS)
    for chart, (width, height) in sizes.items():
        assert width > 100 and height > 100, f"{chart} not drawn: {width}x{height}"
    assert admin.errors == []


def test_a_store_manager_opening_another_stores_dashboard_gets_the_403_page(
    console_page: Callable[..., ConsolePage], kpis_for_charts: int, session: Session
) -> None:
    other = factories.create_store(session, name="他店")
    manager = console_page(OperatorRole.STORE_MANAGER, store_id=kpis_for_charts)

    own = manager.goto("/console/")
    assert own.status == 200
    assert manager.page.locator("select[name=store_id] option").all_inner_texts() == ["本店"]

    response = manager.goto(f"/console/?store_id={other.id}")

    assert response.status == 403
    assert manager.page.locator("h1").inner_text() == "店长只能查看本门店的数据"
    assert manager.page.locator("[data-chart]").count() == 0

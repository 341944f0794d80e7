"""The server-rendered console: login (CSRF, throttle, cookie), role checks on every page and action,
a store manager held to their store, and the dashboard's KPI cards against hand-computed values."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.console import pages
from app.db import bound_database
from app.models import OperatorRole
from app.models.kpi import MALL_WIDE, KpiDaily
from tests import factories
from tests.app.console.console_flows import PASSWORD, log_in, signed_in
from tests.flows import bearer, operator_login

CARD = re.compile(r'<div class="label">([^<]+)</div><div class="value">([^<]+)</div>')
PAGES = ("/console/", "/console/operators")
ACTIONS = ("/console/kpis/recompute", "/console/logout")


def cards(html: str) -> dict[str, str]:
    return dict(CARD.findall(html))


def kpi_day(session: Session, day: date, store_id: int, **counts: int) -> None:
    session.add(KpiDaily(business_date=day, store_id=store_id, **counts))
    session.flush()


def test_login_sets_a_http_only_lax_cookie_and_opens_the_dashboard(
    client: FlaskClient, session: Session
) -> None:
    factories.create_operator(session, "ops", PASSWORD, display_name="王运营")

    response = log_in(client, "ops")

    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    cookie = next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("mm_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console/" in cookie
    dashboard = client.get("/console/").get_data(as_text=True)
    assert "王运营（管理员）" in dashboard and "会员总数" in dashboard


def test_wrong_password_is_refused_in_chinese(client: FlaskClient, session: Session) -> None:
    factories.create_operator(session, "ops", PASSWORD)

    response = log_in(client, "ops", "wrong")

    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_repeated_failures_lock_the_login_even_with_the_right_password(
    client: FlaskClient, session: Session
) -> None:
    factories.create_operator(session, "ops", PASSWORD)
    for _ in range(5):
        assert log_in(client, "ops", "wrong").status_code == 401

    response = log_in(client, "ops")

    assert response.status_code == 429
    assert "登录失败次数过多" in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_login_without_the_csrf_token_is_refused(client: FlaskClient, session: Session) -> None:
    factories.create_operator(session, "ops", PASSWORD)
    client.get("/console/login")

    response = client.post("/console/login", data={"username": "ops", "password": PASSWORD})

    assert response.status_code == 403
    assert "页面已过期" in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_actions_without_the_csrf_token_are_refused(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    for action in ACTIONS:
        assert client.post(action, data={"csrf_token": "forged"}).status_code == 403, action
    assert session.scalar(select(func.count()).select_from(KpiDaily)) == 0
    assert client.get("/console/").status_code == 200  # the logout did not happen either


def test_htmx_requests_carry_the_csrf_token_in_a_header(client: FlaskClient, session: Session) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)
    page = client.get("/console/").get_data(as_text=True)
    assert f'hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'' in page

    assert client.post("/console/kpis/recompute", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/console/kpis/recompute", headers={"X-CSRF-Token": token}).status_code == 302
    assert session.scalar(select(func.count()).select_from(KpiDaily)) > 0


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_strangers_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")


@pytest.mark.parametrize("path", ACTIONS)
def test_every_action_sends_strangers_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.post(path, data={"csrf_token": "x"})

    assert response.status_code == 302 and response.headers["Location"] == "/console/login"


def test_logout_ends_the_session(client: FlaskClient, session: Session) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)

    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/console/").status_code == 302


def test_a_deactivated_operator_is_out_at_once(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    operator = session.scalars(select(factories.Operator)).one()
    operator.is_active = False
    session.flush()

    assert client.get("/console/").status_code == 302


def test_an_auditor_reads_but_cannot_post(client: FlaskClient, session: Session) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)

    assert client.get("/console/operators").status_code == 200
    response = client.post("/console/kpis/recompute", data={"csrf_token": token})

    assert response.status_code == 403
    assert session.scalar(select(func.count()).select_from(KpiDaily)) == 0


def test_marketing_cannot_open_the_operators_page_nor_see_it_in_the_nav(
    client: FlaskClient, session: Session
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)

    assert "运营账号" not in client.get("/console/").get_data(as_text=True)
    assert client.get("/console/operators").status_code == 403
    assert client.post("/console/kpis/recompute", data={"csrf_token": token}).status_code == 403


def test_an_admin_sees_the_operators_with_their_roles_and_can_recompute(
    client: FlaskClient, session: Session
) -> None:
    store = factories.create_store(session, name="星巴克")
    factories.create_operator(
        session, "manager", PASSWORD, role=OperatorRole.STORE_MANAGER, store_id=store.id
    )
    token = signed_in(client, session, OperatorRole.ADMIN)

    listing = client.get("/console/operators").get_data(as_text=True)
    assert "店长" in listing and "星巴克" in listing
    response = client.post("/console/kpis/recompute", data={"csrf_token": token})

    assert response.status_code == 302
    stored = set(session.scalars(select(KpiDaily.store_id)))
    assert stored == {MALL_WIDE, store.id}


@pytest.fixture
def kpi_days(session: Session) -> dict[str, int]:
    """Two days of the mall and of two stores, with KPIs simple enough to compute by hand."""
    ours, theirs = factories.create_store(session, name="本店"), factories.create_store(session, name="他店")
    mall_day1 = {"members_total": 100, "new_members": 10, "active_30d": 40, "previous_active_30d": 50}
    mall_day1 |= {"churned_30d": 20, "repeat_buyers_90d": 10, "active_90d": 60}
    mall_day1 |= {"member_sales_fen": 3000, "non_member_sales_fen": 1000}
    mall_day2 = {"members_total": 110, "new_members": 10, "active_30d": 44, "previous_active_30d": 40}
    mall_day2 |= {"churned_30d": 10, "repeat_buyers_90d": 15, "active_90d": 60}
    mall_day2 |= {"member_sales_fen": 5000, "non_member_sales_fen": 1000}
    kpi_day(session, date(2026, 11, 1), MALL_WIDE, **mall_day1)
    kpi_day(session, date(2026, 11, 2), MALL_WIDE, **mall_day2)
    kpi_day(session, date(2026, 11, 2), ours.id, members_total=8, new_members=3, active_30d=2)
    kpi_day(session, date(2026, 11, 2), theirs.id, members_total=999, new_members=7)
    return {"ours": ours.id, "theirs": theirs.id}


RANGE = "from=2026-11-01&to=2026-11-02"


def test_the_dashboard_shows_hand_computed_kpis(
    client: FlaskClient, session: Session, kpi_days: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    assert cards(html) == {
        "会员总数": "110",  # as of the last day
        "新增会员": "20",  # over the range
        "活跃率（30 天）": "40.0%",  # 44 / 110
        "流失率（30 天）": "25.0%",  # 10 / 40
        "复购率（90 天）": "25.0%",  # 15 / 60
        "会员销售占比": "80.0%",  # (3000 + 5000) / (4000 + 6000)
        "发放积分": "0",  # from the ledger, which is empty here
        "消耗积分": "0",
    }


def test_an_admin_may_pick_any_store(client: FlaskClient, session: Session, kpi_days: dict[str, int]) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    html = client.get(f"/console/?{RANGE}&store_id={kpi_days['theirs']}").get_data(as_text=True)

    assert cards(html)["会员总数"] == "999"


def test_a_store_manager_sees_only_their_store(
    client: FlaskClient, session: Session, kpi_days: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=kpi_days["ours"])

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)
    assert cards(html)["会员总数"] == "8" and cards(html)["活跃率（30 天）"] == "25.0%"
    assert "他店" not in html
    for other in (kpi_days["theirs"], MALL_WIDE):
        forced = client.get(f"/console/?{RANGE}&store_id={other}")
        assert forced.status_code == 403
        assert "店长只能查看本门店的数据" in forced.get_data(as_text=True)
    assert client.get("/console/operators").status_code == 403


def test_bad_filters_get_a_chinese_error_page(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    for query in ("from=2026-13-01", "from=2026-11-05&to=2026-11-01", "from=2025-01-01&to=2026-11-01"):
        response = client.get(f"/console/?{query}")
        assert response.status_code == 400, query
        assert "日期" in response.get_data(as_text=True) or "天" in response.get_data(as_text=True)


def test_the_trend_chart_loads_the_vendored_echarts_when_installed(
    client: FlaskClient, session: Session, kpi_days: dict[str, int], tmp_path: Path, monkeypatch: Any
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    (tmp_path / "echarts.min.js").write_text("/* echarts */")
    monkeypatch.setattr(pages, "VENDOR_DIR", tmp_path)

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    assert "/console/static/vendor/echarts.min.js" in html
    assert '"dates": ["2026-11-01", "2026-11-02"]' in html and '"data": [100, 110]' in html


def test_the_dashboard_renders_without_the_chart_when_echarts_is_missing(
    client: FlaskClient, session: Session, kpi_days: dict[str, int], tmp_path: Path, monkeypatch: Any
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)
    monkeypatch.setattr(pages, "VENDOR_DIR", tmp_path)

    response = client.get(f"/console/?{RANGE}")

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and cards(html)["会员总数"] == "110"
    assert "echarts.min.js" not in html and "图表组件未安装" in html


def test_the_admin_api_lets_an_auditor_read_only_and_keeps_scoped_roles_out(
    client: FlaskClient, session: Session
) -> None:
    store = factories.create_store(session)
    factories.create_operator(session, "auditor", PASSWORD, role=OperatorRole.AUDITOR)
    factories.create_operator(
        session, "manager", PASSWORD, role=OperatorRole.STORE_MANAGER, store_id=store.id
    )
    scene = {"kind": "event", "name": "双十一"}

    auditor = bearer(operator_login(client, "auditor"))
    assert client.get("/api/admin/v1/qr-scenes", headers=auditor).status_code == 200
    refused = client.post("/api/admin/v1/qr-scenes", json=scene, headers=auditor)
    assert refused.status_code == 403 and "只读" in refused.get_json()["message"]
    manager = bearer(operator_login(client, "manager"))
    assert client.get("/api/admin/v1/kpis?from=2026-11-01&to=2026-11-02", headers=manager).status_code == 403


def test_the_session_cookie_is_secure_outside_development(config: Config, session: Session) -> None:
    staging = create_app(config.with_overrides(APP_ENV="staging"))
    factories.create_operator(session, "ops", PASSWORD)
    try:
        response = log_in(staging.test_client(), "ops")
    finally:
        bound_database(staging).engine.dispose()

    assert response.status_code == 302
    cookie = next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("mm_console=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie

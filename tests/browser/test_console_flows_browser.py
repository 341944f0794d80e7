"""Console pages in a real browser: a coupon template made in the form, published and then claimed by a
shopper through the mini-program API; the tag rule builder's live htmx count; a store manager kept to
their own store's members; searching a member by phone and revealing the phone with htmx."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import extensions, mall_time
from app.models import AuditEvent, CouponTemplate, OperatorRole, TemplateStatus
from tests import factories
from tests.browser.conftest import ConsolePage, LiveServer
from tests.flows import POLICY_VERSION

PREVIEW = re.compile(r"符合条件的会员：([\d,]+) 人")


@pytest.fixture
def vault(live_server: LiveServer) -> Any:
    with live_server.app.app_context():
        return extensions().phone_vault


def json_of(response: Any) -> Any:
    """The body of a Playwright APIResponse, for assertion messages too."""
    try:
        return response.json()
    except Exception:  # a non-JSON body is shown as text
        return response.text()


def test_a_coupon_made_in_the_form_and_published_is_claimed_by_a_shopper(
    console_page: Callable[..., ConsolePage], live_server: LiveServer, session: Session
) -> None:
    factories.create_tiers(session)
    marketing = console_page(OperatorRole.MARKETING)
    page = marketing.page

    marketing.goto("/console/coupons/new")
    page.select_option("select[name=kind]", "cash_off")
    page.fill("input[name=name]", "浏览器满200减30")
    page.fill("input[name=face_value_fen]", "30")
    page.fill("input[name=min_spend_fen]", "200")
    page.fill("input[name=total_stock]", "50")
    page.fill("input[name=valid_days_after_issue]", "15")
    with page.expect_navigation(wait_until="networkidle"):
        page.click("form.coupon-form button[type=submit]")

    assert "/console/coupons?saved=" in page.url
    assert page.locator("p.notice").inner_text() == "券模板已保存。"
    template = session.scalars(select(CouponTemplate).filter_by(name="浏览器满200减30")).one()
    assert (template.status, template.face_value_fen, template.min_spend_fen, template.total_stock) == (
        TemplateStatus.DRAFT,
        3_000,
        20_000,
        50,
    )
    row = page.locator(f"tr[data-template='{template.id}']")
    assert row.locator("td").nth(3).inner_text().strip() == "满 ¥200.00 减 ¥30.00"
    with page.expect_navigation(wait_until="networkidle"):
        row.locator("button", has_text="发布").click()
    assert row.locator(".status").inner_text() == "进行中"

    # A shopper signs up and claims it through the mini-program API of the same server.
    api = page.context.request
    login = api.post("/api/mp/v1/auth/login", data={"code": "sandbox:o-browser-coupon"})
    assert login.status == 200, json_of(login)
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    signup = api.post(
        "/api/mp/v1/members",
        data={"phone_code": "sandbox-phone:13900139888", "consent_version": POLICY_VERSION},
        headers=bearer,
    )
    assert signup.status == 201, json_of(signup)
    claim = api.post(
        f"/api/mp/v1/coupon-templates/{template.id}/claims",
        headers={**bearer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert claim.status == 201, json_of(claim)
    assert (claim.json()["name"], claim.json()["face_value_fen"], claim.json()["status"]) == (
        "浏览器满200减30",
        3_000,
        "available",
    )

    marketing.goto("/console/coupons")
    row = page.locator(f"tr[data-template='{template.id}']")
    assert row.locator("[data-stat=issued]").inner_text() == "1"
    assert row.locator("[data-stat=used]").inner_text() == "0"
    assert row.locator("[data-stat=remaining]").inner_text() == "49 / 50"
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "coupon_template").order_by(AuditEvent.id)
    ).all()
    assert actions == ["coupon_template.create", "coupon_template.publish"]
    assert marketing.errors == []


def preview_count(tab: ConsolePage, expected: int) -> int:
    """Waits for the htmx preview fragment to show `expected` members, then returns the count shown."""
    count = tab.page.locator("#rule-preview .preview-count")
    count.filter(has_text=f"符合条件的会员：{expected:,} 人").wait_for()
    match = PREVIEW.fullmatch(count.inner_text().strip())
    assert match, count.inner_text()
    return int(match.group(1).replace(",", ""))


def test_the_rule_builder_previews_the_members_a_condition_hits_as_it_changes(
    console_page: Callable[..., ConsolePage], session: Session, vault: Any
) -> None:
    tier = factories.create_tiers(session)[0]
    for phone, points in (("13800000001", 50), ("13800000002", 500), ("13800000003", 1_000)):
        factories.create_member(session, vault, phone, tier, points_balance=points)
    factories.create_member(session, vault, "13800000004", tier, points_balance=0)
    marketing = console_page(OperatorRole.MARKETING)
    page = marketing.page

    marketing.goto("/console/tags/new")
    assert "修改条件后自动计算" in page.locator("#rule-preview").inner_text()
    rows = page.locator("[data-rows] [data-row]")
    assert rows.count() == 1  # an empty condition row to start with
    row = rows.first
    row.locator("select[name=field]").select_option("points_balance")
    row.locator("select[name=op]").select_option(">=")
    row.locator("input[name=value]").fill("100")
    row.locator("input[name=value]").press("Tab")  # commits the value: its change event

    assert preview_count(marketing, 2) == 2
    sample = page.locator("#rule-preview tbody tr")
    assert sample.count() == 2
    assert "138****0002" in sample.first.inner_text()  # masked phones only

    row.locator("input[name=value]").fill("10")
    row.locator("input[name=value]").press("Tab")
    assert preview_count(marketing, 3) == 3
    assert marketing.errors == []

    row.locator("input[name=value]").fill("很多")
    row.locator("input[name=value]").press("Tab")
    alert = page.locator("#rule-preview [role=alert]")
    alert.wait_for()
    assert "应为整数" in alert.inner_text()
    # Chromium logs the refused preview's status; nothing else went wrong.
    assert [error for error in marketing.errors if "status of 422" not in error] == []


def test_a_store_manager_opens_their_stores_member_but_not_another_stores(
    console_page: Callable[..., ConsolePage], session: Session, vault: Any, live_server: LiveServer
) -> None:
    tier = factories.create_tiers(session)[0]
    own_store = factories.create_store(session, name="本店")
    other_store = factories.create_store(session, name="他店")
    with live_server.app.app_context():
        now = mall_time().now
    ours = factories.create_member(session, vault, "13700000001", tier, nickname="本店顾客")
    theirs = factories.create_member(session, vault, "13700000002", tier, nickname="他店顾客")
    factories.create_purchase(session, own_store, 10_000, now - timedelta(days=2), ours)
    factories.create_purchase(session, other_store, 10_000, now - timedelta(days=2), theirs)
    manager = console_page(OperatorRole.STORE_MANAGER, store_id=own_store.id)
    page = manager.page

    own = manager.goto(f"/console/members/{ours.id}")
    assert own.status == 200
    assert page.locator("h1").inner_text() == f"会员 {ours.id} · 本店顾客"
    assert "137****0001" in page.locator("#profile").inner_text()
    assert page.get_by_text("显示完整手机号").count() == 0  # only admins reveal

    refused = manager.goto(f"/console/members/{theirs.id}")

    assert refused.status == 403
    assert page.locator("h1").inner_text() == "只能查看本门店的会员"
    assert "他店顾客" not in page.content()
    assert "137****0002" not in page.content()
    # The search does not find them either.
    manager.goto("/console/members")
    page.fill("input[name=q]", "13700000002")
    with page.expect_navigation(wait_until="networkidle"):
        page.click("form.filters button[type=submit]")
    assert page.locator(".members-table tbody").inner_text().strip() == "没有符合条件的会员"
    assert [error for error in manager.errors if "status of 403" not in error] == []


def test_an_admin_finds_a_member_by_phone_and_reveals_the_phone_with_htmx(
    console_page: Callable[..., ConsolePage], session: Session, vault: Any
) -> None:
    tier = factories.create_tiers(session)[0]
    wanted = factories.create_member(session, vault, "13912345678", tier, nickname="目标会员")
    factories.create_member(session, vault, "13912345679", tier, nickname="别的会员")
    admin = console_page(OperatorRole.ADMIN)
    page = admin.page

    admin.goto("/console/members")
    page.fill("input[name=q]", "13912345678")
    with page.expect_navigation(wait_until="networkidle"):
        page.click("form.filters button[type=submit]")
    rows = page.locator(".members-table tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td").nth(1).inner_text() == "139****5678"
    assert "13912345678" not in page.url  # the phone is posted, never in the URL
    assert "13912345678" not in page.locator(".members-table").inner_text()

    with page.expect_navigation(wait_until="networkidle"):
        rows.first.locator("a").click()
    assert page.url.endswith(f"/console/members/{wanted.id}")
    assert page.locator("h1").inner_text() == f"会员 {wanted.id} · 目标会员"
    assert page.locator("#member-phone").inner_text().startswith("139****5678")
    url_before = page.url

    page.click("text=显示完整手机号")
    revealed = page.locator("#member-phone.revealed-phone")
    revealed.wait_for()

    assert revealed.inner_text() == "13912345678 （已记录查看日志）"
    assert page.url == url_before  # swapped in place by htmx, not a new page
    assert page.locator("#member-phone").count() == 1
    views = session.scalars(select(AuditEvent).filter_by(action="member.view_phone")).all()
    assert [(event.target_type, event.target_id) for event in views] == [("member", str(wanted.id))]
    assert admin.errors == []

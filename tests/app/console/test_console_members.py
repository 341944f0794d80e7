"""Console member pages: search (phone through the blind index, nickname prefix, id), the 360 page,
revealing a phone (admin only, audited), points adjustment (once per form, audited) and the Excel
export (masked phones, capped, audited); a store manager held to their store's members throughout."""

from __future__ import annotations

import io
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.console import member_views
from app.extensions import extensions
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    AssignmentReason,
    AuditEvent,
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    Member,
    MemberPlate,
    MemberTag,
    OperatorRole,
    ParkingPayment,
    ParkingPaymentStatus,
    ParkingQuote,
    PointsEntry,
    PointsEntryKind,
    PurchaseRefund,
    QrScene,
    SceneKind,
    StaffRole,
    Store,
    Tag,
    TagKind,
    TagSource,
    Tier,
    TierChange,
)
from app.models.task import TaskOutcome, TaskRule, TaskStatus, TaskTrigger, TaskType
from app.pii import PhoneVault
from tests import factories
from tests.app.console.console_flows import csrf_of, log_in, signed_in

ROW_ID = re.compile(r'<a href="/console/members/(\d+)">')
FORM_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
MASKED = re.compile(r"^1\d{2}\*{4}\d{4}$")
PHONES = {
    "by_scene": "13800000001",
    "by_advisor": "13800000002",
    "by_purchase": "13800000003",
    "elsewhere": "13800000004",
    "unattached": "13800000005",
    "discount": "13800000006",
}


@dataclass
class Mall:
    ours: Store
    theirs: Store
    tier: Tier
    vault: PhoneVault
    members: dict[str, Member]

    def id(self, name: str) -> int:
        return self.members[name].id


@pytest.fixture
def mall(app: Flask, session: Session) -> Mall:
    """Three members of 本店 (one per way of belonging to it), one of 他店, two of no store."""
    tier = factories.create_tiers(session)[0]
    ours, theirs = factories.create_store(session, name="本店"), factories.create_store(session, name="他店")
    ann = factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安导购", store_id=ours.id)
    cid = factories.create_staff(session, "cid", StaffRole.ADVISOR, name="西导购", store_id=theirs.id)
    our_qr = QrScene(kind=SceneKind.STORE, name="本店门口码", scene="st-ours", store_id=ours.id)
    their_qr = QrScene(kind=SceneKind.STORE, name="他店码", scene="st-theirs", store_id=theirs.id)
    session.add_all([our_qr, their_qr])
    session.flush()
    with app.app_context():
        vault = extensions().phone_vault
    fields = {
        "by_scene": {"nickname": "张三", "signup_scene_id": our_qr.id},
        "by_advisor": {"nickname": "张小明", "advisor_id": ann.id},
        "by_purchase": {"nickname": "李四"},
        "elsewhere": {"nickname": "张外店", "signup_scene_id": their_qr.id, "advisor_id": cid.id},
        "unattached": {"nickname": "50%_off"},
        "discount": {"nickname": "50元券"},
    }
    members = {
        name: factories.create_member(session, vault, PHONES[name], tier, **values)
        for name, values in fields.items()
    }
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    factories.create_purchase(session, ours, 10_000, at, members["by_purchase"])
    factories.create_purchase(session, theirs, 10_000, at, members["elsewhere"])
    return Mall(ours, theirs, tier, vault, members)


def listed_ids(html: str) -> set[int]:
    return {int(found) for found in ROW_ID.findall(html)}


def search(client: FlaskClient, token: str, q: str, by: str = "auto") -> str:
    """Searches the way the page's form does: a POST, so that a phone stays out of the URL."""
    response = client.post("/console/members", data={"csrf_token": token, "q": q, "by": by})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def ledger_count(session: Session, member_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(PointsEntry).where(PointsEntry.member_id == member_id)
    )


def balance(session: Session, member_id: int) -> int:
    return session.scalar(select(Member.points_balance).where(Member.id == member_id).execution_options())


# --- access -------------------------------------------------------------------------------------


def test_strangers_are_sent_to_the_login(client: FlaskClient, mall: Mall) -> None:
    member_id = mall.id("by_scene")
    for path in ("/console/members", f"/console/members/{member_id}"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/console/login?next=")
    for path in (
        f"/console/members/{member_id}/phone",
        f"/console/members/{member_id}/points-adjustments",
        "/console/members/export",
    ):
        response = client.post(path, data={"csrf_token": "x"})
        assert response.status_code == 302 and response.headers["Location"] == "/console/login"


@pytest.mark.parametrize(
    ("role", "reveal", "adjust"),
    [
        (OperatorRole.ADMIN, 200, 302),
        (OperatorRole.MARKETING, 403, 302),
        (OperatorRole.STORE_MANAGER, 403, 403),
        (OperatorRole.AUDITOR, 403, 403),
    ],
)
def test_each_role_reads_the_pages_and_only_some_may_act(
    client: FlaskClient, session: Session, mall: Mall, role: OperatorRole, reveal: int, adjust: int
) -> None:
    member_id = mall.id("by_scene")
    token = signed_in(client, session, role, store_id=mall.ours.id)

    assert client.get("/console/members").status_code == 200
    page = client.get(f"/console/members/{member_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert ("显示完整手机号" in html) is (reveal == 200)
    assert ('name="idempotency_key"' in html) is (adjust == 302)
    assert (
        client.post(f"/console/members/{member_id}/phone", data={"csrf_token": token}).status_code == reveal
    )
    adjustment = {"csrf_token": token, "delta": "10", "reason": "补录", "idempotency_key": "a" * 32}
    assert (
        client.post(f"/console/members/{member_id}/points-adjustments", data=adjustment).status_code == adjust
    )
    assert client.post("/console/members/export", data={"csrf_token": token}).status_code == 200

    assert len(audit_rows(session, "member.view_phone")) == (1 if reveal == 200 else 0)
    assert balance(session, member_id) == (10 if adjust == 302 else 0)
    assert len(audit_rows(session, "member.export")) == 1


def test_actions_without_the_csrf_token_change_nothing(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)

    adjustment = {"csrf_token": "forged", "delta": "10", "reason": "补录", "idempotency_key": "a" * 32}
    assert client.post(f"/console/members/{member_id}/points-adjustments", data=adjustment).status_code == 403
    assert (
        client.post(f"/console/members/{member_id}/phone", data={"csrf_token": "forged"}).status_code == 403
    )
    assert client.post("/console/members/export", data={"csrf_token": "forged"}).status_code == 403

    assert balance(session, member_id) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_members_is_in_everyones_nav(client: FlaskClient, session: Session) -> None:
    signed_in(client, session, OperatorRole.AUDITOR)

    assert '<a href="/console/members"' in client.get("/console/").get_data(as_text=True)


# --- store managers -----------------------------------------------------------------------------


def test_a_store_manager_finds_only_their_stores_members(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    token = signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=mall.ours.id)

    everyone = client.get("/console/members").get_data(as_text=True)
    by_name = search(client, token, "张", by="name")
    by_phone = search(client, token, PHONES["elsewhere"])
    by_id = search(client, token, str(mall.id("elsewhere")), by="id")

    ours = {mall.id("by_scene"), mall.id("by_advisor"), mall.id("by_purchase")}
    assert listed_ids(everyone) == ours
    assert listed_ids(by_name) == {mall.id("by_scene"), mall.id("by_advisor")}
    assert listed_ids(by_phone) == set() and listed_ids(by_id) == set()
    assert "仅显示本门店的会员" in everyone


@pytest.mark.parametrize("other", ["elsewhere", "unattached"])
def test_a_store_manager_cannot_open_another_stores_member(
    client: FlaskClient, session: Session, mall: Mall, other: str
) -> None:
    signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=mall.ours.id)

    response = client.get(f"/console/members/{mall.id(other)}")

    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "只能查看本门店的会员" in html and PHONES[other][-4:] not in html
    for name in ("by_scene", "by_advisor", "by_purchase"):
        assert client.get(f"/console/members/{mall.id(name)}").status_code == 200, name


def test_a_store_manager_without_a_store_is_refused(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    signed_in(client, session, OperatorRole.STORE_MANAGER)

    assert client.get("/console/members").status_code == 403
    assert client.get(f"/console/members/{mall.id('by_scene')}").status_code == 403


def test_a_store_managers_export_holds_their_stores_members_only(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    token = signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=mall.ours.id)

    response = client.post("/console/members/export", data={"csrf_token": token})

    rows = sheet_rows(response.data)
    assert {row[0] for row in rows} == {mall.id("by_scene"), mall.id("by_advisor"), mall.id("by_purchase")}
    (event,) = audit_rows(session, "member.export")
    assert event.detail["rows"] == 3 and event.detail["filter"]["store_id"] == mall.ours.id


# --- search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["13800000002", "+86 138-0000-0002", "8613800000002"])
def test_search_by_phone_finds_the_member_through_the_blind_index(
    client: FlaskClient, session: Session, mall: Mall, typed: str
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)

    html = search(client, token, typed)

    assert listed_ids(html) == {mall.id("by_advisor")}
    assert "138****0002" in html and "张小明" in html and "安导购" in html and "普卡" in html
    assert "下一页" not in html


def test_search_by_nickname_is_a_prefix_match_with_wildcards_escaped(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)

    def found(q: str, by: str = "name") -> set[int]:
        return listed_ids(search(client, token, q, by))

    assert found("张") == {mall.id(n) for n in ("by_scene", "by_advisor", "elsewhere")}
    assert found("张小", by="auto") == {mall.id("by_advisor")}
    assert found("小明") == set()  # a prefix, not a substring
    assert found("50%") == {mall.id("unattached")}  # not 50元券
    assert found("50_") == set()


def test_search_by_member_id(client: FlaskClient, session: Session, mall: Mall) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)

    html = search(client, token, str(mall.id("by_purchase")))
    # Paging links are GETs: by name or id, never by phone.
    linked = client.get(f"/console/members?by=id&q={mall.id('by_scene')}").get_data(as_text=True)

    assert listed_ids(html) == {mall.id("by_purchase")}
    assert listed_ids(linked) == {mall.id("by_scene")}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"by": "phone", "q": "1380000"}, "请输入完整的 11 位中国大陆手机号"),
        ({"by": "id", "q": "abc"}, "会员ID应为正整数"),
        ({"by": "id", "q": "99999999999999999999"}, "会员ID应为正整数"),
        ({"by": "bogus", "q": "x"}, "搜索方式有误"),
        ({"q": "张", "before": "x"}, "翻页参数有误"),
    ],
)
def test_a_search_that_cannot_mean_anything_is_explained(
    client: FlaskClient, session: Session, mall: Mall, query: dict[str, str], message: str
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    response = client.get("/console/members", query_string=query)

    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_results_are_paged_newest_first(client: FlaskClient, session: Session, mall: Mall) -> None:
    extra = [
        factories.create_member(session, mall.vault, f"139000000{n:02d}", mall.tier).id for n in range(20)
    ]
    signed_in(client, session, OperatorRole.ADMIN)

    first = client.get("/console/members").get_data(as_text=True)
    link = re.search(r'href="(/console/members\?[^"]*before=\d+[^"]*)"', first)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)

    everyone = set(extra) | {member.id for member in mall.members.values()}
    assert len(listed_ids(first)) == 20 and listed_ids(first) == set(sorted(everyone)[-20:])
    assert listed_ids(second) == everyone - listed_ids(first)
    assert "下一页" not in second and "第一页" in second


# --- member 360 ---------------------------------------------------------------------------------


def test_the_360_page_shows_every_section(client: FlaskClient, session: Session, mall: Mall) -> None:
    member = mall.members["by_scene"]
    tiers = list(session.scalars(select(Tier).order_by(Tier.rank)))
    operator = factories.create_operator(session, "clerk", display_name="赵运营")
    ann = factories.create_staff(session, "ann2", StaffRole.ADVISOR, name="钱导购", store_id=mall.ours.id)
    member.nickname, member.birthday, member.advisor_note = "张三", date(1990, 5, 17), "喜欢周末来店"
    member.referred_by_member_id, member.advisor_id = mall.id("discount"), ann.id
    at = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
    session.add(
        TierChange(
            member_id=member.id,
            from_tier_id=tiers[0].id,
            to_tier_id=tiers[1].id,
            reason="purchase",
            rolling_spend_fen=523_400,
            created_at=at,
        )
    )
    session.add(
        PointsEntry(
            member_id=member.id,
            kind=PointsEntryKind.ADJUSTMENT,
            delta=321,
            balance_after=321,
            description="人工调整：生日补发",
            idempotency_key="k1",
            operator_id=operator.id,
            business_date=date(2026, 11, 20),
            created_at=at,
        )
    )
    template = factories.create_coupon_template(session, name="双十一满减")
    session.add(
        Coupon(
            template_id=template.id,
            member_id=member.id,
            kind=CouponKind.CASH_OFF,
            name="满100减20",
            face_value_fen=2_000,
            min_spend_fen=10_000,
            status=CouponStatus.USED,
            source=CouponSource.CLAIM,
            idempotency_key="c1",
            valid_from=at,
            valid_until=at + timedelta(days=30),
            issued_on=date(2026, 11, 20),
            used_at=at,
        )
    )
    purchase = factories.create_purchase(
        session, mall.ours, 88_800, at, member, receipt_no="R-777", points_earned=888
    )
    session.add(
        PurchaseRefund(purchase_id=purchase.id, refund_no="RF-9", amount_fen=8_800, points_clawed_back=88)
    )
    session.add(MemberPlate(member_id=member.id, plate="粤BD12345"))
    quote = ParkingQuote(
        member_id=member.id,
        plate="粤BD12345",
        entry_time=at,
        parking_minutes=180,
        fee_fen=1_500,
        amount_due_fen=500,
        expires_at=at,
    )
    session.add(quote)
    session.flush()
    session.add(
        ParkingPayment(
            order_no="P1",
            idempotency_key="p1",
            quote_id=quote.id,
            member_id=member.id,
            plate="粤BD12345",
            entry_time=at,
            parking_minutes=180,
            fee_fen=1_500,
            points=1_000,
            points_value_fen=1_000,
            amount_due_fen=500,
            status=ParkingPaymentStatus.PAID,
            business_date=date(2026, 11, 20),
        )
    )
    tag = Tag(code="coffee", name="咖啡爱好者", kind=TagKind.MANUAL)
    session.add(tag)
    session.flush()
    session.add(MemberTag(member_id=member.id, tag_id=tag.id, source=TagSource.MANUAL))
    session.add(
        AdvisorAssignment(
            member_id=member.id,
            staff_id=ann.id,
            reason=AssignmentReason.POOL_CLAIM,
            assigned_at=at,
            ended_at=at,
            end_reason=AssignmentEnd.RETURNED_TO_POOL,
        )
    )
    rule = TaskRule(
        name="规则",
        trigger_kind=TaskTrigger.TAG,
        task_type=TaskType.BIRTHDAY_GREETING,
        message_template="您好",
        priority=5,
        cool_down_days=7,
        due_in_days=2,
    )
    session.add(rule)
    session.flush()
    session.add(
        AdvisorTask(
            business_date=date(2026, 11, 20),
            member_id=member.id,
            advisor_id=ann.id,
            store_id=mall.ours.id,
            rule_id=rule.id,
            task_type=TaskType.BIRTHDAY_GREETING,
            priority=5,
            trigger_kind=TaskTrigger.TAG,
            trigger_value="birthday",
            due_date=date(2026, 11, 22),
            status=TaskStatus.DONE,
            outcome=TaskOutcome.BOOKED_VISIT,
            note="约了周六到店",
        )
    )
    session.flush()
    signed_in(client, session, OperatorRole.AUDITOR)

    html = client.get(f"/console/members/{member.id}").get_data(as_text=True)

    profile = ["138****0001", "张三", "1990-05-17", "普卡", "本店门口码", "门店码", "50元券", "138****0006"]
    profile += ["钱导购", "喜欢周末来店"]
    tier_history = ["2026-11-20 10:30", "银卡", "消费升级", "¥5,234.00"]
    ledger = ["+321", "人工调整：生日补发", "赵运营"]
    coupons = ["满100减20", "双十一满减", "已核销", "领取"]
    purchases = ["R-777", "¥888.00", "RF-9", "¥88.00", "+888"]
    parking = ["粤BD12345", "¥15.00", "¥10.00", "¥5.00", "已支付"]
    tags = ["咖啡爱好者", "手工"]
    advisors = ["从门店池认领", "退回门店池"]
    tasks = ["生日祝福", "已完成", "已预约到店", "约了周六到店"]
    for expected in profile + tier_history + ledger + coupons + purchases + parking + tags + advisors + tasks:
        assert expected in html, expected
    assert PHONES["by_scene"] not in html


def test_the_ledger_is_paged(client: FlaskClient, session: Session, mall: Mall) -> None:
    member_id = mall.id("by_scene")
    for n in range(1, 23):
        session.add(
            PointsEntry(
                member_id=member_id,
                kind=PointsEntryKind.CHECK_IN,
                delta=n,
                balance_after=n,
                description=f"签到第{n}天",
                idempotency_key=f"k{n}",
                business_date=date(2026, 11, 1),
            )
        )
    session.flush()
    signed_in(client, session, OperatorRole.ADMIN)

    first = client.get(f"/console/members/{member_id}").get_data(as_text=True)
    link = re.search(r'href="([^"]*ledger_before=(\d+))', first)
    assert link is not None
    second = client.get(link.group(1)).get_data(as_text=True)

    assert "签到第22天" in first and "签到第3天" in first and "签到第2天" not in first
    assert "签到第2天" in second and "签到第1天" in second and "签到第3天" not in second


def test_an_unknown_member_is_a_404_page(client: FlaskClient, session: Session, mall: Mall) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    response = client.get("/console/members/999999")

    assert response.status_code == 404 and "会员不存在" in response.get_data(as_text=True)


# --- revealing the phone ------------------------------------------------------------------------


def test_an_admin_reveals_a_phone_once_and_it_is_audited(
    client: FlaskClient, session: Session, mall: Mall, caplog: pytest.LogCaptureFixture
) -> None:
    member_id = mall.id("by_advisor")
    token = signed_in(client, session, OperatorRole.ADMIN)
    caplog.set_level(logging.DEBUG)

    response = client.post(f"/console/members/{member_id}/phone", data={"csrf_token": token})
    fragment = client.post(
        f"/console/members/{member_id}/phone", headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )

    assert response.status_code == 200 and PHONES["by_advisor"] in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert PHONES["by_advisor"] in fragment.get_data(as_text=True)
    assert "<html" not in fragment.get_data(as_text=True)
    events = audit_rows(session, "member.view_phone")
    assert [(event.target_type, event.target_id) for event in events] == [("member", str(member_id))] * 2
    assert all(PHONES["by_advisor"] not in str(event.detail) for event in events)
    assert PHONES["by_advisor"] not in client.get(f"/console/members/{member_id}").get_data(as_text=True)
    assert PHONES["by_advisor"] not in caplog.text


# --- points adjustment --------------------------------------------------------------------------


def adjustment_form(client: FlaskClient, member_id: int) -> dict[str, str]:
    html = client.get(f"/console/members/{member_id}").get_data(as_text=True)
    key = FORM_KEY.search(html)
    assert key is not None
    return {"csrf_token": csrf_of(html), "idempotency_key": key.group(1)}


def test_a_double_submitted_adjustment_adjusts_once(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.MARKETING)
    form = adjustment_form(client, member_id) | {"delta": "150", "reason": "活动补发"}

    first = client.post(f"/console/members/{member_id}/points-adjustments", data=form)
    second = client.post(f"/console/members/{member_id}/points-adjustments", data=form)

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert balance(session, member_id) == 150 and ledger_count(session, member_id) == 1
    entry = session.scalars(select(PointsEntry).where(PointsEntry.member_id == member_id)).one()
    assert entry.kind is PointsEntryKind.ADJUSTMENT and entry.description == "人工调整：活动补发"
    (event,) = audit_rows(session, "points.adjust")
    assert event.target_id == str(member_id)
    assert event.detail == {"points": 150, "reason": "活动补发", "entry_id": entry.id}
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    assert "积分已调整" in page and "+150" in page
    assert FORM_KEY.search(page).group(1) != form["idempotency_key"]  # type: ignore[union-attr]


@pytest.mark.mariadb
def test_concurrent_submits_of_one_form_adjust_once(
    app: Flask, client: FlaskClient, session: Session, mall: Mall
) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)
    key = adjustment_form(client, member_id)["idempotency_key"]
    browsers = []
    for _ in range(4):  # the same operator in four tabs, each with its own session and CSRF token
        browser = app.test_client()
        log_in(browser, OperatorRole.ADMIN.value)
        browsers.append((browser, adjustment_form(browser, member_id)["csrf_token"]))

    def submit(tab: tuple[FlaskClient, str]) -> int:
        browser, token = tab
        form = {"csrf_token": token, "idempotency_key": key, "delta": "70", "reason": "并发补发"}
        return browser.post(f"/console/members/{member_id}/points-adjustments", data=form).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(submit, browsers))

    assert statuses == [302] * 4
    assert balance(session, member_id) == 70 and ledger_count(session, member_id) == 1
    assert len(audit_rows(session, "points.adjust")) == 1


def test_a_debit_within_the_balance_is_taken(client: FlaskClient, session: Session, mall: Mall) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)
    credit = adjustment_form(client, member_id) | {"delta": "100", "reason": "补发"}
    assert client.post(f"/console/members/{member_id}/points-adjustments", data=credit).status_code == 302

    debit = adjustment_form(client, member_id) | {"delta": "-40", "reason": "误发扣回"}
    assert client.post(f"/console/members/{member_id}/points-adjustments", data=debit).status_code == 302

    assert balance(session, member_id) == 60 and ledger_count(session, member_id) == 2
    assert len(audit_rows(session, "points.adjust")) == 2


@pytest.mark.parametrize(
    ("delta", "reason", "message"),
    [
        ("0", "补发", "调整积分不能为 0"),
        ("abc", "补发", "调整积分应为整数"),
        ("1.5", "补发", "调整积分应为整数"),
        ("", "补发", "调整积分应为整数"),
        ("2000000", "补发", "绝对值不能超过"),
        ("100", "", "请填写调整原因"),
        ("100", "   ", "请填写调整原因"),
        ("100", "长" * 101, "请填写调整原因"),
        ("-500", "扣减", "扣减积分不能超过会员当前可用积分"),
    ],
)
def test_bad_adjustments_show_the_form_again_with_a_chinese_message(
    client: FlaskClient, session: Session, mall: Mall, delta: str, reason: str, message: str
) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)
    form = adjustment_form(client, member_id) | {"delta": delta, "reason": reason}

    response = client.post(f"/console/members/{member_id}/points-adjustments", data=form)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'name="delta"' in html
    assert (
        f'value="{form["idempotency_key"]}"' in html
    )  # the same form, so a corrected resubmit is still once
    assert balance(session, member_id) == 0 and ledger_count(session, member_id) == 0
    assert audit_rows(session, "points.adjust") == []


def test_a_forged_form_key_is_refused(client: FlaskClient, session: Session, mall: Mall) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)
    form = adjustment_form(client, member_id) | {"delta": "10", "reason": "补发", "idempotency_key": "x"}

    response = client.post(f"/console/members/{member_id}/points-adjustments", data=form)

    assert response.status_code == 422 and "表单已过期" in response.get_data(as_text=True)
    assert ledger_count(session, member_id) == 0


def test_a_reused_form_with_another_amount_is_refused(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    member_id = mall.id("by_scene")
    signed_in(client, session, OperatorRole.ADMIN)
    form = adjustment_form(client, member_id) | {"delta": "10", "reason": "补发"}
    assert client.post(f"/console/members/{member_id}/points-adjustments", data=form).status_code == 302

    response = client.post(f"/console/members/{member_id}/points-adjustments", data=form | {"delta": "20"})

    assert response.status_code == 422 and "请求编号" in response.get_data(as_text=True)
    assert balance(session, member_id) == 10 and ledger_count(session, member_id) == 1


# --- export -------------------------------------------------------------------------------------


def sheet_rows(data: bytes) -> list[tuple[object, ...]]:
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == member_views.EXPORT_COLUMNS
    return rows[1:]


def test_the_export_opens_in_excel_with_masked_phones_only(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)

    response = client.post("/console/members/export", data={"csrf_token": token, "by": "name", "q": "张"})

    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = sheet_rows(response.data)
    assert [row[0] for row in rows] == [mall.id(n) for n in ("elsewhere", "by_advisor", "by_scene")]
    assert all(MASKED.match(str(row[1])) for row in rows)
    cells = {str(cell) for row in rows for cell in row}
    assert not cells & set(PHONES.values())
    assert rows[1][1:] == ("138****0002", "张小明", "普卡", 0, rows[1][5], "安导购")
    (event,) = audit_rows(session, "member.export")
    assert event.detail == {"filter": {"text": "张", "by": "name", "store_id": None}, "rows": 3}


def test_an_export_by_phone_does_not_log_the_phone(client: FlaskClient, session: Session, mall: Mall) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post("/console/members/export", data={"csrf_token": token, "q": PHONES["by_scene"]})

    assert [row[0] for row in sheet_rows(response.data)] == [mall.id("by_scene")]
    (event,) = audit_rows(session, "member.export")
    assert PHONES["by_scene"] not in str(event.detail) and event.detail["filter"]["by"] == "phone"


def test_the_export_is_capped(
    client: FlaskClient, session: Session, mall: Mall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(member_views, "MAX_EXPORT_ROWS", 2)
    token = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post("/console/members/export", data={"csrf_token": token})

    assert [row[0] for row in sheet_rows(response.data)] == [mall.id("discount"), mall.id("unattached")]
    assert audit_rows(session, "member.export")[0].detail["rows"] == 2


def test_an_export_of_a_bad_search_explains_and_writes_nothing(
    client: FlaskClient, session: Session, mall: Mall
) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post("/console/members/export", data={"csrf_token": token, "by": "phone", "q": "123"})

    assert response.status_code == 422 and "请输入完整的 11 位" in response.get_data(as_text=True)
    assert audit_rows(session, "member.export") == []

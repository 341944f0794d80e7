"""The console's rules pages (规则配置): who may see and change them, each form saving through the
service the shoppers' side reads, invalid input re-rendered with Chinese messages and nothing
saved, and every change audited with its values before and after."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.console.forms import format_yuan, parse_yuan
from app.extensions import mall_time
from app.models import (
    AuditEvent,
    CheckIn,
    CheckInStreakBonus,
    EarningRate,
    Member,
    Operator,
    OperatorRole,
    ParkingRules,
    PointsPromotion,
    PointsSettings,
    StaffRole,
    Tier,
)
from tests import factories
from tests.app.console.console_flows import signed_in
from tests.flows import bearer, credited_purchase, operator_login, registered_shopper

DEFAULTS = PointsSettings.DEFAULTS
FIELD_ERROR = re.compile(r'data-field="([^"]+)">([^<]+)<')

VIEW_PAGES = (
    "/console/rules",
    "/console/rules/points",
    "/console/rules/earning-rates",
    "/console/rules/promotions",
    "/console/rules/check-in",
    "/console/rules/referral",
    "/console/rules/tiers",
    "/console/rules/parking",
)
EDIT_PAGES = ("/console/rules/earning-rates/new", "/console/rules/promotions/new", "/console/rules/tiers/new")
# Every change, with a valid form: refused roles must leave the database as it was.
ACTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/console/rules/points", {"welcome_points": "300"}),
    ("/console/rules/check-in", {"checkin_points": "9"}),
    ("/console/rules/referral", {"referrer_points": "1", "referee_points": "1"}),
    ("/console/rules/check-in/bonuses", {"streak_days": "3", "bonus_points": "10"}),
    ("/console/rules/earning-rates/new", {"category": "*", "spend_unit_fen": "1", "points_per_unit": "2"}),
    ("/console/rules/promotions/new", {"name": "双倍", "starts_on": "2026-12-01", "ends_on": "2026-12-02"}),
    ("/console/rules/tiers/new", {"code": "x", "name": "X", "rank": "9", "min_annual_spend_fen": "1"}),
    ("/console/rules/parking", {"points_per_yuan": "50"}),
    ("/console/rules/earning-rates/1/delete", {}),
    ("/console/rules/promotions/1/active", {"is_active": "0"}),
    ("/console/rules/promotions/1/delete", {}),
    ("/console/rules/check-in/bonuses/1/delete", {}),
    ("/console/rules/tiers/1/delete", {}),
)

POINTS_FORM = {
    "welcome_points": "300",
    "welcome_coupon_template_id": "",
    "birthday_points": "600",
    "share_points": "10",
    "share_daily_limit": "3",
    "purchase_min_amount_fen": "2.50",
    "purchase_daily_cap_points": "0",
    "expiry_policy": "days_after_earning",
    "expiry_days": "730",
}
PARKING_FORM = {
    "points_per_yuan": "50",
    "points_max_fen_per_visit": "15.5",
    "quote_ttl_seconds": "600",
    "spending_free_minutes.0.min_spend_fen": "300",
    "spending_free_minutes.0.free_minutes": "180",
    "spending_free_minutes.1.min_spend_fen": "",
    "spending_free_minutes.1.free_minutes": "",
    "spending_free_minutes.2.min_spend_fen": "100.00",
    "spending_free_minutes.2.free_minutes": "60",
}


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=food.id)
    return {"tiers": {tier.code: tier for tier in tiers}, "food": food}


@pytest.fixture
def admin(client: FlaskClient, session: Session, mall: dict) -> str:
    return signed_in(client, session, OperatorRole.ADMIN)


def post(client: FlaskClient, url: str, token: str, form: dict[str, str] | None = None) -> TestResponse:
    return client.post(url, data={**(form or {}), "csrf_token": token})


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_errors(response: TestResponse) -> dict[str, str]:
    return dict(FIELD_ERROR.findall(text(response)))


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def today(app: Flask) -> date:
    with app.app_context():
        return mall_time().today


def buy(client: FlaskClient, mall: dict, member_id: int, amount_fen: int, receipt_no: str) -> int:
    body = credited_purchase(
        client,
        "staff01",
        store_id=mall["food"].id,
        member_id=member_id,
        amount_fen=amount_fen,
        receipt_no=receipt_no,
    )
    return int(body["purchase"]["points_earned"])


def settings_row(session: Session) -> PointsSettings | None:
    return session.get(PointsSettings, 1, populate_existing=True)


# --- who may see and change the rules --------------------------------------------------------------


@pytest.mark.parametrize("url", VIEW_PAGES + EDIT_PAGES)
def test_strangers_are_sent_to_the_login_page(client: FlaskClient, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login")


@pytest.mark.parametrize(("url", "form"), ACTIONS[:8])
def test_strangers_change_nothing(
    client: FlaskClient, session: Session, mall: dict, url: str, form: dict
) -> None:
    response = client.post(url, data=form)

    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login")
    assert settings_row(session) is None and audit_count(session) == 0


@pytest.mark.parametrize("role", [OperatorRole.ADMIN, OperatorRole.MARKETING])
def test_admins_and_marketing_change_the_rules_under_their_own_name(
    client: FlaskClient, session: Session, mall: dict, role: OperatorRole
) -> None:
    token = signed_in(client, session, role)

    response = post(
        client, "/console/rules/referral", token, {"referrer_points": "250", "referee_points": "120"}
    )

    assert response.status_code == 302
    row = settings_row(session)
    assert row is not None and (row.referrer_points, row.referee_points) == (250, 120)
    (changed,) = audit_rows(session, "referral.update")
    assert changed.operator_id == row.updated_by_operator_id
    assert changed.operator_id == session.scalar(select(Operator.id).where(Operator.username == role.value))


@pytest.mark.parametrize("role", [OperatorRole.ADMIN, OperatorRole.MARKETING])
def test_admins_and_marketing_open_every_rules_page_with_its_forms(
    client: FlaskClient, session: Session, mall: dict, role: OperatorRole
) -> None:
    signed_in(client, session, role)

    for url in VIEW_PAGES + EDIT_PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "规则配置" in text(response)
    assert '<button type="submit">保存</button>' in text(client.get("/console/rules/points"))
    assert 'href="/console/rules"' in text(client.get("/console/"))  # the nav entry


def test_auditors_read_the_rules_without_forms_to_change_them(
    client: FlaskClient, session: Session, mall: dict
) -> None:
    signed_in(client, session, OperatorRole.AUDITOR)

    for url in VIEW_PAGES:
        page = client.get(url)
        assert page.status_code == 200, url
        assert "当前角色为只读" in text(page)
        assert "保存</button>" not in text(page) and "新增" not in text(page), url
    for url in EDIT_PAGES:
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize(("url", "form"), ACTIONS)
def test_auditors_cannot_change_the_rules(
    client: FlaskClient, session: Session, mall: dict, url: str, form: dict[str, str]
) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)
    before = audit_count(session)

    response = post(client, url, token, form)

    assert response.status_code == 403
    assert "审计员为只读角色" in text(response) or "当前角色无权访问" in text(response)
    assert audit_count(session) == before
    assert settings_row(session) is None


def test_store_managers_are_refused_every_rules_page_and_action(
    client: FlaskClient, session: Session, mall: dict
) -> None:
    token = signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=mall["food"].id)

    for url in VIEW_PAGES + EDIT_PAGES:
        response = client.get(url)
        assert response.status_code == 403 and "当前角色无权访问" in text(response), url
    for url, form in ACTIONS:
        assert post(client, url, token, form).status_code == 403, url
    assert 'href="/console/rules"' not in text(client.get("/console/"))
    assert settings_row(session) is None and audit_count(session) == 0


def test_a_change_without_the_pages_csrf_token_is_refused(
    client: FlaskClient, session: Session, admin: str
) -> None:
    response = client.post("/console/rules/points", data=POINTS_FORM)

    assert response.status_code == 403
    assert settings_row(session) is None


# --- points settings -------------------------------------------------------------------------------


def test_the_points_settings_form_shows_the_defaults_with_money_in_yuan(
    client: FlaskClient, admin: str
) -> None:
    page = text(client.get("/console/rules/points"))

    assert 'name="welcome_points" value="100"' in page
    assert 'name="purchase_min_amount_fen" value="1.00"' in page
    assert "尚未保存过" in page


def test_saved_points_settings_apply_to_the_next_sign_up_and_are_audited(
    client: FlaskClient, session: Session, admin: str
) -> None:
    response = post(client, "/console/rules/points", admin, POINTS_FORM)

    assert response.status_code == 302
    assert "已保存" in text(client.get(response.headers["Location"]))
    saved = client.get(
        "/api/admin/v1/points-settings", headers=bearer(operator_login(client, "admin"))
    ).get_json()
    assert saved["welcome_points"] == 300 and saved["purchase_min_amount_fen"] == 250
    assert saved["expiry_policy"] == "days_after_earning" and saved["expiry_days"] == 730
    assert saved["checkin_points"] == DEFAULTS["checkin_points"]  # not on this page: kept
    _, member = registered_shopper(client, "o-rules", "13500135001")
    assert session.get_one(Member, member["id"]).points_balance == 300
    (row,) = audit_rows(session, "points_settings.update")
    assert row.target_type == "points_settings" and row.target_id == "1"
    assert row.detail["welcome_points"] == [100, 300]
    assert row.detail["purchase_min_amount_fen"] == [100, 250]
    assert row.detail["expiry_policy"] == ["end_of_next_year", "days_after_earning"]
    assert "checkin_points" not in row.detail


def test_invalid_points_settings_are_shown_field_by_field_and_nothing_is_saved(
    client: FlaskClient, session: Session, admin: str
) -> None:
    form = {
        **POINTS_FORM,
        "welcome_points": "很多",
        "purchase_min_amount_fen": "1.234",
        "expiry_days": "0",
        "birthday_points": "",
    }

    response = post(client, "/console/rules/points", admin, form)

    assert response.status_code == 422
    errors = field_errors(response)
    assert errors["welcome_points"] == "应为整数"
    assert errors["purchase_min_amount_fen"] == "金额最多保留两位小数"
    assert errors["expiry_days"] == "应在 1 到 3650 之间"
    assert errors["birthday_points"] == "必填"
    assert 'name="welcome_points" value="很多"' in text(response)  # what was typed, to correct it
    assert settings_row(session) is None and audit_count(session) == 0


def test_a_missing_coupon_template_is_refused_by_the_service(
    client: FlaskClient, session: Session, admin: str
) -> None:
    response = post(
        client, "/console/rules/points", admin, {**POINTS_FORM, "welcome_coupon_template_id": "999"}
    )

    assert response.status_code == 422
    assert field_errors(response)["welcome_coupon_template_id"] == "优惠券模板不存在"
    assert settings_row(session) is None and audit_count(session) == 0


# --- check-in --------------------------------------------------------------------------------------


def test_check_in_points_and_a_streak_bonus_apply_to_the_next_check_in(
    app: Flask, client: FlaskClient, session: Session, admin: str
) -> None:
    token, member = registered_shopper(client, "o-check-in", "13500135002")

    assert post(client, "/console/rules/check-in", admin, {"checkin_points": "7"}).status_code == 302
    assert (
        post(
            client, "/console/rules/check-in/bonuses", admin, {"streak_days": "2", "bonus_points": "30"}
        ).status_code
        == 302
    )
    session.add(
        CheckIn(member_id=member["id"], business_date=today(app) - timedelta(days=1), streak=1, points=0)
    )
    session.flush()
    result = client.post("/api/mp/v1/me/check-ins", headers=bearer(token)).get_json()

    assert (result["streak"], result["points"], result["bonus_points"]) == (2, 7, 30)
    page = text(client.get("/console/rules/check-in"))
    assert "第 2 天" in page and "30 积分" in page
    (changed,) = audit_rows(session, "check_in.update")
    assert changed.detail == {"checkin_points": [DEFAULTS["checkin_points"], 7]}
    bonus = session.scalars(select(CheckInStreakBonus)).one()
    (created,) = audit_rows(session, "check_in_bonus.create")
    assert created.target_id == str(bonus.id)
    assert created.detail == {"streak_days": [None, 2], "bonus_points": [None, 30]}


def test_invalid_or_repeated_streak_bonuses_are_refused_in_chinese(
    client: FlaskClient, session: Session, admin: str
) -> None:
    invalid = post(
        client, "/console/rules/check-in/bonuses", admin, {"streak_days": "1", "bonus_points": "0"}
    )

    assert invalid.status_code == 422
    assert field_errors(invalid) == {
        "streak_days": "应在 2 到 366 之间",
        "bonus_points": "应在 1 到 1000000 之间",
    }
    post(client, "/console/rules/check-in/bonuses", admin, {"streak_days": "7", "bonus_points": "50"})
    repeated = post(
        client, "/console/rules/check-in/bonuses", admin, {"streak_days": "7", "bonus_points": "80"}
    )
    assert repeated.status_code == 409 and "该连续签到天数的奖励已存在" in text(repeated)
    assert session.scalars(select(CheckInStreakBonus.bonus_points)).all() == [50]
    assert len(audit_rows(session, "check_in_bonus.create")) == 1


def test_a_streak_bonus_is_deleted_and_audited(client: FlaskClient, session: Session, admin: str) -> None:
    post(client, "/console/rules/check-in/bonuses", admin, {"streak_days": "7", "bonus_points": "50"})
    bonus_id = session.scalars(select(CheckInStreakBonus.id)).one()

    response = post(client, f"/console/rules/check-in/bonuses/{bonus_id}/delete", admin)

    assert response.status_code == 302
    assert session.scalar(select(func.count()).select_from(CheckInStreakBonus)) == 0
    (deleted,) = audit_rows(session, "check_in_bonus.delete")
    assert deleted.detail == {"streak_days": [7, None], "bonus_points": [50, None]}
    assert post(client, f"/console/rules/check-in/bonuses/{bonus_id}/delete", admin).status_code == 404


# --- referral --------------------------------------------------------------------------------------


def test_referral_points_apply_to_the_next_referral_and_keep_the_other_settings(
    client: FlaskClient, session: Session, admin: str
) -> None:
    post(client, "/console/rules/check-in", admin, {"checkin_points": "7"})
    response = post(
        client, "/console/rules/referral", admin, {"referrer_points": "300", "referee_points": "150"}
    )
    assert response.status_code == 302
    _, referrer = registered_shopper(client, "o-referrer", "13400134001")
    scene = client.post(
        "/api/admin/v1/qr-scenes",
        json={"kind": "referral", "name": "老带新", "referrer_member_id": referrer["id"]},
        headers=bearer(operator_login(client, "admin")),
    ).get_json()

    _, referee = registered_shopper(client, "o-referee", "13400134002", scene=scene["scene"])

    assert session.get_one(Member, referrer["id"]).points_balance == DEFAULTS["welcome_points"] + 300
    assert session.get_one(Member, referee["id"]).points_balance == DEFAULTS["welcome_points"] + 150
    row = settings_row(session)
    assert row is not None and row.checkin_points == 7
    (changed,) = audit_rows(session, "referral.update")
    assert changed.detail == {
        "referrer_points": [DEFAULTS["referrer_points"], 300],
        "referee_points": [DEFAULTS["referee_points"], 150],
    }


def test_negative_referral_points_are_refused(client: FlaskClient, session: Session, admin: str) -> None:
    response = post(
        client, "/console/rules/referral", admin, {"referrer_points": "-5", "referee_points": "1.5"}
    )

    assert response.status_code == 422
    assert field_errors(response) == {
        "referrer_points": "应在 0 到 1000000 之间",
        "referee_points": "应为整数",
    }
    assert settings_row(session) is None and audit_count(session) == 0


# --- earning rates ---------------------------------------------------------------------------------


def test_a_new_category_rate_decides_the_points_of_a_purchase(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    _, member = registered_shopper(client, "o-rate", "13500135003")
    form = {"category": "餐饮", "spend_unit_fen": "10", "points_per_unit": "3"}

    response = post(client, "/console/rules/earning-rates/new", admin, form)

    assert response.status_code == 302
    assert buy(client, mall, member["id"], 12_345, "R-1") == 12 * 3  # 3 points per full ¥10
    page = text(client.get("/console/rules/earning-rates"))
    assert "每消费 ¥10.00 得 3 积分" in page
    rate = session.scalars(select(EarningRate)).one()
    assert (rate.category, rate.spend_unit_fen, rate.points_per_unit) == ("餐饮", 1_000, 3)
    (created,) = audit_rows(session, "earning_rate.create")
    assert created.target_id == str(rate.id)
    assert created.detail == {
        "category": [None, "餐饮"],
        "spend_unit_fen": [None, 1_000],
        "points_per_unit": [None, 3],
    }


def test_an_earning_rate_is_edited_then_deleted_with_an_audit_of_each(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    post(
        client,
        "/console/rules/earning-rates/new",
        admin,
        {"category": "餐饮", "spend_unit_fen": "10", "points_per_unit": "3"},
    )
    rate_id = session.scalars(select(EarningRate.id)).one()
    edit_page = text(client.get(f"/console/rules/earning-rates/{rate_id}/edit"))
    assert 'name="spend_unit_fen" value="10.00"' in edit_page

    edited = post(
        client,
        f"/console/rules/earning-rates/{rate_id}/edit",
        admin,
        {"category": "餐饮", "spend_unit_fen": "5.5", "points_per_unit": "3"},
    )
    deleted = post(client, f"/console/rules/earning-rates/{rate_id}/delete", admin)

    assert edited.status_code == 302 and deleted.status_code == 302
    assert session.scalar(select(func.count()).select_from(EarningRate)) == 0
    (update,) = audit_rows(session, "earning_rate.update")
    assert update.detail == {"spend_unit_fen": [1_000, 550]}
    (delete,) = audit_rows(session, "earning_rate.delete")
    assert delete.detail["category"] == ["餐饮", None]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"spend_unit_fen": "10.001"}, "spend_unit_fen", "金额最多保留两位小数"),
        ({"spend_unit_fen": "十元"}, "spend_unit_fen", "金额格式有误，如 12.50"),
        ({"spend_unit_fen": "0"}, "spend_unit_fen", "应在 1 到 100000000 之间"),
        ({"spend_unit_fen": "-1"}, "spend_unit_fen", "金额不能为负数"),
        ({"points_per_unit": "2.5"}, "points_per_unit", "应为整数"),
        ({"category": ""}, "category", "必填"),
    ],
)
def test_invalid_earning_rates_are_refused_field_by_field(
    client: FlaskClient, session: Session, admin: str, form: dict, field: str, message: str
) -> None:
    valid = {"category": "餐饮", "spend_unit_fen": "10", "points_per_unit": "3"}

    response = post(client, "/console/rules/earning-rates/new", admin, {**valid, **form})

    assert response.status_code == 422
    assert field_errors(response)[field] == message
    assert session.scalar(select(func.count()).select_from(EarningRate)) == 0 and audit_count(session) == 0


def test_a_second_rate_for_a_category_is_refused_with_the_form_kept(
    client: FlaskClient, session: Session, admin: str
) -> None:
    form = {"category": "餐饮", "spend_unit_fen": "10", "points_per_unit": "3"}
    post(client, "/console/rules/earning-rates/new", admin, form)

    response = post(client, "/console/rules/earning-rates/new", admin, {**form, "points_per_unit": "5"})

    assert response.status_code == 409
    assert "该业态的积分规则已存在" in text(response) and 'name="points_per_unit" value="5"' in text(response)
    assert session.scalars(select(EarningRate.points_per_unit)).all() == [3]


def test_a_missing_earning_rate_is_404(client: FlaskClient, admin: str) -> None:
    assert client.get("/console/rules/earning-rates/999/edit").status_code == 404
    assert post(client, "/console/rules/earning-rates/999/delete", admin).status_code == 404


# --- promotions ------------------------------------------------------------------------------------


def test_a_running_promotion_multiplies_purchase_points_until_deactivated(
    app: Flask, client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    _, member = registered_shopper(client, "o-promo", "13500135004")
    day = today(app)
    form = {
        "name": "双倍积分日",
        "starts_on": day.isoformat(),
        "ends_on": (day + timedelta(days=1)).isoformat(),
        "multiplier_percent": "200",
        "category": "",
        "is_active": "on",
    }

    assert post(client, "/console/rules/promotions/new", admin, form).status_code == 302
    assert buy(client, mall, member["id"], 10_000, "R-1") == 200
    promotion = session.scalars(select(PointsPromotion)).one()
    assert promotion.category is None
    assert "进行中" in text(client.get("/console/rules/promotions"))

    paused = post(client, f"/console/rules/promotions/{promotion.id}/active", admin, {"is_active": "0"})

    assert paused.status_code == 302
    assert buy(client, mall, member["id"], 10_000, "R-2") == 100
    assert "已停用" in text(client.get("/console/rules/promotions"))
    (created,) = audit_rows(session, "points_promotion.create")
    assert created.detail["multiplier_percent"] == [None, 200]
    (deactivated,) = audit_rows(session, "points_promotion.deactivate")
    assert deactivated.detail == {"is_active": [True, False]}


def test_a_promotion_is_edited_and_deleted(
    app: Flask, client: FlaskClient, session: Session, admin: str
) -> None:
    session.add(
        PointsPromotion(
            name="周末", starts_on=date(2026, 12, 5), ends_on=date(2026, 12, 6), multiplier_percent=150
        )
    )
    session.flush()
    promotion_id = session.scalars(select(PointsPromotion.id)).one()
    form = {
        "name": "周末三倍",
        "starts_on": "2026-12-05",
        "ends_on": "2026-12-06",
        "multiplier_percent": "300",
    }

    assert post(client, f"/console/rules/promotions/{promotion_id}/edit", admin, form).status_code == 302
    edited = session.get_one(PointsPromotion, promotion_id, populate_existing=True)
    assert (edited.name, edited.multiplier_percent, edited.is_active) == ("周末三倍", 300, False)  # unchecked
    assert post(client, f"/console/rules/promotions/{promotion_id}/delete", admin).status_code == 302
    assert session.get(PointsPromotion, promotion_id, populate_existing=True) is None
    (update,) = audit_rows(session, "points_promotion.update")
    assert update.detail == {
        "name": ["周末", "周末三倍"],
        "multiplier_percent": [150, 300],
        "is_active": [True, False],
    }
    assert len(audit_rows(session, "points_promotion.delete")) == 1


def test_a_promotion_ending_before_it_starts_is_refused(
    client: FlaskClient, session: Session, admin: str
) -> None:
    form = {"name": "错", "starts_on": "2026-12-05", "ends_on": "2026-12-01", "multiplier_percent": "50"}

    response = post(client, "/console/rules/promotions/new", admin, form)
    assert response.status_code == 422
    assert field_errors(response) == {"multiplier_percent": "应在 100 到 1000 之间"}

    response = post(client, "/console/rules/promotions/new", admin, {**form, "multiplier_percent": "200"})
    assert response.status_code == 422
    assert field_errors(response) == {"ends_on": "结束日期不能早于开始日期"}
    bad_date = post(client, "/console/rules/promotions/new", admin, {**form, "starts_on": "12/05"})
    assert field_errors(bad_date)["starts_on"] == "日期格式应为 YYYY-MM-DD"
    assert (
        session.scalar(select(func.count()).select_from(PointsPromotion)) == 0 and audit_count(session) == 0
    )


# --- tiers -----------------------------------------------------------------------------------------


def test_tiers_are_listed_with_thresholds_benefits_and_members(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    registered_shopper(client, "o-tier", "13500135005")

    page = text(client.get("/console/rules/tiers"))

    silver = mall["tiers"]["silver"]
    assert silver.name in page and format_yuan(silver.min_annual_spend_fen) in page
    assert "消费积分 1.2 倍；每日免费停车 1 小时" in page
    members = dict(re.findall(r'data-tier="(\d+)">.*?<td class="members">([^<]+)</td>', page, re.S))
    assert members == {str(tier.id): "1" if tier.code == "normal" else "0" for tier in mall["tiers"].values()}


def test_a_new_top_tier_is_saved_with_its_threshold_in_fen_and_audited(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    form = {
        "code": "black",
        "name": "黑卡",
        "rank": "50",
        "min_annual_spend_fen": "1000000",
        "points_multiplier_percent": "300",
        "free_parking_minutes_per_day": "480",
        "birthday_coupon_template_id": "",
    }

    response = post(client, "/console/rules/tiers/new", admin, form)

    assert response.status_code == 302
    tier = session.scalars(select(Tier).where(Tier.code == "black")).one()
    assert (tier.min_annual_spend_fen, tier.points_multiplier_percent) == (100_000_000, 300)
    listed = client.get("/api/admin/v1/tiers", headers=bearer(operator_login(client, "admin"))).get_json()
    assert listed[-1]["benefits"] == ["消费积分 3 倍", "每日免费停车 8 小时"]
    (created,) = audit_rows(session, "tier.create")
    assert created.target_id == str(tier.id) and created.detail["min_annual_spend_fen"] == [None, 100_000_000]


def test_a_tier_edit_takes_effect_and_is_audited(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    token, _ = registered_shopper(client, "o-tier", "13500135006")
    silver = mall["tiers"]["silver"]
    minutes_before = silver.free_parking_minutes_per_day
    page = text(client.get(f"/console/rules/tiers/{silver.id}/edit"))
    values = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', page))
    assert values["min_annual_spend_fen"] == f"{silver.min_annual_spend_fen // 100}.00"

    response = post(
        client,
        f"/console/rules/tiers/{silver.id}/edit",
        admin,
        {**values, "free_parking_minutes_per_day": "90"},
    )

    assert response.status_code == 302
    assert session.get_one(Tier, silver.id, populate_existing=True).free_parking_minutes_per_day == 90
    progress = client.get("/api/mp/v1/me/tier", headers=bearer(token)).get_json()
    assert progress["next"]["benefits"] == ["消费积分 1.2 倍", "每日免费停车 1 小时30 分钟"]
    (updated,) = audit_rows(session, "tier.update")
    assert updated.detail == {"free_parking_minutes_per_day": [minutes_before, 90]}


def test_a_tier_below_a_lower_tiers_threshold_is_refused(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    form = {
        "code": "black",
        "name": "黑卡",
        "rank": "50",
        "min_annual_spend_fen": "0.01",
        "points_multiplier_percent": "300",
        "free_parking_minutes_per_day": "2000",
    }

    response = post(client, "/console/rules/tiers/new", admin, form)
    assert response.status_code == 422
    assert field_errors(response) == {"free_parking_minutes_per_day": "应在 0 到 1440 之间"}

    response = post(client, "/console/rules/tiers/new", admin, {**form, "free_parking_minutes_per_day": "0"})
    assert response.status_code == 422
    assert "「黑卡」的升级门槛（¥0.01）须高于较低等级" in field_errors(response)["min_annual_spend_fen"]
    assert session.scalar(select(func.count()).select_from(Tier)) == 4 and audit_count(session) == 0


def test_a_tier_members_hold_is_not_deleted_and_says_why(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    registered_shopper(client, "o-tier", "13500135005")
    normal = mall["tiers"]["normal"]

    response = post(client, f"/console/rules/tiers/{normal.id}/delete", admin)

    assert response.status_code == 409
    assert "仍有会员处于该等级，不能删除" in text(response) and "钻石卡" in text(response)
    assert session.get(Tier, normal.id, populate_existing=True) is not None
    assert audit_rows(session, "tier.delete") == []


def test_a_tier_nobody_holds_is_deleted_and_audited(
    client: FlaskClient, session: Session, mall: dict, admin: str
) -> None:
    diamond = mall["tiers"]["diamond"]

    response = post(client, f"/console/rules/tiers/{diamond.id}/delete", admin)

    assert response.status_code == 302
    assert session.get(Tier, diamond.id, populate_existing=True) is None
    (deleted,) = audit_rows(session, "tier.delete")
    assert deleted.detail["code"] == ["diamond", None]


# --- parking ---------------------------------------------------------------------------------------


def test_parking_rules_are_saved_for_the_next_quote_and_audited(
    client: FlaskClient, session: Session, admin: str
) -> None:
    response = post(client, "/console/rules/parking", admin, PARKING_FORM)

    assert response.status_code == 302
    saved = client.get(
        "/api/admin/v1/parking-rules", headers=bearer(operator_login(client, "admin"))
    ).get_json()
    assert (saved["points_per_yuan"], saved["points_max_fen_per_visit"], saved["quote_ttl_seconds"]) == (
        50,
        1_550,
        600,
    )
    assert saved["spending_free_minutes"] == [
        {"min_spend_fen": 10_000, "free_minutes": 60},
        {"min_spend_fen": 30_000, "free_minutes": 180},
    ]
    page = text(client.get("/console/rules/parking"))
    assert 'name="spending_free_minutes.0.min_spend_fen" value="100.00"' in page
    (updated,) = audit_rows(session, "parking_rules.update")
    assert updated.detail["points_per_yuan"] == [ParkingRules.DEFAULTS["points_per_yuan"], 50]
    assert updated.detail["spending_free_minutes"][1] == saved["spending_free_minutes"]


def test_invalid_parking_rules_are_shown_on_their_row_and_nothing_is_saved(
    client: FlaskClient, session: Session, admin: str
) -> None:
    form = {
        **PARKING_FORM,
        "points_per_yuan": "0",
        "spending_free_minutes.1.min_spend_fen": "50.005",
        "spending_free_minutes.1.free_minutes": "30",
        "spending_free_minutes.2.free_minutes": "两小时",
    }

    response = post(client, "/console/rules/parking", admin, form)

    assert response.status_code == 422
    assert field_errors(response) == {
        "points_per_yuan": "应在 1 到 100000 之间",
        "spending_free_minutes.1.min_spend_fen": "金额最多保留两位小数",
        "spending_free_minutes.2.free_minutes": "应为整数",
    }
    assert 'value="两小时"' in text(response)
    assert 'name="spending_free_minutes.4.min_spend_fen" value=""' in text(response)  # room for one more
    assert session.get(ParkingRules, 1) is None and audit_count(session) == 0


def test_repeated_spending_thresholds_are_refused(client: FlaskClient, session: Session, admin: str) -> None:
    form = {**PARKING_FORM, "spending_free_minutes.2.min_spend_fen": "300"}

    response = post(client, "/console/rules/parking", admin, form)

    assert response.status_code == 422
    assert field_errors(response) == {"spending_free_minutes": "消费门槛不能重复"}
    assert session.get(ParkingRules, 1) is None


# --- the form helper -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fen"), [("12.5", 1_250), ("0.01", 1), ("1,000", 100_000), ("¥8", 800), (" 3 ", 300)]
)
def test_yuan_typed_in_a_form_becomes_fen(raw: str, fen: int) -> None:
    assert parse_yuan(raw) == fen


@pytest.mark.parametrize("raw", ["1.234", "-1", "abc", "NaN", "Infinity", ""])
def test_amounts_that_are_not_yuan_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="金额"):
        parse_yuan(raw)

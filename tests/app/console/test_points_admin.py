"""Operators set the points rules and the tiers, and adjust a member's points with a reason."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.extensions import mall_time
from app.models import (
    CheckIn,
    EarningRate,
    Member,
    PointsEntry,
    PointsEntryKind,
    PointsSettings,
    StaffRole,
    Tier,
    TierChange,
)
from tests import factories
from tests.flows import bearer, credited_purchase, operator_login, registered_shopper

API = "/api/admin/v1"
WELCOME = PointsSettings.DEFAULTS["welcome_points"]
SETTINGS: dict[str, Any] = {
    **PointsSettings.DEFAULTS,
    "expiry_policy": PointsSettings.DEFAULTS["expiry_policy"].value,
}


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=food.id)
    operator = factories.create_operator(session, "ops", "correct-horse")
    return {"tiers": {tier.code: tier for tier in tiers}, "food": food, "operator": operator}


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


@pytest.fixture
def shopper(client: FlaskClient, mall: dict) -> tuple[str, dict]:
    return registered_shopper(client, "o-points-admin", "13500135000")


def today(app: Flask) -> date:
    with app.app_context():
        return mall_time().today


def buy(client: FlaskClient, mall: dict, member_id: int, amount_fen: int, receipt_no: str) -> int:
    """A purchase at the 餐饮 store, credited by its counter staff; the points it earned."""
    body = credited_purchase(
        client,
        "staff01",
        store_id=mall["food"].id,
        member_id=member_id,
        amount_fen=amount_fen,
        receipt_no=receipt_no,
    )
    return int(body["purchase"]["points_earned"])


def adjust(
    client: FlaskClient, admin: dict, member_id: int, delta: int, reason: str = "补录", key: str | None = None
) -> TestResponse:
    headers = {**admin, "Idempotency-Key": key} if key else admin
    return client.post(
        f"{API}/members/{member_id}/points-adjustments",
        json={"delta": delta, "reason": reason},
        headers=headers,
    )


def balance(session: Session, member_id: int) -> int:
    return session.get_one(Member, member_id, populate_existing=True).points_balance


def assert_ledger_verifies(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


# --- points settings -----------------------------------------------------------------------------


def test_settings_are_the_defaults_until_an_operator_saves_them(client: FlaskClient, admin: dict) -> None:
    response = client.get(f"{API}/points-settings", headers=admin)

    assert response.status_code == 200
    assert response.get_json() == {**SETTINGS, "updated_at": None, "updated_by_operator_id": None}


def test_saving_the_settings_replaces_them_and_records_the_operator(
    client: FlaskClient, admin: dict, mall: dict, session: Session
) -> None:
    changed = {**SETTINGS, "checkin_points": 8, "expiry_policy": "days_after_earning", "expiry_days": 180}

    first = client.put(f"{API}/points-settings", json=changed, headers=admin)
    second = client.put(f"{API}/points-settings", json={**changed, "share_points": 20}, headers=admin)

    assert (first.status_code, second.status_code) == (200, 200)
    body = client.get(f"{API}/points-settings", headers=admin).get_json()
    assert {key: body[key] for key in SETTINGS} == {**changed, "share_points": 20}
    assert body["updated_by_operator_id"] == mall["operator"].id
    assert body["updated_at"] is not None
    assert session.scalar(select(func.count()).select_from(PointsSettings)) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"welcome_points": -1}, "welcome_points"),
        ({"purchase_daily_cap_points": "10"}, "purchase_daily_cap_points"),
        ({"expiry_policy": "never"}, "expiry_policy"),
        ({"expiry_days": 0}, "expiry_days"),
        ({"expiry_days": 3651}, "expiry_days"),
        ({"share_daily_limit": None}, "share_daily_limit"),
        ({"birthday_points": 1.5}, "birthday_points"),
    ],
)
def test_invalid_settings_are_rejected_field_by_field(
    client: FlaskClient, admin: dict, change: dict, field: str
) -> None:
    response = client.put(f"{API}/points-settings", json={**SETTINGS, **change}, headers=admin)

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert list(response.get_json()["details"]) == [field]
    assert client.get(f"{API}/points-settings", headers=admin).get_json()["updated_at"] is None


def test_settings_are_replaced_whole(client: FlaskClient, admin: dict) -> None:
    partial = {key: value for key, value in SETTINGS.items() if key != "referee_points"}

    response = client.put(f"{API}/points-settings", json=partial, headers=admin)

    assert response.status_code == 422
    assert response.get_json()["details"] == {"referee_points": ["必填"]}


def test_without_welcome_points_new_members_start_at_zero(
    client: FlaskClient, admin: dict, session: Session
) -> None:
    client.put(f"{API}/points-settings", json={**SETTINGS, "welcome_points": 0}, headers=admin)

    _, member = registered_shopper(client, "o-late", "13500135009")

    assert balance(session, member["id"]) == 0
    assert session.scalar(select(PointsEntry.id).where(PointsEntry.member_id == member["id"])) is None


def test_changed_check_in_points_and_a_streak_bonus_apply_to_the_next_check_in(
    app: Flask, client: FlaskClient, admin: dict, shopper: tuple, session: Session
) -> None:
    client.put(f"{API}/points-settings", json={**SETTINGS, "checkin_points": 7}, headers=admin)
    client.post(f"{API}/check-in-bonuses", json={"streak_days": 2, "bonus_points": 30}, headers=admin)
    session.add(
        CheckIn(member_id=shopper[1]["id"], business_date=today(app) - timedelta(days=1), streak=1, points=0)
    )
    session.flush()

    result = client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper[0])).get_json()

    assert (result["streak"], result["points"], result["bonus_points"]) == (2, 7, 30)


@pytest.mark.mariadb
def test_concurrent_first_saves_all_succeed_into_one_row(app: Flask, admin: dict, session: Session) -> None:
    def save(points: int) -> int:
        return (
            app.test_client()
            .put(f"{API}/points-settings", json={**SETTINGS, "welcome_points": points}, headers=admin)
            .status_code
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(save, range(4)))

    assert statuses == [200] * 4
    assert session.scalar(select(func.count()).select_from(PointsSettings)) == 1


# --- earning rates -------------------------------------------------------------------------------


def test_a_category_rate_decides_the_points_of_a_purchase(
    client: FlaskClient, admin: dict, mall: dict, shopper: tuple, session: Session
) -> None:
    response = client.post(
        f"{API}/earning-rates",
        json={"category": "餐饮", "spend_unit_fen": 1_000, "points_per_unit": 3},
        headers=admin,
    )
    assert response.status_code == 201

    earned = buy(client, mall, shopper[1]["id"], 12_345, "R-1")

    assert earned == 12 * 3  # 3 points per full ¥10
    assert balance(session, shopper[1]["id"]) == WELCOME + 36


def test_earning_rates_are_listed_changed_and_deleted(client: FlaskClient, admin: dict) -> None:
    fallback = client.post(
        f"{API}/earning-rates",
        json={"category": "*", "spend_unit_fen": 100, "points_per_unit": 1},
        headers=admin,
    ).get_json()
    food = client.post(
        f"{API}/earning-rates",
        json={"category": "餐饮", "spend_unit_fen": 100, "points_per_unit": 2},
        headers=admin,
    ).get_json()

    changed = client.put(
        f"{API}/earning-rates/{food['id']}",
        json={"category": "餐饮", "spend_unit_fen": 200, "points_per_unit": 5},
        headers=admin,
    )
    deleted = client.delete(f"{API}/earning-rates/{fallback['id']}", headers=admin)

    assert changed.status_code == 200
    assert changed.get_json() == {
        "id": food["id"],
        "category": "餐饮",
        "spend_unit_fen": 200,
        "points_per_unit": 5,
    }
    assert (deleted.status_code, deleted.data) == (204, b"")
    assert client.get(f"{API}/earning-rates", headers=admin).get_json() == [changed.get_json()]


def test_a_deleted_category_rate_falls_back_to_the_default(
    client: FlaskClient, admin: dict, mall: dict, shopper: tuple
) -> None:
    rate = client.post(
        f"{API}/earning-rates",
        json={"category": "餐饮", "spend_unit_fen": 100, "points_per_unit": 5},
        headers=admin,
    ).get_json()
    client.delete(f"{API}/earning-rates/{rate['id']}", headers=admin)

    assert buy(client, mall, shopper[1]["id"], 5_000, "R-1") == 50  # 1 point per yuan


def test_one_rate_per_category(client: FlaskClient, admin: dict, session: Session) -> None:
    body = {"category": "餐饮", "spend_unit_fen": 100, "points_per_unit": 2}
    client.post(f"{API}/earning-rates", json=body, headers=admin)
    other = client.post(f"{API}/earning-rates", json={**body, "category": "服饰"}, headers=admin).get_json()

    duplicate = client.post(f"{API}/earning-rates", json=body, headers=admin)
    renamed = client.put(f"{API}/earning-rates/{other['id']}", json=body, headers=admin)

    for response in (duplicate, renamed):
        assert response.status_code == 409
        assert response.get_json()["code"] == "EARNING_RATE_EXISTS"
        assert response.get_json()["message"] == "该业态的积分规则已存在"
    assert session.scalars(select(EarningRate.category).order_by(EarningRate.id)).all() == ["餐饮", "服饰"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spend_unit_fen": 0}, "spend_unit_fen"),
        ({"points_per_unit": -1}, "points_per_unit"),
        ({"category": ""}, "category"),
        ({"category": "业" * 33}, "category"),
        ({"points_per_unit": "2"}, "points_per_unit"),
    ],
)
def test_invalid_earning_rates_are_rejected(
    client: FlaskClient, admin: dict, change: dict, field: str
) -> None:
    body = {"category": "餐饮", "spend_unit_fen": 100, "points_per_unit": 2, **change}

    response = client.post(f"{API}/earning-rates", json=body, headers=admin)

    assert response.status_code == 422
    assert list(response.get_json()["details"]) == [field]


@pytest.mark.parametrize(
    ("method", "json"),
    [("put", {"category": "*", "spend_unit_fen": 1, "points_per_unit": 1}), ("delete", None)],
)
def test_a_missing_earning_rate_is_404(client: FlaskClient, admin: dict, method: str, json: Any) -> None:
    response = getattr(client, method)(f"{API}/earning-rates/424242", json=json, headers=admin)

    assert response.status_code == 404
    assert response.get_json() == {"code": "NOT_FOUND", "message": "积分规则不存在"}


# --- promotions ----------------------------------------------------------------------------------


def promotion(app: Flask, **overrides: Any) -> dict[str, Any]:
    day = today(app)
    return {
        "name": "周末双倍积分",
        "starts_on": str(day - timedelta(days=1)),
        "ends_on": str(day + timedelta(days=1)),
        "multiplier_percent": 200,
        "category": "餐饮",
        **overrides,
    }


def test_a_running_promotion_multiplies_purchase_points_until_paused(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, shopper: tuple
) -> None:
    created = client.post(f"{API}/points-promotions", json=promotion(app), headers=admin)
    assert created.status_code == 201
    assert created.get_json()["is_active"] is True
    doubled = buy(client, mall, shopper[1]["id"], 5_000, "R-1")

    paused = client.put(
        f"{API}/points-promotions/{created.get_json()['id']}",
        json=promotion(app, is_active=False),
        headers=admin,
    )
    plain = buy(client, mall, shopper[1]["id"], 5_000, "R-2")

    assert (doubled, plain) == (100, 50)
    assert paused.status_code == 200
    assert paused.get_json()["is_active"] is False


def test_promotions_are_listed_latest_first_and_deleted(app: Flask, client: FlaskClient, admin: dict) -> None:
    day = today(app)
    old = client.post(
        f"{API}/points-promotions",
        json=promotion(app, starts_on=str(day - timedelta(days=30)), ends_on=str(day - timedelta(days=29))),
        headers=admin,
    ).get_json()
    new = client.post(
        f"{API}/points-promotions", json=promotion(app, category=None), headers=admin
    ).get_json()

    listed = client.get(f"{API}/points-promotions", headers=admin).get_json()
    deleted = client.delete(f"{API}/points-promotions/{old['id']}", headers=admin)

    assert [item["id"] for item in listed] == [new["id"], old["id"]]
    assert listed[0]["category"] is None
    assert deleted.status_code == 204
    assert client.get(f"{API}/points-promotions", headers=admin).get_json() == [new]
    assert client.delete(f"{API}/points-promotions/{old['id']}", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"multiplier_percent": 99}, "multiplier_percent", "应在 100 到 1000 之间"),
        ({"ends_on": "2026-01-01", "starts_on": "2026-01-02"}, "ends_on", "结束日期不能早于开始日期"),
        ({"starts_on": "2026-02-30"}, "starts_on", "日期格式应为 YYYY-MM-DD"),
        ({"name": ""}, "name", "长度应在 1 到 64 之间"),
    ],
)
def test_invalid_promotions_are_rejected(
    app: Flask, client: FlaskClient, admin: dict, change: dict, field: str, message: str
) -> None:
    response = client.post(f"{API}/points-promotions", json=promotion(app, **change), headers=admin)

    assert response.status_code == 422
    assert response.get_json()["details"] == {field: [message]}
    assert client.get(f"{API}/points-promotions", headers=admin).get_json() == []


def test_a_promotion_cannot_be_edited_into_ending_before_it_starts(
    app: Flask, client: FlaskClient, admin: dict
) -> None:
    created = client.post(f"{API}/points-promotions", json=promotion(app), headers=admin).get_json()

    response = client.put(
        f"{API}/points-promotions/{created['id']}",
        json=promotion(app, starts_on="2026-03-02", ends_on="2026-03-01"),
        headers=admin,
    )
    missing = client.put(f"{API}/points-promotions/424242", json=promotion(app), headers=admin)

    assert response.status_code == 422
    assert "ends_on" in response.get_json()["details"]
    assert (missing.status_code, missing.get_json()["message"]) == (404, "积分活动不存在")


# --- check-in streak bonuses ---------------------------------------------------------------------


def test_streak_bonuses_are_listed_by_day_and_deleted(client: FlaskClient, admin: dict) -> None:
    seventh = client.post(
        f"{API}/check-in-bonuses", json={"streak_days": 7, "bonus_points": 50}, headers=admin
    )
    third = client.post(f"{API}/check-in-bonuses", json={"streak_days": 3, "bonus_points": 10}, headers=admin)
    assert (seventh.status_code, third.status_code) == (201, 201)

    listed = client.get(f"{API}/check-in-bonuses", headers=admin).get_json()
    deleted = client.delete(f"{API}/check-in-bonuses/{third.get_json()['id']}", headers=admin)

    assert [(item["streak_days"], item["bonus_points"]) for item in listed] == [(3, 10), (7, 50)]
    assert deleted.status_code == 204
    assert client.get(f"{API}/check-in-bonuses", headers=admin).get_json() == [seventh.get_json()]
    again = client.delete(f"{API}/check-in-bonuses/{third.get_json()['id']}", headers=admin)
    assert (again.status_code, again.get_json()["message"]) == (404, "连续签到奖励不存在")


def test_one_bonus_per_streak_length(client: FlaskClient, admin: dict) -> None:
    client.post(f"{API}/check-in-bonuses", json={"streak_days": 7, "bonus_points": 50}, headers=admin)

    response = client.post(
        f"{API}/check-in-bonuses", json={"streak_days": 7, "bonus_points": 80}, headers=admin
    )

    assert response.status_code == 409
    assert response.get_json()["code"] == "CHECK_IN_BONUS_EXISTS"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"streak_days": 1, "bonus_points": 10}, "streak_days"),
        ({"streak_days": 3, "bonus_points": 0}, "bonus_points"),
        ({"streak_days": 3}, "bonus_points"),
    ],
)
def test_invalid_streak_bonuses_are_rejected(
    client: FlaskClient, admin: dict, body: dict, field: str
) -> None:
    response = client.post(f"{API}/check-in-bonuses", json=body, headers=admin)

    assert response.status_code == 422
    assert list(response.get_json()["details"]) == [field]


# --- tiers ---------------------------------------------------------------------------------------


def tier_body(**overrides: Any) -> dict[str, Any]:
    return {
        "code": "black",
        "name": "黑卡",
        "rank": 5,
        "min_annual_spend_fen": 10_000_000,
        "points_multiplier_percent": 300,
        "free_parking_minutes_per_day": 1440,
        **overrides,
    }


def test_tiers_are_listed_by_rank_with_the_benefits_they_carry(client: FlaskClient, admin: dict) -> None:
    listed = client.get(f"{API}/tiers", headers=admin).get_json()

    assert [tier["code"] for tier in listed] == ["normal", "silver", "gold", "diamond"]
    assert listed[0]["benefits"] == []
    assert listed[2]["benefits"] == ["消费积分 1.5 倍", "每日免费停车 2 小时"]


def test_a_new_top_tier_is_added(client: FlaskClient, admin: dict) -> None:
    response = client.post(f"{API}/tiers", json=tier_body(), headers=admin)

    assert response.status_code == 201
    assert response.get_json()["benefits"] == ["消费积分 3 倍", "每日免费停车 24 小时"]
    assert client.get(f"{API}/tiers", headers=admin).get_json()[-1] == response.get_json()


def test_a_tier_change_takes_effect_on_the_next_purchase(
    client: FlaskClient, admin: dict, mall: dict, shopper: tuple
) -> None:
    normal = mall["tiers"]["normal"]

    response = client.put(
        f"{API}/tiers/{normal.id}",
        json=tier_body(
            code="normal",
            name="普卡",
            rank=1,
            min_annual_spend_fen=0,
            points_multiplier_percent=150,
            free_parking_minutes_per_day=30,
        ),
        headers=admin,
    )

    assert response.status_code == 200
    assert response.get_json()["benefits"] == ["消费积分 1.5 倍", "每日免费停车 30 分钟"]
    assert buy(client, mall, shopper[1]["id"], 10_000, "R-1") == 150
    me = client.get("/api/mp/v1/me/tier", headers=bearer(shopper[0])).get_json()
    assert me["current"]["benefits"] == ["消费积分 1.5 倍", "每日免费停车 30 分钟"]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"code": "gold"}, "TIER_CODE_EXISTS", "code"),
        ({"rank": 4}, "TIER_RANK_EXISTS", "rank"),
    ],
)
def test_tier_codes_and_ranks_are_unique(
    client: FlaskClient, admin: dict, session: Session, overrides: dict, code: str, field: str
) -> None:
    response = client.post(f"{API}/tiers", json=tier_body(**overrides), headers=admin)

    assert response.status_code == 409
    assert response.get_json()["code"] == code
    assert field in response.get_json()["details"]
    assert session.scalar(select(func.count()).select_from(Tier)) == 4


@pytest.mark.parametrize(
    "threshold_fen",
    [1_000_000, 5_000_000],  # below, then equal to, the threshold of diamond (rank 4)
)
def test_a_higher_tier_needs_a_higher_threshold(client: FlaskClient, admin: dict, threshold_fen: int) -> None:
    response = client.post(f"{API}/tiers", json=tier_body(min_annual_spend_fen=threshold_fen), headers=admin)

    assert response.status_code == 422
    assert response.get_json()["code"] == "TIER_THRESHOLDS_INVALID"
    assert list(response.get_json()["details"]) == ["min_annual_spend_fen"]


def test_moving_a_tier_above_a_higher_threshold_is_rejected(
    client: FlaskClient, admin: dict, mall: dict
) -> None:
    gold = mall["tiers"]["gold"]

    response = client.put(
        f"{API}/tiers/{gold.id}",
        json=tier_body(code="gold", name="金卡", rank=5, min_annual_spend_fen=2_000_000),
        headers=admin,
    )

    assert response.status_code == 422
    assert response.get_json()["code"] == "TIER_THRESHOLDS_INVALID"


def test_an_edit_that_breaks_the_ladder_is_rejected(client: FlaskClient, admin: dict, mall: dict) -> None:
    silver = mall["tiers"]["silver"]

    response = client.put(
        f"{API}/tiers/{silver.id}",
        json=tier_body(
            code="silver", name="银卡", rank=2, min_annual_spend_fen=2_000_000
        ),  # gold's threshold
        headers=admin,
    )

    assert response.status_code == 422
    assert response.get_json()["details"] == {
        "min_annual_spend_fen": ["「金卡」的升级门槛（¥20000.00）须高于较低等级「银卡」的门槛（¥20000.00）"]
    }


def test_the_lowest_tier_may_start_at_zero_and_a_tier_keeps_its_own_code(
    client: FlaskClient, admin: dict, mall: dict
) -> None:
    normal = mall["tiers"]["normal"]

    response = client.put(
        f"{API}/tiers/{normal.id}",
        json=tier_body(
            code="normal", name="普通卡", rank=1, min_annual_spend_fen=0, points_multiplier_percent=100
        ),
        headers=admin,
    )

    assert response.status_code == 200
    assert response.get_json()["name"] == "普通卡"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"points_multiplier_percent": 99}, "points_multiplier_percent"),
        ({"free_parking_minutes_per_day": 1441}, "free_parking_minutes_per_day"),
        ({"min_annual_spend_fen": -1}, "min_annual_spend_fen"),
        ({"code": "Black Card"}, "code"),
        ({"name": ""}, "name"),
        ({"rank": 0}, "rank"),
    ],
)
def test_invalid_tiers_are_rejected(client: FlaskClient, admin: dict, overrides: dict, field: str) -> None:
    response = client.post(f"{API}/tiers", json=tier_body(**overrides), headers=admin)

    assert response.status_code == 422
    assert list(response.get_json()["details"]) == [field]


def test_a_tier_nobody_holds_can_be_deleted(client: FlaskClient, admin: dict, mall: dict) -> None:
    diamond = mall["tiers"]["diamond"]

    response = client.delete(f"{API}/tiers/{diamond.id}", headers=admin)

    assert response.status_code == 204
    assert [tier["code"] for tier in client.get(f"{API}/tiers", headers=admin).get_json()] == [
        "normal",
        "silver",
        "gold",
    ]
    assert client.delete(f"{API}/tiers/{diamond.id}", headers=admin).status_code == 404


def test_a_tier_members_hold_or_held_cannot_be_deleted(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, shopper: tuple, session: Session
) -> None:
    tiers = mall["tiers"]
    session.add(
        TierChange(
            member_id=shopper[1]["id"],
            from_tier_id=tiers["gold"].id,
            to_tier_id=tiers["normal"].id,
            reason="review",
            rolling_spend_fen=0,
        )
    )
    session.flush()

    held = client.delete(f"{API}/tiers/{tiers['normal'].id}", headers=admin)
    history = client.delete(f"{API}/tiers/{tiers['gold'].id}", headers=admin)

    assert held.status_code == history.status_code == 409
    assert held.get_json() == {"code": "TIER_IN_USE", "message": "仍有会员处于该等级，不能删除"}
    assert history.get_json() == {"code": "TIER_IN_USE", "message": "该等级有会员升降级记录，不能删除"}
    assert session.scalar(select(func.count()).select_from(Tier)) == 4


def test_the_last_tier_stays(client: FlaskClient, admin: dict, mall: dict) -> None:
    for code in ("diamond", "gold", "silver"):
        assert client.delete(f"{API}/tiers/{mall['tiers'][code].id}", headers=admin).status_code == 204

    response = client.delete(f"{API}/tiers/{mall['tiers']['normal'].id}", headers=admin)

    assert response.status_code == 409
    assert response.get_json()["code"] == "TIER_LAST_REMAINING"


def test_a_missing_tier_is_404(client: FlaskClient, admin: dict) -> None:
    response = client.put(f"{API}/tiers/424242", json=tier_body(), headers=admin)

    assert response.status_code == 404
    assert response.get_json() == {"code": "NOT_FOUND", "message": "会员等级不存在"}


# --- adjustments and a member's points -----------------------------------------------------------


def test_an_operator_credits_points_with_a_reason(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, shopper: tuple, session: Session
) -> None:
    member_id = shopper[1]["id"]

    response = adjust(client, admin, member_id, 50, "补录漏积分小票")

    assert response.status_code == 201
    body = response.get_json()
    assert {key: body[key] for key in ("kind", "delta", "balance_after", "description", "operator_id")} == {
        "kind": "adjustment",
        "delta": 50,
        "balance_after": WELCOME + 50,
        "description": "人工调整：补录漏积分小票",
        "operator_id": mall["operator"].id,
    }
    assert body["id"] and body["created_at"]
    latest = client.get(f"{API}/members/{member_id}/points/entries", headers=admin).get_json()["items"][0]
    assert latest == body
    shopper_view = client.get("/api/mp/v1/me/points/entries", headers=bearer(shopper[0])).get_json()["items"][
        0
    ]
    assert shopper_view["description"] == "人工调整：补录漏积分小票"
    assert balance(session, member_id) == WELCOME + 50
    assert_ledger_verifies(app)


def test_an_operator_debits_points_but_never_below_zero(
    app: Flask, client: FlaskClient, admin: dict, shopper: tuple, session: Session
) -> None:
    member_id = shopper[1]["id"]

    debit = adjust(client, admin, member_id, -30, "误发积分收回")
    overdraw = adjust(client, admin, member_id, -(WELCOME - 30 + 1), "超额扣减")

    assert debit.status_code == 201
    assert (debit.get_json()["delta"], debit.get_json()["balance_after"]) == (-30, WELCOME - 30)
    assert overdraw.status_code == 409
    assert overdraw.get_json() == {"code": "POINTS_INSUFFICIENT", "message": "积分不足"}
    assert balance(session, member_id) == WELCOME - 30
    kinds = session.scalars(select(PointsEntry.kind).where(PointsEntry.member_id == member_id)).all()
    assert sorted(kinds) == sorted([PointsEntryKind.WELCOME, PointsEntryKind.ADJUSTMENT])
    assert_ledger_verifies(app)


def test_a_retry_with_the_same_idempotency_key_adjusts_once(
    app: Flask, client: FlaskClient, admin: dict, shopper: tuple, session: Session
) -> None:
    member_id = shopper[1]["id"]

    first = adjust(client, admin, member_id, 40, key="ticket-7781")
    retry = adjust(client, admin, member_id, 40, key="ticket-7781")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json()
    assert balance(session, member_id) == WELCOME + 40
    assert_ledger_verifies(app)


@pytest.mark.parametrize("delta", [41, -40])
def test_the_same_idempotency_key_for_another_adjustment_is_a_conflict(
    client: FlaskClient, admin: dict, shopper: tuple, session: Session, delta: int
) -> None:
    member_id = shopper[1]["id"]
    adjust(client, admin, member_id, 40, key="ticket-7782")

    response = adjust(client, admin, member_id, delta, key="ticket-7782")

    assert response.status_code == 409
    assert response.get_json()["code"] == "IDEMPOTENCY_CONFLICT"
    assert balance(session, member_id) == WELCOME + 40


def test_without_an_idempotency_key_each_request_is_a_new_adjustment(
    app: Flask, client: FlaskClient, admin: dict, shopper: tuple, session: Session
) -> None:
    member_id = shopper[1]["id"]

    ids = {adjust(client, admin, member_id, 10).get_json()["id"] for _ in range(2)}

    assert len(ids) == 2
    assert balance(session, member_id) == WELCOME + 20
    assert_ledger_verifies(app)


@pytest.mark.parametrize("delta", [10, -10])
def test_adjusting_an_unknown_member_is_404(client: FlaskClient, admin: dict, delta: int) -> None:
    response = adjust(client, admin, 424242, delta)

    assert response.status_code == 404
    assert response.get_json() == {"code": "NOT_FOUND", "message": "会员不存在"}


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"delta": 0, "reason": "无"}, {}, "delta"),
        ({"delta": 1_000_001, "reason": "太多"}, {}, "delta"),
        ({"delta": -1_000_001, "reason": "太多"}, {}, "delta"),
        ({"delta": 10}, {}, "reason"),
        ({"delta": 10, "reason": ""}, {}, "reason"),
        ({"delta": 10, "reason": "   "}, {}, "reason"),
        ({"delta": 10, "reason": "因" * 101}, {}, "reason"),
        ({"delta": 10, "reason": "补录"}, {"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
    ],
)
def test_invalid_adjustments_are_rejected(
    client: FlaskClient, admin: dict, shopper: tuple, session: Session, body: dict, headers: dict, field: str
) -> None:
    response = client.post(
        f"{API}/members/{shopper[1]['id']}/points-adjustments", json=body, headers={**admin, **headers}
    )

    assert response.status_code == 422
    assert list(response.get_json()["details"]) == [field]
    assert balance(session, shopper[1]["id"]) == WELCOME


def test_the_ledger_shows_operators_who_staff_and_what(
    client: FlaskClient, admin: dict, mall: dict, shopper: tuple
) -> None:
    member_id = shopper[1]["id"]
    buy(client, mall, member_id, 5_000, "R-9")
    adjust(client, admin, member_id, 5, "活动补偿")

    page = client.get(f"{API}/members/{member_id}/points/entries?limit=2", headers=admin).get_json()
    rest = client.get(
        f"{API}/members/{member_id}/points/entries?limit=2&cursor={page['next_cursor']}", headers=admin
    ).get_json()

    adjustment, purchase = page["items"]
    (welcome,) = rest["items"]
    assert (adjustment["kind"], adjustment["operator_id"], adjustment["staff_id"]) == (
        "adjustment",
        mall["operator"].id,
        None,
    )
    assert purchase["kind"] == "purchase"
    assert purchase["staff_id"] is not None
    assert purchase["reference"].startswith("purchase:")
    assert (welcome["kind"], rest["next_cursor"]) == ("welcome", None)


def test_a_members_points_summary(app: Flask, client: FlaskClient, admin: dict, shopper: tuple) -> None:
    adjust(client, admin, shopper[1]["id"], 25)

    response = client.get(f"{API}/members/{shopper[1]['id']}/points", headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["balance"], body["debt"], body["expiring_soon"]) == (WELCOME + 25, 0, 0)
    assert body["expiring_before"] == str(today(app) + timedelta(days=30))
    assert body["next_expiry_on"] == f"{today(app).year + 1}-12-31"


@pytest.mark.parametrize("path", ["/members/424242/points", "/members/424242/points/entries"])
def test_the_points_of_an_unknown_member_are_404(client: FlaskClient, admin: dict, path: str) -> None:
    response = client.get(f"{API}{path}", headers=admin)

    assert response.status_code == 404
    assert response.get_json()["message"] == "会员不存在"


@pytest.mark.mariadb
def test_concurrent_retries_of_one_adjustment_post_it_once(
    app: Flask, admin: dict, shopper: tuple, session: Session
) -> None:
    member_id = shopper[1]["id"]

    def post(_: int) -> tuple[int, int]:
        response = app.test_client().post(
            f"{API}/members/{member_id}/points-adjustments",
            json={"delta": -60, "reason": "并发重试"},
            headers={**admin, "Idempotency-Key": "burst-1"},
        )
        return response.status_code, response.get_json()["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = set(pool.map(post, range(6)))

    assert len(results) == 1 and next(iter(results))[0] == 201
    assert balance(session, member_id) == WELCOME - 60
    assert_ledger_verifies(app)


# --- access and documentation --------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/points-settings"),
    ("put", "/points-settings"),
    ("get", "/earning-rates"),
    ("post", "/earning-rates"),
    ("put", "/earning-rates/1"),
    ("delete", "/earning-rates/1"),
    ("get", "/points-promotions"),
    ("post", "/points-promotions"),
    ("put", "/points-promotions/1"),
    ("delete", "/points-promotions/1"),
    ("get", "/check-in-bonuses"),
    ("post", "/check-in-bonuses"),
    ("delete", "/check-in-bonuses/1"),
    ("get", "/tiers"),
    ("post", "/tiers"),
    ("put", "/tiers/1"),
    ("delete", "/tiers/1"),
    ("post", "/members/1/points-adjustments"),
    ("get", "/members/1/points/entries"),
    ("get", "/members/1/points"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_an_operator_token(
    client: FlaskClient, shopper: tuple, method: str, path: str
) -> None:
    for headers in ({}, bearer(shopper[0])):
        response = getattr(client, method)(f"{API}{path}", json={}, headers=headers)

        assert response.status_code == 401
        assert response.get_json()["code"] in {"AUTH_REQUIRED", "AUTH_INVALID"}


def test_the_spec_documents_every_endpoint_and_the_idempotency_key(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    for method, path in ENDPOINTS:
        documented = path.replace("/1", "/{id}")
        (template,) = [
            candidate
            for candidate in spec["paths"]
            if candidate.startswith(API) and _same_shape(candidate[len(API) :], documented)
        ]
        operation = spec["paths"][template][method]
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
    adjustment = spec["paths"][f"{API}/members/{{member_id}}/points-adjustments"]["post"]
    assert {"in": "header", "name": "Idempotency-Key"}.items() <= next(
        parameter for parameter in adjustment["parameters"] if parameter["in"] == "header"
    ).items()
    assert "201" in adjustment["responses"]


def _same_shape(template: str, path: str) -> bool:
    parts, wanted = template.split("/"), path.split("/")
    return len(parts) == len(wanted) and all(
        part == want or (part.startswith("{") and want == "{id}")
        for part, want in zip(parts, wanted, strict=True)
    )


# --- coupons that come with sign-up and birthdays -------------------------------------------------


def test_operators_choose_the_welcome_coupon(client: FlaskClient, admin: dict, session: Session) -> None:
    template = factories.create_coupon_template(session, name="新人礼券")

    saved = client.put(
        f"{API}/points-settings", json={**SETTINGS, "welcome_coupon_template_id": template.id}, headers=admin
    )
    token, _ = registered_shopper(client, "o-welcome-coupon", "13500135111")

    assert saved.status_code == 200
    assert saved.get_json()["welcome_coupon_template_id"] == template.id
    coupons = client.get("/api/mp/v1/me/coupons", headers=bearer(token)).get_json()
    assert [(c["name"], c["source"]) for c in coupons] == [("新人礼券", "welcome")]


def test_a_tier_birthday_coupon_is_issued_by_the_birthday_job(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, session: Session, shopper: tuple
) -> None:
    template = factories.create_coupon_template(session, name="生日券")
    normal = mall["tiers"]["normal"]
    body = {
        "code": normal.code,
        "name": normal.name,
        "rank": normal.rank,
        "min_annual_spend_fen": normal.min_annual_spend_fen,
        "points_multiplier_percent": normal.points_multiplier_percent,
        "free_parking_minutes_per_day": normal.free_parking_minutes_per_day,
        "birthday_coupon_template_id": template.id,
    }
    updated = client.put(f"{API}/tiers/{normal.id}", json=body, headers=admin)
    session.execute(Member.__table__.update().values(birthday=date(1990, today(app).month, 1)))

    app.test_cli_runner().invoke(args=["jobs", "run", "birthday-points"])
    app.test_cli_runner().invoke(args=["jobs", "run", "birthday-points"])

    assert updated.status_code == 200
    assert updated.get_json()["birthday_coupon_template_id"] == template.id
    coupons = client.get("/api/mp/v1/me/coupons", headers=bearer(shopper[0])).get_json()
    assert [(c["name"], c["source"]) for c in coupons] == [("生日券", "birthday")]


def test_an_unknown_coupon_template_is_refused(client: FlaskClient, admin: dict, mall: dict) -> None:
    response = client.put(
        f"{API}/points-settings", json={**SETTINGS, "welcome_coupon_template_id": 424242}, headers=admin
    )

    assert response.status_code == 422
    assert "welcome_coupon_template_id" in response.get_json()["details"]

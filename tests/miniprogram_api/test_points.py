"""The shopper's points: balance, history, check-in, sharing, tier progress, welcome and referral."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import mall_time
from app.models import CheckIn, CheckInStreakBonus, PointsEntry, PointsLot, PointsSettings
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper

DEFAULTS = PointsSettings.DEFAULTS


@pytest.fixture
def mall(session: Session) -> list:
    tiers = factories.create_tiers(session)
    factories.create_operator(session)
    return tiers


@pytest.fixture
def shopper(client: FlaskClient, mall: list) -> tuple[str, dict]:
    return registered_shopper(client, "o-points", "13400134000")


def get(client: FlaskClient, token: str, path: str) -> dict:
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def today(app: Flask):
    with app.app_context():
        return mall_time().today


def test_a_new_member_gets_the_welcome_points(client: FlaskClient, shopper: tuple) -> None:
    summary = get(client, shopper[0], "/api/mp/v1/me/points")

    assert summary["balance"] == DEFAULTS["welcome_points"]
    assert summary["debt"] == 0
    (entry,) = get(client, shopper[0], "/api/mp/v1/me/points/entries")["items"]
    assert (entry["kind"], entry["delta"], entry["description"]) == ("welcome", 100, "新会员注册礼")


def test_points_expiring_within_30_days_are_announced(
    app: Flask, client: FlaskClient, shopper: tuple, session: Session
) -> None:
    session.execute(PointsLot.__table__.update().values(expires_on=today(app) + timedelta(days=10)))

    summary = get(client, shopper[0], "/api/mp/v1/me/points")

    assert summary["expiring_soon"] == DEFAULTS["welcome_points"]
    assert summary["next_expiry_on"] == (today(app) + timedelta(days=10)).isoformat()


def test_history_pages_newest_first_with_a_cursor(client: FlaskClient, shopper: tuple) -> None:
    for _ in range(3):
        client.post("/api/mp/v1/me/shares", headers=bearer(shopper[0]))

    first = get(client, shopper[0], "/api/mp/v1/me/points/entries?limit=2")
    second = get(client, shopper[0], f"/api/mp/v1/me/points/entries?limit=2&cursor={first['next_cursor']}")

    kinds = [e["kind"] for e in first["items"] + second["items"]]
    assert kinds == ["share", "share", "share", "welcome"]
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert second["next_cursor"] is None


def test_check_in_once_a_day(client: FlaskClient, shopper: tuple) -> None:
    first = client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper[0])).get_json()
    second = client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper[0])).get_json()

    assert first["already_checked_in"] is False
    assert second["already_checked_in"] is True
    assert {k: v for k, v in first.items() if k != "already_checked_in"} == {
        k: v for k, v in second.items() if k != "already_checked_in"
    }
    assert first["streak"] == 1 and first["points"] == DEFAULTS["checkin_points"]
    assert get(client, shopper[0], "/api/mp/v1/me/points")["balance"] == 100 + DEFAULTS["checkin_points"]


def test_a_streak_continues_from_yesterday_and_earns_its_bonus(
    app: Flask, client: FlaskClient, shopper: tuple, session: Session
) -> None:
    session.add(
        CheckIn(member_id=shopper[1]["id"], business_date=today(app) - timedelta(days=1), streak=6, points=5)
    )
    session.add(CheckInStreakBonus(streak_days=7, bonus_points=50))
    session.commit()

    result = client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper[0])).get_json()

    assert (result["streak"], result["points"], result["bonus_points"]) == (7, 5, 50)
    entry = get(client, shopper[0], "/api/mp/v1/me/points/entries")["items"][0]
    assert entry["delta"] == 55 and "连续 7 天" in entry["description"]


def test_a_missed_day_restarts_the_streak(
    app: Flask, client: FlaskClient, shopper: tuple, session: Session
) -> None:
    session.add(
        CheckIn(member_id=shopper[1]["id"], business_date=today(app) - timedelta(days=2), streak=6, points=5)
    )
    session.commit()

    result = client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper[0])).get_json()

    assert result["streak"] == 1


def test_shares_earn_points_up_to_the_daily_limit(client: FlaskClient, shopper: tuple) -> None:
    results = [client.post("/api/mp/v1/me/shares", headers=bearer(shopper[0])).get_json() for _ in range(5)]

    assert [r["points"] for r in results] == [10, 10, 10, 0, 0]
    assert results[-1]["shares_rewarded_today"] == 3 == results[-1]["daily_limit"]
    assert get(client, shopper[0], "/api/mp/v1/me/points")["balance"] == 130


def test_tier_progress_shows_benefits_and_what_is_left(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    tier = get(client, shopper[0], "/api/mp/v1/me/tier")

    assert tier["current"]["name"] == "普卡"
    assert tier["current"]["benefits"] == []
    assert tier["next"]["name"] == "银卡"
    assert tier["next"]["benefits"] == ["消费积分 1.2 倍", "每日免费停车 1 小时"]
    assert tier["spend_to_next_fen"] == tier["next"]["min_annual_spend_fen"] - tier["rolling_spend_fen"]


def test_a_referral_rewards_both_sides_once(client: FlaskClient, mall: list, session: Session) -> None:
    referrer_token, referrer = registered_shopper(client, "o-referrer", "13400134001")
    scene = client.post(
        "/api/admin/v1/qr-scenes",
        json={"kind": "referral", "name": "老带新", "referrer_member_id": referrer["id"]},
        headers=bearer(operator_login(client)),
    ).get_json()

    referee_token, _ = registered_shopper(client, "o-referee", "13400134002", scene=scene["scene"])
    registered_again = client.post(
        "/api/mp/v1/members",
        json={
            "phone_code": "sandbox-phone:13400134002",
            "consent_version": "2026-11",
            "scene": scene["scene"],
        },
        headers=bearer(referee_token),
    )

    assert registered_again.status_code == 200
    assert get(client, referrer_token, "/api/mp/v1/me/points")["balance"] == 100 + DEFAULTS["referrer_points"]
    assert get(client, referee_token, "/api/mp/v1/me/points")["balance"] == 100 + DEFAULTS["referee_points"]
    descriptions = session.scalars(
        select(PointsEntry.description).where(PointsEntry.kind == "referral")
    ).all()
    assert sorted(descriptions) == ["受邀注册奖励", "推荐好友注册奖励"]


def test_a_pos_member_joining_on_wechat_gets_no_welcome_points(
    app: Flask, client: FlaskClient, mall: list, session: Session
) -> None:
    from app.extensions import extensions

    with app.app_context():
        vault = extensions().phone_vault
    factories.create_member(session, vault, "13400134003", mall[0])
    token, _ = registered_shopper_existing(client, "o-pos", "13400134003")

    assert get(client, token, "/api/mp/v1/me/points")["balance"] == 0


def registered_shopper_existing(client: FlaskClient, openid: str, phone: str) -> tuple[str, dict]:
    token = client.post("/api/mp/v1/auth/login", json={"code": f"sandbox:{openid}"}).get_json()["token"]
    response = client.post(
        "/api/mp/v1/members",
        json={"phone_code": f"sandbox-phone:{phone}", "consent_version": "2026-11"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    return token, response.get_json()


@pytest.mark.parametrize(
    "path", ["/api/mp/v1/me/points", "/api/mp/v1/me/points/entries", "/api/mp/v1/me/tier"]
)
def test_points_pages_need_a_registered_member(client: FlaskClient, mall: list, path: str) -> None:
    token = client.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-visitor"}).get_json()["token"]

    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer(token)).get_json()["code"] == "MEMBER_NOT_REGISTERED"


def test_bad_cursors_are_422(client: FlaskClient, shopper: tuple) -> None:
    for query in ("cursor=abc", "limit=0", "limit=51", "cursor=-3"):
        response = client.get(f"/api/mp/v1/me/points/entries?{query}", headers=bearer(shopper[0]))
        assert response.status_code == 422, query

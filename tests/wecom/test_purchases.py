"""Counter staff credit purchases and refunds; points follow the mall's rules, exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from app.config import Config
from app.db import bound_database, utcnow
from app.extensions import mall_time
from app.models import (
    EarningRate,
    Member,
    PointsEntry,
    PointsEntryKind,
    PointsPromotion,
    PointsSettings,
    Purchase,
    Staff,
    StaffRole,
    TierChange,
)
from app.reference_cache import STAFF, bump_versions
from app.services import member_merge
from tests import factories
from tests.flows import bearer, registered_shopper, staff_login

WELCOME = PointsSettings.DEFAULTS["welcome_points"]


@pytest.fixture
def config(config: Config) -> Config:
    # The counter's staff here credit faster than any cashier (a hundred repeats of one receipt at
    # once): rate limits are tested in tests/app/test_rate_limits.py.
    return config.with_overrides(RATE_LIMIT_VERIFY="1000/minute")


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    fashion = factories.create_store(session, name="优衣库", category="服饰")
    food = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=fashion.id)
    factories.create_staff(session, "manager01", StaffRole.MANAGER)
    return {"tiers": tiers, "fashion": fashion, "food": food}


@pytest.fixture
def shopper(client: FlaskClient, mall: dict) -> tuple[str, dict]:
    return registered_shopper(client, "o-buyer", "13500000001")


@pytest.fixture
def staff(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(staff_login(client, "staff01"))


def credit(client: FlaskClient, headers: dict, **body: Any):
    return client.post("/api/staff/v1/purchases", json=body, headers=headers)


def member_code(client: FlaskClient, shopper_token: str) -> str:
    return str(client.get("/api/mp/v1/me/code", headers=bearer(shopper_token)).get_json()["code"])


def balance(client: FlaskClient, shopper_token: str) -> int:
    return int(client.get("/api/mp/v1/me/points", headers=bearer(shopper_token)).get_json()["balance"])


def verify_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


def test_scanning_the_member_code_credits_one_point_per_yuan(
    app: Flask, client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    response = credit(
        client,
        staff,
        member_code=member_code(client, shopper[0]),
        store_id=mall["fashion"].id,
        receipt_no="R-1001",
        amount_fen=12_999,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["purchase"]["points_earned"] == 129  # full yuan only
    assert body["member"]["points_balance"] == WELCOME + 129
    assert body["tier_upgraded_to"] is None
    entries = client.get("/api/mp/v1/me/points/entries", headers=bearer(shopper[0])).get_json()["items"]
    assert entries[0]["kind"] == "purchase"
    assert entries[0]["description"] == "优衣库 消费 ¥129.99"
    verify_clean(app)


def test_the_same_receipt_twice_is_credited_once(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict, session: Session
) -> None:
    body = {
        "member_id": shopper[1]["id"],
        "store_id": mall["fashion"].id,
        "receipt_no": "R-2",
        "amount_fen": 5_000,
    }
    first = credit(client, staff, **body)

    again = credit(client, staff, **body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["purchase"]["id"] == first.get_json()["purchase"]["id"]
    assert balance(client, shopper[0]) == WELCOME + 50


def test_a_retry_with_the_member_code_again_is_recognised(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    code = member_code(client, shopper[0])
    body = {"member_code": code, "store_id": mall["fashion"].id, "receipt_no": "R-3", "amount_fen": 5_000}

    assert credit(client, staff, **body).status_code == 201
    assert credit(client, staff, **body).status_code == 200


def test_the_same_receipt_with_another_amount_is_a_conflict(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    body = {
        "member_id": shopper[1]["id"],
        "store_id": mall["fashion"].id,
        "receipt_no": "R-4",
        "amount_fen": 5_000,
    }
    credit(client, staff, **body)

    response = credit(client, staff, **{**body, "amount_fen": 9_000})

    assert response.status_code == 409
    assert response.get_json()["code"] == "RECEIPT_CONFLICT"
    assert balance(client, shopper[0]) == WELCOME + 50


def test_counter_staff_may_credit_only_their_own_store(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    response = credit(
        client, staff, member_id=shopper[1]["id"], store_id=mall["food"].id, receipt_no="X", amount_fen=100
    )

    assert response.status_code == 403
    assert response.get_json()["code"] == "STORE_NOT_ALLOWED"


def test_managers_may_credit_any_store(client: FlaskClient, mall: dict, shopper: tuple) -> None:
    response = credit(
        client,
        bearer(staff_login(client, "manager01")),
        member_id=shopper[1]["id"],
        store_id=mall["food"].id,
        receipt_no="M-1",
        amount_fen=3_000,
    )

    assert response.status_code == 201


def test_a_non_member_sale_is_recorded_without_points(
    client: FlaskClient, mall: dict, staff: dict, session: Session
) -> None:
    response = credit(client, staff, store_id=mall["fashion"].id, receipt_no="N-1", amount_fen=8_800)

    assert response.status_code == 201
    assert response.get_json()["member"] is None
    purchase = session.scalars(select(Purchase)).one()
    assert (purchase.member_id, purchase.amount_fen, purchase.points_earned) == (None, 8_800, 0)


def test_category_rate_tier_multiplier_and_promotion_combine(
    client: FlaskClient, mall: dict, shopper: tuple, session: Session
) -> None:
    session.add(EarningRate(category="餐饮", spend_unit_fen=1_000, points_per_unit=3))  # 3 points per ¥10
    today = utcnow().date()
    session.add(
        PointsPromotion(
            name="双倍积分日",
            starts_on=today - timedelta(days=1),
            ends_on=today + timedelta(days=1),
            multiplier_percent=200,
            category="餐饮",
        )
    )
    session.execute(Member.__table__.update().values(tier_id=mall["tiers"][2].id))  # 金卡 1.5x
    session.commit()
    manager = bearer(staff_login(client, "manager01"))

    response = credit(
        client,
        manager,
        member_id=shopper[1]["id"],
        store_id=mall["food"].id,
        receipt_no="F-1",
        amount_fen=10_500,
    )

    # ¥105 -> 10 full units -> 30 points, x1.5 tier, x2 promotion
    assert response.get_json()["purchase"]["points_earned"] == 90


def test_purchases_below_the_minimum_earn_nothing(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    response = credit(
        client,
        staff,
        member_id=shopper[1]["id"],
        store_id=mall["fashion"].id,
        receipt_no="S-1",
        amount_fen=99,
    )

    assert response.status_code == 201
    assert response.get_json()["purchase"]["points_earned"] == 0


def test_purchase_points_are_capped_per_day(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict, session: Session
) -> None:
    session.add(PointsSettings(**{**PointsSettings.with_defaults_dict(), "purchase_daily_cap_points": 300}))
    session.commit()

    earned = [
        credit(
            client,
            staff,
            member_id=shopper[1]["id"],
            store_id=mall["fashion"].id,
            receipt_no=f"C-{n}",
            amount_fen=20_000,
        ).get_json()["purchase"]["points_earned"]
        for n in range(3)
    ]

    assert earned == [200, 100, 0]


def test_crossing_a_threshold_upgrades_the_tier_at_once(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict, session: Session
) -> None:
    silver = mall["tiers"][1]

    response = credit(
        client,
        staff,
        member_id=shopper[1]["id"],
        store_id=mall["fashion"].id,
        receipt_no="BIG",
        amount_fen=silver.min_annual_spend_fen,
    )

    assert response.get_json()["tier_upgraded_to"] == "银卡"
    assert response.get_json()["member"]["tier"]["code"] == "silver"
    change = session.scalars(select(TierChange)).one()
    assert (change.reason, change.rolling_spend_fen) == ("purchase", silver.min_annual_spend_fen)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"store_id": 1, "receipt_no": "x", "amount_fen": 0}, "amount_fen"),
        ({"store_id": 1, "receipt_no": "", "amount_fen": 100}, "receipt_no"),
        ({"receipt_no": "x", "amount_fen": 100}, "store_id"),
        ({"store_id": 1, "receipt_no": "x", "amount_fen": 1.5}, "amount_fen"),
        ({"store_id": 1, "receipt_no": "x", "amount_fen": 100, "paid_at": "2026-11-25T10:00:00"}, "paid_at"),
    ],
)
def test_invalid_purchases_are_422(client: FlaskClient, staff: dict, body: dict, field: str) -> None:
    response = credit(client, staff, **body)

    assert response.status_code == 422
    assert field in response.get_json()["details"]


def test_code_and_member_id_together_are_refused(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    response = credit(
        client,
        staff,
        member_code=member_code(client, shopper[0]),
        member_id=shopper[1]["id"],
        store_id=mall["fashion"].id,
        receipt_no="B-1",
        amount_fen=100,
    )

    assert response.status_code == 422
    assert "member_code" in response.get_json()["details"]


def test_an_unknown_member_is_404(client: FlaskClient, mall: dict, staff: dict) -> None:
    response = credit(
        client, staff, member_id=987654, store_id=mall["fashion"].id, receipt_no="U-1", amount_fen=100
    )

    assert response.status_code == 404


def refund(client: FlaskClient, headers: dict, purchase_id: int, refund_no: str, amount_fen: int):
    return client.post(
        f"/api/staff/v1/purchases/{purchase_id}/refunds",
        json={"refund_no": refund_no, "amount_fen": amount_fen},
        headers=headers,
    )


@pytest.fixture
def purchase(client: FlaskClient, mall: dict, shopper: tuple, staff: dict) -> dict:
    response = credit(
        client,
        staff,
        member_id=shopper[1]["id"],
        store_id=mall["fashion"].id,
        receipt_no="P-1",
        amount_fen=30_000,
    )
    return response.get_json()["purchase"]


def test_partial_refunds_claw_back_proportional_points(
    app: Flask, client: FlaskClient, shopper: tuple, staff: dict, purchase: dict
) -> None:
    first = refund(client, staff, purchase["id"], "RF-1", 10_000)
    second = refund(client, staff, purchase["id"], "RF-2", 20_000)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["points_clawed_back"] == 100
    assert second.get_json()["points_clawed_back"] == 200
    assert second.get_json()["purchase"]["refunded_fen"] == 30_000
    assert balance(client, shopper[0]) == WELCOME
    verify_clean(app)


def test_a_repeated_refund_number_is_applied_once(
    client: FlaskClient, shopper: tuple, staff: dict, purchase: dict
) -> None:
    assert refund(client, staff, purchase["id"], "RF-1", 10_000).status_code == 201
    again = refund(client, staff, purchase["id"], "RF-1", 10_000)
    other_amount = refund(client, staff, purchase["id"], "RF-1", 5_000)

    assert again.status_code == 200
    assert other_amount.status_code == 409
    assert other_amount.get_json()["code"] == "REFUND_CONFLICT"
    assert balance(client, shopper[0]) == WELCOME + 200


def test_refunding_more_than_was_paid_is_refused(client: FlaskClient, staff: dict, purchase: dict) -> None:
    refund(client, staff, purchase["id"], "RF-1", 20_000)

    response = refund(client, staff, purchase["id"], "RF-2", 10_001)

    assert response.status_code == 422
    assert response.get_json()["details"] == {"refundable_fen": 10_000}


def test_refunding_spent_points_leaves_debt_that_new_points_repay(
    app: Flask, client: FlaskClient, mall: dict, shopper: tuple, staff: dict, purchase: dict, session: Session
) -> None:
    from zoneinfo import ZoneInfo

    from app.db import run_transaction
    from app.mall_time import MallTime
    from app.services import points

    member_id = shopper[1]["id"]
    run_transaction(
        lambda s: points.spend(
            s,
            points.Posting(member_id, WELCOME + 250, PointsEntryKind.REDEMPTION, "spend-all", "兑换"),
            at=MallTime(utcnow(), ZoneInfo("Asia/Shanghai")),
        ),
        app=app,
    )

    refund(client, staff, purchase["id"], "RF-ALL", 30_000)
    summary = client.get("/api/mp/v1/me/points", headers=bearer(shopper[0])).get_json()
    assert (summary["balance"], summary["debt"]) == (0, 250)

    credit(
        client, staff, member_id=member_id, store_id=mall["fashion"].id, receipt_no="P-2", amount_fen=40_000
    )
    summary = client.get("/api/mp/v1/me/points", headers=bearer(shopper[0])).get_json()
    assert (summary["balance"], summary["debt"]) == (150, 0)
    verify_clean(app)


def test_refunds_lower_the_rolling_spend(
    client: FlaskClient, shopper: tuple, staff: dict, purchase: dict
) -> None:
    refund(client, staff, purchase["id"], "RF-1", 10_000)

    tier = client.get("/api/mp/v1/me/tier", headers=bearer(shopper[0])).get_json()

    assert tier["rolling_spend_fen"] == 20_000


@pytest.mark.mariadb
def test_a_hundred_concurrent_repeats_of_one_receipt_credit_once(
    app: Flask, client: FlaskClient, mall: dict, shopper: tuple, staff: dict, session: Session
) -> None:
    body = {
        "member_id": shopper[1]["id"],
        "store_id": mall["fashion"].id,
        "receipt_no": "RACE",
        "amount_fen": 10_000,
    }

    def attempt(_: int) -> int:
        return app.test_client().post("/api/staff/v1/purchases", json=body, headers=staff).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(attempt, range(100)))

    assert sorted(set(statuses)) == [200, 201] and statuses.count(201) == 1
    assert session.scalar(select(func.count()).select_from(Purchase)) == 1
    kinds = session.scalars(
        select(PointsEntry.kind).where(PointsEntry.kind == PointsEntryKind.PURCHASE)
    ).all()
    assert len(kinds) == 1
    assert balance(client, shopper[0]) == WELCOME + 100
    verify_clean(app)


def test_a_merged_away_member_cannot_be_credited_by_id(
    app: Flask, client: FlaskClient, session: Session, mall: dict, staff: dict, shopper: tuple
) -> None:
    survivor = registered_shopper(client, "o-survivor", "13500000002")[1]
    with app.app_context():
        member_merge.merge(session, survivor["id"], shopper[1]["id"], operator_id=None, at=mall_time())
    session.commit()

    response = credit(
        client,
        staff,
        member_id=shopper[1]["id"],
        store_id=mall["fashion"].id,
        receipt_no="M-1",
        amount_fen=100,
    )

    assert response.status_code == 409 and response.get_json()["code"] == "MEMBER_MERGED"
    assert f"会员 {survivor['id']}" in response.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(Purchase).where(Purchase.receipt_no == "M-1")) == 0


def commits_during(app: Flask, action: Any) -> int:
    commits: list[object] = []
    engine = bound_database(app).engine
    listener = commits.append
    event.listen(engine, "commit", listener)
    try:
        action()
    finally:
        event.remove(engine, "commit", listener)
    return len(commits)


def test_checking_the_staff_and_crediting_take_one_transaction(
    app: Flask, client: FlaskClient, mall: dict, shopper: tuple, staff: dict
) -> None:
    code = member_code(client, shopper[0])
    answers: list[Any] = []

    def send() -> None:
        answers.append(
            credit(
                client, staff, member_code=code, store_id=mall["fashion"].id, receipt_no="R-1", amount_fen=100
            )
        )

    commits = commits_during(app, send)

    assert answers[0].status_code == 201
    assert commits == 1
    assert bound_database(app).engine.pool.checkedout() == 0


def test_a_staff_member_deactivated_between_two_purchases_is_refused_the_second(
    client: FlaskClient, mall: dict, shopper: tuple, staff: dict, session: Session
) -> None:
    body = {"member_code": member_code(client, shopper[0]), "store_id": mall["fashion"].id, "amount_fen": 100}
    first = credit(client, staff, **body, receipt_no="R-1")
    session.execute(update(Staff).where(Staff.wecom_userid == "staff01").values(is_active=False))
    bump_versions(session, [STAFF])
    session.commit()

    second = credit(client, staff, **body, receipt_no="R-2")

    assert first.status_code == 201
    assert second.status_code == 401
    assert session.scalar(select(func.count()).select_from(Purchase)) == 1


def test_a_request_refused_after_the_staff_check_leaves_no_transaction_open(
    app: Flask, client: FlaskClient, mall: dict, staff: dict
) -> None:
    refused = credit(client, staff, store_id=mall["fashion"].id, receipt_no="R-1", amount_fen=-5)

    assert refused.status_code == 422
    assert bound_database(app).engine.pool.checkedout() == 0

"""Each process keeps its own copy of the rules, tiers and stores, and never serves a stale one.

A second app on the same database stands in for another gunicorn worker: what an operator
changes through one must apply to the very next purchase credited through the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app, reference_cache
from app.config import Config
from app.db import bound_database, seed_request_sessions, transaction
from app.models import EarningRate, ReferenceVersion, Staff, StaffRole
from app.reference_cache import RULES, TIERS
from app.services import purchases
from tests import factories
from tests.flows import bearer, credited_purchase, operator_login, registered_shopper, staff_login
from tests.observe import statements_during

API = "/api/admin/v1"


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=food.id)
    factories.create_operator(session, "ops", "correct-horse")
    return {"tiers": tiers, "food": food}


@pytest.fixture
def other_worker(config: Config) -> Iterator[Flask]:
    other = create_app(config)
    yield other
    bound_database(other).engine.dispose()


def buy(client: FlaskClient, mall: dict, member_id: int, amount_fen: int, receipt_no: str) -> dict:
    return credited_purchase(
        client,
        "staff01",
        store_id=mall["food"].id,
        member_id=member_id,
        amount_fen=amount_fen,
        receipt_no=receipt_no,
    )


def test_a_rate_changed_through_one_worker_applies_at_once_in_another(
    client: FlaskClient, other_worker: Flask, mall: dict
) -> None:
    _, member = registered_shopper(client, "o-cache", "13500135001")
    other = other_worker.test_client()
    assert buy(other, mall, member["id"], 10_000, "R-1")["purchase"]["points_earned"] == 100  # warms its copy

    created = client.post(
        f"{API}/earning-rates",
        json={"category": "餐饮", "spend_unit_fen": 100, "points_per_unit": 3},
        headers=bearer(operator_login(client)),
    )

    assert created.status_code == 201
    assert buy(other, mall, member["id"], 10_000, "R-2")["purchase"]["points_earned"] == 300


def test_a_warm_purchase_reads_no_reference_table(app: Flask, client: FlaskClient, mall: dict) -> None:
    _, member = registered_shopper(client, "o-cache", "13500135001")
    buy(client, mall, member["id"], 10_000, "R-1")

    statements = statements_during(app, lambda: buy(client, mall, member["id"], 10_000, "R-2"))

    reads = [sql for sql in statements if sql.startswith("select")]
    for table in ("points_settings", "earning_rates", "points_promotions", "tiers", "stores"):
        assert not any(f"from {table} " in sql or sql.endswith(f"from {table}") for sql in reads), table
    assert sum("from reference_versions" in sql for sql in reads) == 1


def test_writes_bump_their_group_and_rolled_back_writes_poison_nothing(
    app: Flask, client: FlaskClient, mall: dict, session: Session
) -> None:
    _, member = registered_shopper(client, "o-cache", "13500135001")
    versions_before = dict(session.execute(select(ReferenceVersion.name, ReferenceVersion.version)).all())
    buy(client, mall, member["id"], 10_000, "R-1")

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), app.app_context(), transaction() as tx:
        tx.add(EarningRate(category="餐饮", spend_unit_fen=100, points_per_unit=9))
        tx.flush()
        assert purchases.earning_rate_for(tx, "餐饮").points_per_unit == 9  # its own write, uncached
        raise Abandon

    versions_after = dict(session.execute(select(ReferenceVersion.name, ReferenceVersion.version)).all())
    assert versions_after.get(RULES, 0) == versions_before.get(RULES, 0)
    session.add(EarningRate(category="服饰", spend_unit_fen=100, points_per_unit=2))
    session.commit()  # commits the version the abandoned transaction had reached
    assert buy(client, mall, member["id"], 10_000, "R-4")["purchase"]["points_earned"] == 100

    mall["tiers"][0].name = "普卡会员"
    session.commit()
    versions_after = dict(session.execute(select(ReferenceVersion.name, ReferenceVersion.version)).all())
    assert versions_after[TIERS] == versions_before.get(TIERS, 0) + 1
    assert buy(client, mall, member["id"], 10_000, "R-5")["member"]["tier"]["name"] == "普卡会员"


def test_deactivating_staff_refuses_their_next_request_in_every_worker(
    client: FlaskClient, other_worker: Flask, mall: dict, session: Session
) -> None:
    headers = bearer(staff_login(client, "staff01"))
    other = other_worker.test_client()

    def scan() -> int:
        response = other.post("/api/staff/v1/member-codes/verify", json={"code": "?"}, headers=headers)
        return response.status_code

    assert scan() == 400  # let in (the code itself is bad); the worker now holds a copy of the staff row

    staff = session.scalars(select(Staff).where(Staff.wecom_userid == "staff01")).one()
    staff.role = StaffRole.ADVISOR
    session.commit()
    assert scan() == 403

    staff.is_active = False
    session.commit()
    assert scan() == 401


def test_a_request_that_changes_rules_reads_its_own_change_in_later_units_of_work(
    app: Flask, client: FlaskClient, mall: dict
) -> None:
    _, member = registered_shopper(client, "o-cache", "13500135001")
    buy(client, mall, member["id"], 10_000, "R-1")  # the process's copy of the rates is warm

    with app.test_request_context():
        with transaction() as first:
            purchases.earning_rate_for(first, "餐饮")
            seed_request_sessions(reference_cache.versions_read(first))  # as the auth check does
        with transaction() as edit:
            edit.add(EarningRate(category="餐饮", spend_unit_fen=100, points_per_unit=4))
        with transaction() as later:
            assert purchases.earning_rate_for(later, "餐饮").points_per_unit == 4

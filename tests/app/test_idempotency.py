"""The Idempotency-Key header on shopper, staff and POS writes: a retry gets the first response back
without the action running again; the same key on another request, or while the first runs, is a 409."""

from __future__ import annotations

import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import jobs
from app.db import utcnow
from app.models import (
    Coupon,
    IdempotencyKey,
    PointsEntry,
    PointsEntryKind,
    PointsSettings,
    Purchase,
    StaffRole,
    WeChatAccount,
)
from app.services import rewards
from tests import factories
from tests.app.pos_api.test_pos_api import post_signed, sale
from tests.flows import bearer, operator_login, registered_shopper, staff_login

SHARES = "/api/mp/v1/me/shares"
STAFF_PURCHASES = "/api/staff/v1/purchases"


@pytest.fixture
def store_id(session: Session) -> int:
    factories.create_tiers(session)
    store = factories.create_store(session)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    session.commit()
    return store.id


@pytest.fixture
def shopper(client: FlaskClient, store_id: int) -> tuple[str, int]:
    token, member = registered_shopper(client, "o-retry", "13900000011")
    return token, int(member["id"])


def keyed(token: str, key: str) -> dict[str, str]:
    return {**bearer(token), "Idempotency-Key": key}


def share_entries(session: Session, member_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(PointsEntry)
            .where(PointsEntry.member_id == member_id, PointsEntry.kind == PointsEntryKind.SHARE)
        )
        or 0
    )


def test_a_retried_share_is_answered_with_the_first_response_and_credits_once(
    client: FlaskClient, shopper: tuple[str, int], session: Session
) -> None:
    token, member_id = shopper

    first = client.post(SHARES, headers=keyed(token, "share-retry-0001"))
    again = client.post(SHARES, headers=keyed(token, "share-retry-0001"))
    another = client.post(SHARES, headers=keyed(token, "share-retry-0002"))

    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert "Idempotent-Replayed" not in first.headers and "Idempotent-Replayed" not in another.headers
    assert share_entries(session, member_id) == 2


def test_a_retried_points_coupon_purchase_claims_and_debits_once(
    client: FlaskClient, shopper: tuple[str, int], session: Session
) -> None:
    token, member_id = shopper
    welcome = PointsSettings.DEFAULTS["welcome_points"]
    template = factories.create_coupon_template(session, per_member_limit=5, points_price=10)
    path = f"/api/mp/v1/coupon-templates/{template.id}/claims"

    first = client.post(path, headers=keyed(token, "claim-retry-0001"))
    again = client.post(path, headers=keyed(token, "claim-retry-0001"))

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.member_id == member_id)) == 1
    balance = client.get("/api/mp/v1/me/points", headers=bearer(token)).get_json()["balance"]
    assert balance == welcome - 10


def test_the_same_key_on_another_request_is_refused(
    client: FlaskClient, shopper: tuple[str, int], session: Session, store_id: int
) -> None:
    staff = staff_login(client, "staff01")
    body = {"member_id": shopper[1], "store_id": store_id, "receipt_no": "R-1", "amount_fen": 10_000}

    first = client.post(STAFF_PURCHASES, json=body, headers=keyed(staff, "counter-key-0001"))
    other = client.post(
        STAFF_PURCHASES, json={**body, "receipt_no": "R-2"}, headers=keyed(staff, "counter-key-0001")
    )
    elsewhere = client.post(SHARES, headers=keyed(shopper[0], "counter-key-0001"))

    assert first.status_code == 201
    assert other.status_code == 409
    assert other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert session.scalar(select(func.count()).select_from(Purchase)) == 1
    # Keys belong to their caller: a shopper's key never collides with a staff member's.
    assert elsewhere.status_code == 200


def test_a_repeat_while_the_first_request_runs_is_refused(
    client: FlaskClient, shopper: tuple[str, int], session: Session
) -> None:
    token, member_id = shopper
    account_id = session.scalar(select(WeChatAccount.id).where(WeChatAccount.openid == "o-retry"))
    now = utcnow()
    session.add(
        IdempotencyKey(
            actor=f"mp:{account_id}",
            request_key="share-running-01",
            request_hash=hashlib.sha256(f"POST\n{SHARES}\n".encode()).hexdigest(),
            created_at=now,
            expires_at=now + timedelta(hours=24),
        )
    )
    session.commit()

    response = client.post(SHARES, headers=keyed(token, "share-running-01"))

    assert response.status_code == 409
    assert response.get_json()["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert share_entries(session, member_id) == 0


def test_errors_that_may_pass_are_not_kept(
    app: Flask,
    client: FlaskClient,
    shopper: tuple[str, int],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token, member_id = shopper
    real_reward_share = rewards.reward_share
    monkeypatch.setattr(rewards, "reward_share", lambda *a, **kw: 1 / 0)
    failed = client.post(SHARES, headers=keyed(token, "share-flaky-0001"))
    monkeypatch.setattr(rewards, "reward_share", real_reward_share)

    retried = client.post(SHARES, headers=keyed(token, "share-flaky-0001"))

    assert failed.status_code == 500
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert share_entries(session, member_id) == 1


def test_client_errors_are_kept(client: FlaskClient, shopper: tuple[str, int], session: Session) -> None:
    first = client.post(
        "/api/mp/v1/me/plates", json={"plate": ""}, headers=keyed(shopper[0], "plate-bad-00001")
    )
    again = client.post(
        "/api/mp/v1/me/plates", json={"plate": ""}, headers=keyed(shopper[0], "plate-bad-00001")
    )

    assert first.status_code == again.status_code == 422
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"


def test_a_malformed_key_is_refused(client: FlaskClient, shopper: tuple[str, int], session: Session) -> None:
    response = client.post(SHARES, headers=keyed(shopper[0], "short"))

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["details"]
    assert share_entries(session, shopper[1]) == 0


def test_keys_expire_and_are_purged(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session
) -> None:
    token, member_id = shopper
    client.post(SHARES, headers=keyed(token, "share-expiry-001"))
    session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))

    assert jobs.run_job(app, "purge-idempotency-keys") == "purged 1 idempotency keys"
    again = client.post(SHARES, headers=keyed(token, "share-expiry-001"))
    assert "Idempotent-Replayed" not in again.headers
    assert share_entries(session, member_id) == 2


def test_a_retried_pos_purchase_is_answered_with_the_first_response(
    client: FlaskClient, session: Session, store_id: int
) -> None:
    factories.create_operator(session, "ops", "correct-horse")
    session.commit()
    terminal = client.post(
        "/api/admin/v1/pos-terminals",
        json={"store_id": store_id, "name": "1 号收银台"},
        headers=bearer(operator_login(client)),
    ).get_json()

    def post(payload: dict[str, Any], key: str) -> TestResponse:
        return post_signed(
            client, terminal, "/api/pos/v1/purchases", payload, headers={"Idempotency-Key": key}
        )

    first = post(sale("R-100"), "pos-retry-00001")
    again = post(sale("R-100"), "pos-retry-00001")
    reused = post(sale("R-101"), "pos-retry-00001")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_data() == first.get_data() and again.headers["Idempotent-Replayed"] == "true"
    assert (reused.status_code, reused.get_json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert session.scalar(select(func.count()).select_from(Purchase)) == 1


def test_the_header_is_documented_on_state_changing_operations(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    ref = {"$ref": "#/components/parameters/IdempotencyKey"}

    assert spec["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    for path, method in [
        (SHARES, "post"),
        ("/api/mp/v1/me/check-ins", "post"),
        (STAFF_PURCHASES, "post"),
        ("/api/staff/v1/coupon-redemptions/{redemption_id}", "delete"),
        ("/api/pos/v1/purchases", "post"),
    ]:
        assert ref in spec["paths"][path][method]["parameters"], (path, method)
    assert ref not in spec["paths"]["/api/mp/v1/me/points"]["get"].get("parameters", [])


@pytest.mark.mariadb
def test_concurrent_first_requests_with_one_key_run_the_handler_once(
    app: Flask, shopper: tuple[str, int], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, member_id = shopper
    runs: list[int] = []
    both_started = threading.Barrier(2)
    real_reward_share = rewards.reward_share

    def slow_share(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        threading.Event().wait(0.3)  # long enough for the other request to find the key taken
        return real_reward_share(*args, **kwargs)

    monkeypatch.setattr(rewards, "reward_share", slow_share)
    key = f"share-race-{uuid.uuid4().hex[:8]}"

    def attempt(_: int) -> TestResponse:
        worker = app.test_client()
        both_started.wait()
        return worker.post(SHARES, headers=keyed(token, key))

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(attempt, range(2)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.get_json() for r in responses]
    assert (
        next(r for r in responses if r.status_code == 409).get_json()["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    )
    assert len(runs) == 1
    assert share_entries(session, member_id) == 1

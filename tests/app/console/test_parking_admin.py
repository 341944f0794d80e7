"""Operators set the parking rules and read parking payment records; the information desk looks up a plate."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote as urlquote

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.models import ParkingRules, StaffRole
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper, staff_login

API = "/api/admin/v1"
PLATE = "沪AD12345"
RULES: dict[str, Any] = {
    "quote_ttl_seconds": 600,
    "points_per_yuan": 50,
    "points_max_fen_per_visit": 1_000,
    "spending_free_minutes": [
        {"min_spend_fen": 50_000, "free_minutes": 240},
        {"min_spend_fen": 10_000, "free_minutes": 60},
    ],
}


@pytest.fixture
def operator(client: FlaskClient, session: Session) -> dict[str, str]:
    factories.create_operator(session)
    return bearer(operator_login(client))


@pytest.fixture
def paid(client: FlaskClient, session: Session, sandbox: SandboxProcess) -> dict[str, Any]:
    """A shopper with a bound plate and one payment made: ¥20 fee, the 100 welcome points take ¥1 off."""
    factories.create_tiers(session)
    token, member = registered_shopper(client, "o-parking-admin", "13900139400")
    client.post("/api/mp/v1/me/plates", json={"plate": PLATE}, headers=bearer(token))
    sandbox.park_car(PLATE, 200)
    quote = client.get(f"/api/mp/v1/me/parking/quote?plate={urlquote(PLATE)}", headers=bearer(token))
    payment = client.post(
        "/api/mp/v1/me/parking/payments",
        json={"quote_id": quote.get_json()["quote_id"]},
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert payment.status_code == 201, payment.get_json()
    return {"member": member, "payment": payment.get_json()}


def test_the_default_rules_until_an_operator_saves_some(client: FlaskClient, operator: dict) -> None:
    body = client.get(f"{API}/parking-rules", headers=operator).get_json()

    defaults = ParkingRules.with_defaults_dict()
    assert body["points_per_yuan"] == defaults["points_per_yuan"]
    assert body["spending_free_minutes"] == defaults["spending_free_minutes"]


def test_saving_rules(client: FlaskClient, operator: dict) -> None:
    saved = client.put(f"{API}/parking-rules", json=RULES, headers=operator)

    assert saved.status_code == 200, saved.get_json()
    body = client.get(f"{API}/parking-rules", headers=operator).get_json()
    assert (body["quote_ttl_seconds"], body["points_per_yuan"], body["points_max_fen_per_visit"]) == (
        600,
        50,
        1_000,
    )
    assert [row["min_spend_fen"] for row in body["spending_free_minutes"]] == [10_000, 50_000]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"points_per_yuan": 0}, "points_per_yuan"),
        ({"points_per_yuan": 1.5}, "points_per_yuan"),
        ({"quote_ttl_seconds": "300"}, "quote_ttl_seconds"),
        ({"spending_free_minutes": [{"min_spend_fen": 100}]}, "spending_free_minutes"),
    ],
)
def test_bad_rules_are_422(client: FlaskClient, operator: dict, change: dict, field: str) -> None:
    response = client.put(f"{API}/parking-rules", json={**RULES, **change}, headers=operator)

    assert response.status_code == 422
    assert field in response.get_json()["details"]


def test_duplicate_spending_thresholds_are_422(client: FlaskClient, operator: dict) -> None:
    rows = [{"min_spend_fen": 10_000, "free_minutes": 60}, {"min_spend_fen": 10_000, "free_minutes": 90}]

    response = client.put(
        f"{API}/parking-rules", json={**RULES, "spending_free_minutes": rows}, headers=operator
    )

    assert (response.status_code, response.get_json()["code"]) == (422, "VALIDATION_ERROR")


def test_shoppers_cannot_read_the_rules(client: FlaskClient, paid: dict) -> None:
    assert client.get(f"{API}/parking-rules").status_code == 401


def test_payment_records_with_filters(client: FlaskClient, operator: dict, paid: dict) -> None:
    def listed(query: str) -> list[int]:
        response = client.get(f"{API}/parking-payments?{query}", headers=operator)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    payment_id = paid["payment"]["id"]
    assert listed("") == [payment_id]
    assert listed(f"plate={urlquote('沪ad 12345')}") == [payment_id]
    assert listed("status=paid") == [payment_id]
    assert listed("status=refunded") == []
    assert listed(f"member_id={paid['member']['id']}") == [payment_id]
    assert listed("date_from=2000-01-01&date_to=2000-01-02") == []
    body = client.get(f"{API}/parking-payments", headers=operator).get_json()
    assert body["total"] == 1
    assert (body["items"][0]["fee_fen"], body["items"][0]["amount_due_fen"]) == (2_000, 1_900)


def test_a_bad_filter_is_422(client: FlaskClient, operator: dict) -> None:
    assert client.get(f"{API}/parking-payments?status=lost", headers=operator).status_code == 422
    assert client.get(f"{API}/parking-payments?plate=xyz", headers=operator).status_code == 422


def test_the_information_desk_looks_up_a_plate(client: FlaskClient, session: Session, paid: dict) -> None:
    factories.create_staff(session, "desk01", StaffRole.STORE_STAFF)
    token = staff_login(client, "desk01")

    response = client.get(
        f"/api/staff/v1/parking/records?plate={urlquote('沪ad12345')}", headers=bearer(token)
    )

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["plate"] == PLATE
    assert body["member"]["phone"] == "139****9400"
    assert [(p["id"], p["status"]) for p in body["payments"]] == [(paid["payment"]["id"], "paid")]
    unknown = client.get(f"/api/staff/v1/parking/records?plate={urlquote('京A00000')}", headers=bearer(token))
    assert unknown.status_code == 404

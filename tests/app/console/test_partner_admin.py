"""Operators register partners, change their rules and rotate their signing secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.extensions import extensions
from tests import factories
from tests.flows import bearer, operator_login

NEW_PARTNER = {
    "code": "yuepao",
    "name": "悦跑步道",
    "activity_unit": 100,
    "points_per_unit": 1,
    "daily_cap_points": 50,
}


@pytest.fixture
def admin(client: FlaskClient, session: Session) -> dict[str, str]:
    factories.create_operator(session, "ops", "correct-horse")
    return bearer(operator_login(client))


def create(client: FlaskClient, admin: dict, **overrides: Any) -> TestResponse:
    return client.post("/api/admin/v1/partners", json={**NEW_PARTNER, **overrides}, headers=admin)


def credit_activity(client: FlaskClient, code: str, secret: str, member_id: int) -> TestResponse:
    body = json.dumps(
        {
            "event_id": f"evt-{time.monotonic_ns()}",
            "member_id": member_id,
            "activity": "running",
            "amount": 300,
            "occurred_at": "2026-11-25T07:30:00+08:00",
        }
    ).encode()
    path = "/api/partner/v1/activity-credits"
    stamp = str(int(time.time()))
    message = f"{stamp}\nPOST\n{path}\n".encode() + body
    headers = {
        "X-Partner-Code": code,
        "X-Timestamp": stamp,
        "X-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
    }
    return client.post(path, data=body, headers=headers, content_type="application/json")


@pytest.fixture
def member_id(client: FlaskClient, session: Session) -> int:
    tiers = factories.create_tiers(session)
    with client.application.app_context():
        vault = extensions().phone_vault
    return factories.create_member(session, vault, "13800138000", tiers[0]).id


def test_creating_a_partner_shows_its_secret_once(client: FlaskClient, admin: dict) -> None:
    response = create(client, admin)

    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert {key: created[key] for key in NEW_PARTNER} == NEW_PARTNER
    assert created["is_active"] is True
    assert len(created["secret"]) >= 40
    listed = client.get("/api/admin/v1/partners", headers=admin).get_json()
    assert [partner["code"] for partner in listed] == ["yuepao"]
    assert "secret" not in listed[0]
    assert created["secret"] not in client.get("/api/admin/v1/partners", headers=admin).get_data(as_text=True)


def test_a_new_partner_can_sign_with_its_secret(client: FlaskClient, admin: dict, member_id: int) -> None:
    secret = create(client, admin).get_json()["secret"]

    response = credit_activity(client, "yuepao", secret, member_id)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["points"] == 3


def test_a_duplicate_code_is_409(client: FlaskClient, admin: dict) -> None:
    create(client, admin)

    response = create(client, admin, name="另一个")

    assert response.status_code == 409
    assert response.get_json()["code"] == "PARTNER_EXISTS"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"code": "Yuepao"}, "code"),
        ({"code": "y"}, "code"),
        ({"code": "yue pao"}, "code"),
        ({"activity_unit": 0}, "activity_unit"),
        ({"points_per_unit": -1}, "points_per_unit"),
        ({"daily_cap_points": -1}, "daily_cap_points"),
        ({"name": ""}, "name"),
    ],
    ids=str,
)
def test_invalid_partners_are_422(client: FlaskClient, admin: dict, overrides: dict, field: str) -> None:
    response = create(client, admin, **overrides)

    assert response.status_code == 422
    assert field in response.get_json()["details"]


def test_updating_changes_the_rules_and_deactivating_locks_the_partner_out(
    client: FlaskClient, admin: dict, member_id: int
) -> None:
    created = create(client, admin).get_json()
    changes = {
        "name": "悦跑步道（新）",
        "activity_unit": 50,
        "points_per_unit": 2,
        "daily_cap_points": 0,
        "is_active": False,
    }

    response = client.put(f"/api/admin/v1/partners/{created['id']}", json=changes, headers=admin)

    assert response.status_code == 200, response.get_json()
    assert {key: response.get_json()[key] for key in changes} == changes
    assert "secret" not in response.get_json()
    assert response.get_json()["code"] == "yuepao"
    refused = credit_activity(client, "yuepao", created["secret"], member_id)
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "SIGNATURE_INVALID"


def test_updating_an_unknown_partner_is_404(client: FlaskClient, admin: dict) -> None:
    changes = {**NEW_PARTNER, "is_active": True}
    del changes["code"]

    response = client.put("/api/admin/v1/partners/999", json=changes, headers=admin)

    assert response.status_code == 404
    assert response.get_json()["code"] == "PARTNER_NOT_FOUND"


def test_rotating_the_secret_invalidates_the_old_one(
    client: FlaskClient, admin: dict, member_id: int
) -> None:
    created = create(client, admin).get_json()

    response = client.post(f"/api/admin/v1/partners/{created['id']}/secret-rotations", headers=admin)

    assert response.status_code == 200
    new_secret = response.get_json()["secret"]
    assert new_secret != created["secret"]
    assert credit_activity(client, "yuepao", created["secret"], member_id).status_code == 401
    assert credit_activity(client, "yuepao", new_secret, member_id).status_code == 201


def test_rotating_an_unknown_partners_secret_is_404(client: FlaskClient, admin: dict) -> None:
    response = client.post("/api/admin/v1/partners/999/secret-rotations", headers=admin)

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/admin/v1/partners"),
        ("get", "/api/admin/v1/partners"),
        ("put", "/api/admin/v1/partners/1"),
        ("post", "/api/admin/v1/partners/1/secret-rotations"),
    ],
)
def test_partner_admin_needs_an_operator_token(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path, json={**NEW_PARTNER, "is_active": True})

    assert response.status_code == 401
    assert response.get_json()["code"] == "AUTH_REQUIRED"


def test_the_partner_admin_api_is_in_the_spec(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations >= {
        ("post", "/api/admin/v1/partners"),
        ("get", "/api/admin/v1/partners"),
        ("put", "/api/admin/v1/partners/{partner_id}"),
        ("post", "/api/admin/v1/partners/{partner_id}/secret-rotations"),
    }
    assert spec["paths"]["/api/admin/v1/partners"]["post"]["security"] == [{"bearerAuth": []}]

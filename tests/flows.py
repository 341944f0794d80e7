"""Drive the HTTP API the way the mini-program, the WeCom pages and the console do."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

POLICY_VERSION = "2026-11"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shopper_login(client: FlaskClient, openid: str) -> dict[str, Any]:
    response = client.post("/api/mp/v1/auth/login", json={"code": f"sandbox:{openid}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sign_up(client: FlaskClient, token: str, phone: str, **fields: Any) -> Any:
    body = {"phone_code": f"sandbox-phone:{phone}", "consent_version": POLICY_VERSION, **fields}
    return client.post("/api/mp/v1/members", json=body, headers=bearer(token))


def registered_shopper(
    client: FlaskClient, openid: str, phone: str, **fields: Any
) -> tuple[str, dict[str, Any]]:
    token = shopper_login(client, openid)["token"]
    response = sign_up(client, token, phone, **fields)
    assert response.status_code == 201, response.get_json()
    return token, response.get_json()


def staff_login(client: FlaskClient, userid: str) -> str:
    response = client.post("/api/staff/v1/auth/login", json={"code": f"sandbox:{userid}"})
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["token"])


def operator_login(client: FlaskClient, username: str = "ops", password: str = "correct-horse") -> str:
    response = client.post("/api/admin/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["token"])


def credited_purchase(
    client: FlaskClient, staff_userid: str, *, store_id: int, member_id: int, amount_fen: int, receipt_no: str
) -> dict[str, Any]:
    """A purchase credited at the counter by `staff_userid` (logged in afresh); the 201 response body."""
    response = client.post(
        "/api/staff/v1/purchases",
        json={
            "member_id": member_id,
            "store_id": store_id,
            "receipt_no": receipt_no,
            "amount_fen": amount_fen,
        },
        headers=bearer(staff_login(client, staff_userid)),
    )
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())

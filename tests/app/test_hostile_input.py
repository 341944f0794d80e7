"""What shoppers, staff, terminals and operators may type or send: emoji survive a round trip through
the database (utf8mb4 on MariaDB), search text is only ever text, and malformed requests get a clean
4xx in JSON."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.models import OperatorRole, StaffRole, Tier
from app.partner_api.signing import signature
from app.pii import PhoneVault
from tests import factories
from tests.app.console.console_flows import signed_in
from tests.flows import bearer, operator_login, registered_shopper, staff_login

EMOJI_NICKNAME = "小美🌸👩‍👩‍👧‍👦𠀀"  # a ZWJ family and a character outside the BMP


@pytest.fixture
def vault(app: Flask) -> PhoneVault:
    with app.app_context():
        return extensions().phone_vault


@pytest.fixture
def tier(session: Session) -> Tier:
    return factories.create_tiers(session)[0]


# Unicode


def test_an_emoji_nickname_is_stored_and_returned_intact(client: FlaskClient, tier: Tier) -> None:
    token, signed_up = registered_shopper(client, "openid-emoji", "13800000000", nickname=EMOJI_NICKNAME)

    me = client.get("/api/mp/v1/me", headers=bearer(token)).get_json()

    assert signed_up["nickname"] == EMOJI_NICKNAME
    assert me["nickname"] == EMOJI_NICKNAME


def test_an_emoji_tag_name_is_stored_and_returned_intact(client: FlaskClient, session: Session) -> None:
    factories.create_operator(session)
    admin = bearer(operator_login(client))
    name, description = "🎉 周年庆·VIP", "备注：含 emoji 😀 与生僻字 𪚥"

    created = client.post(
        "/api/admin/v1/tags",
        json={"code": "anniversary", "name": name, "kind": "manual", "description": description},
        headers=admin,
    )

    assert created.status_code == 201, created.get_json()
    (listed,) = [
        tag
        for tag in client.get("/api/admin/v1/tags", headers=admin).get_json()
        if tag["code"] == "anniversary"
    ]
    assert (listed["name"], listed["description"]) == (name, description)


# Search text is text


SEARCHED_NICKNAMES = ["%off", "_under", "\\slash", "' OR 1=1 -- 小明", "普通会员", "甲乙", "甲_乙"]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("' OR 1=1 --", ["' OR 1=1 -- 小明"]),
        ("%", ["%off"]),
        ("_", ["_under"]),
        ("\\", ["\\slash"]),
        ("甲_", ["甲_乙"]),
        ("'; DROP TABLE members; --", []),
        # MariaDB's utf8mb4_unicode_ci missed these (range scans skip a supplementary character after
        # the prefix): the nickname column is utf8mb4_unicode_520_ci since migration 0024.
        ("小美", [EMOJI_NICKNAME]),
        (EMOJI_NICKNAME[:3], [EMOJI_NICKNAME]),
    ],
)
def test_the_console_member_search_matches_what_was_typed_literally(
    client: FlaskClient, session: Session, vault: PhoneVault, tier: Tier, typed: str, found: list[str]
) -> None:
    for n, nickname in enumerate([*SEARCHED_NICKNAMES, EMOJI_NICKNAME]):
        factories.create_member(session, vault, f"1390000{n:04d}", tier, nickname=nickname)
    signed_in(client, session, OperatorRole.ADMIN)

    response = client.get("/console/members", query_string={"q": typed, "by": "name"})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    shown = [nickname for nickname in [*SEARCHED_NICKNAMES, EMOJI_NICKNAME] if str(escape(nickname)) in html]
    assert shown == found


# Malformed requests: a clean 4xx in JSON, never a 500


def assert_clean_4xx(response: Any) -> None:
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict) and body["code"] and body["message"]


MALFORMED = [
    pytest.param("{not json", "application/json", id="malformed-json"),
    pytest.param('{"amount_fen": 100', "application/json", id="truncated-json"),
    pytest.param("amount_fen=100", "application/x-www-form-urlencoded", id="form-encoded"),
    pytest.param('{"amount_fen": 100}', "text/plain", id="text-plain"),
    pytest.param("[]", "application/json", id="a-list"),
    pytest.param("null", "application/json", id="null"),
    pytest.param('{"amount_fen": 1e999}', "application/json", id="infinite-number"),
]
WRONG_VALUES: list[Any] = [
    -1,
    0,
    -(2**63),
    2**31,
    10**30,
    "100",
    12.5,
    True,
    None,
    [100],
    {"fen": 100},
]


@pytest.fixture
def staff_token(client: FlaskClient, session: Session) -> str:
    store = factories.create_store(session)
    factories.create_staff(session, "cashier-1", StaffRole.STORE_STAFF, store_id=store.id)
    return staff_login(client, "cashier-1")


@pytest.mark.parametrize(("data", "content_type"), MALFORMED)
def test_the_staff_api_refuses_malformed_bodies(
    client: FlaskClient, staff_token: str, data: str, content_type: str
) -> None:
    response = client.post(
        "/api/staff/v1/purchases", data=data, content_type=content_type, headers=bearer(staff_token)
    )

    assert_clean_4xx(response)


@pytest.mark.parametrize("amount", WRONG_VALUES)
def test_the_staff_api_refuses_wrong_amounts(
    client: FlaskClient, session: Session, vault: PhoneVault, tier: Tier, staff_token: str, amount: Any
) -> None:
    member = factories.create_member(session, vault, "13800000001", tier)
    body = {"member_id": member.id, "receipt_no": "R-1", "amount_fen": amount}

    response = client.post("/api/staff/v1/purchases", json=body, headers=bearer(staff_token))

    assert_clean_4xx(response)
    assert response.status_code == 422


@pytest.mark.parametrize("member_id", [-1, 0, 2**31, 10**30, "1", 1.5, None])
def test_the_staff_api_refuses_wrong_member_ids(
    client: FlaskClient, staff_token: str, member_id: Any
) -> None:
    body = {"member_id": member_id, "receipt_no": "R-1", "amount_fen": 100}

    response = client.post("/api/staff/v1/purchases", json=body, headers=bearer(staff_token))

    assert_clean_4xx(response)


@pytest.mark.parametrize(("data", "content_type"), MALFORMED)
def test_the_shopper_api_refuses_malformed_bodies(
    client: FlaskClient, tier: Tier, data: str, content_type: str
) -> None:
    token, _ = registered_shopper(client, "openid-1", "13800000002")

    response = client.post(
        "/api/mp/v1/me/plates", data=data, content_type=content_type, headers=bearer(token)
    )

    assert_clean_4xx(response)


@pytest.mark.parametrize("plate", [12345, None, ["粤B12345"], "", "粤B" + "1" * 100, "' OR 1=1 --", "🚗🚗🚗"])
def test_the_shopper_api_refuses_wrong_plates(client: FlaskClient, tier: Tier, plate: Any) -> None:
    token, _ = registered_shopper(client, "openid-1", "13800000002")

    response = client.post("/api/mp/v1/me/plates", json={"plate": plate}, headers=bearer(token))

    assert_clean_4xx(response)


@pytest.fixture
def terminal(client: FlaskClient, session: Session) -> dict[str, Any]:
    store = factories.create_store(session)
    factories.create_operator(session)
    response = client.post(
        "/api/admin/v1/pos-terminals",
        json={"store_id": store.id, "name": "1 号收银台"},
        headers=bearer(operator_login(client)),
    )
    return dict(response.get_json())


def post_signed(client: FlaskClient, terminal: dict[str, Any], body: bytes, content_type: str) -> Any:
    stamp, nonce = str(int(time.time())), secrets.token_hex(16)
    path = "/api/pos/v1/purchases"
    headers = {
        "X-Pos-Key-Id": terminal["key_id"],
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": signature(terminal["secret"], stamp, "POST", path, body, nonce=nonce),
    }
    return client.post(path, data=body, content_type=content_type, headers=headers)


@pytest.mark.parametrize(("data", "content_type"), MALFORMED)
def test_the_pos_api_refuses_malformed_signed_bodies(
    client: FlaskClient, terminal: dict[str, Any], data: str, content_type: str
) -> None:
    response = post_signed(client, terminal, data.encode(), content_type)

    assert_clean_4xx(response)


@pytest.mark.parametrize("amount", WRONG_VALUES)
def test_the_pos_api_refuses_wrong_amounts(
    client: FlaskClient, terminal: dict[str, Any], amount: Any
) -> None:
    body = json.dumps({"receipt_no": "R-1", "amount_fen": amount}).encode()

    response = post_signed(client, terminal, body, "application/json")

    assert response.status_code == 422
    assert_clean_4xx(response)

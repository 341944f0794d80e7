"""Partners credit their members' activity as points: signed, once per event, within a daily cap."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.extensions import extensions
from app.models import Member, Partner, PartnerActivityCredit, PointsEntry, PointsEntryKind, Tier
from app.pii import PhoneVault
from tests import factories

PATH = "/api/partner/v1/activity-credits"
PHONE = "13900139000"


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}\n{method}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def post_credit(
    client: FlaskClient,
    partner: dict[str, Any],
    payload: dict[str, Any] | bytes,
    *,
    timestamp: int | None = None,
    signed_body: bytes | None = None,
    secret: str | None = None,
    omit: str | None = None,
) -> TestResponse:
    """POST the payload signed as the partner would; the keyword arguments break it on purpose."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "X-Partner-Code": partner["code"],
        "X-Timestamp": stamp,
        "X-Signature": sign(secret or partner["secret"], stamp, "POST", PATH, signed_body or body),
    }
    if omit:
        del headers[omit]
    return client.post(PATH, data=body, headers=headers, content_type="application/json")


def event(member_id: int, event_id: str = "run-1", amount: int = 350, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "member_id": member_id,
        "activity": "running",
        "amount": amount,
        "occurred_at": "2026-11-25T07:30:00+08:00",
        **fields,
    }


def create_partner(session: Session, code: str = "yuepao", **overrides: Any) -> dict[str, Any]:
    partner = Partner(
        **{
            "code": code,
            "name": "悦跑步道",
            "secret": f"secret-of-{code}",
            "activity_unit": 100,
            "points_per_unit": 2,
            "daily_cap_points": 20,
            "is_active": True,
            **overrides,
        }
    )
    session.add(partner)
    session.flush()
    return {"id": partner.id, "code": partner.code, "secret": partner.secret}


@pytest.fixture
def vault(app: Flask) -> PhoneVault:
    with app.app_context():
        return extensions().phone_vault


@pytest.fixture
def tier(session: Session) -> Tier:
    return factories.create_tiers(session)[0]


@pytest.fixture
def member_id(session: Session, vault: PhoneVault, tier: Tier) -> int:
    return factories.create_member(session, vault, PHONE, tier).id


@pytest.fixture
def partner(session: Session) -> dict[str, Any]:
    return create_partner(session)


def partner_entries(session: Session, member_id: int) -> list[PointsEntry]:
    return list(
        session.scalars(
            select(PointsEntry)
            .where(PointsEntry.member_id == member_id, PointsEntry.kind == PointsEntryKind.PARTNER)
            .order_by(PointsEntry.id)
        )
    )


def balance(session: Session, member_id: int) -> int:
    return session.get_one(Member, member_id, populate_existing=True).points_balance


def assert_ledger_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


def test_an_activity_earns_points_per_full_unit_as_a_partner_entry(
    app: Flask, client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    response = post_credit(client, partner, event(member_id, amount=350))

    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"event_id": "run-1", "member_id": member_id, "points": 6, "capped": False}
    (entry,) = partner_entries(session, member_id)
    assert entry.delta == 6
    assert entry.idempotency_key == "partner:yuepao:run-1"
    assert entry.description == "悦跑步道 跑步 350"
    assert balance(session, member_id) == 6
    assert_ledger_clean(app)


def test_the_member_can_be_named_by_phone(
    client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    payload = event(member_id)
    del payload["member_id"]

    response = post_credit(client, partner, {**payload, "phone": PHONE})

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["member_id"] == member_id
    assert balance(session, member_id) == 6


def test_the_same_event_twice_is_credited_once(
    app: Flask, client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    first = post_credit(client, partner, event(member_id))
    again = post_credit(client, partner, event(member_id))

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert len(partner_entries(session, member_id)) == 1
    assert session.scalar(select(func.count()).select_from(PartnerActivityCredit)) == 1
    assert balance(session, member_id) == 6
    assert_ledger_clean(app)


@pytest.mark.parametrize(
    "changed", [{"amount": 500}, {"activity": "cycling"}, {"member_id": "other"}], ids=str
)
def test_the_same_event_with_a_different_payload_is_a_conflict(
    client: FlaskClient,
    session: Session,
    vault: PhoneVault,
    tier: Tier,
    partner: dict,
    member_id: int,
    changed: dict,
) -> None:
    if changed.get("member_id") == "other":
        changed = {"member_id": factories.create_member(session, vault, "13900139001", tier).id}
    post_credit(client, partner, event(member_id))

    response = post_credit(client, partner, {**event(member_id), **changed})

    assert response.status_code == 409
    assert response.get_json()["code"] == "EVENT_CONFLICT"
    assert len(partner_entries(session, member_id)) == 1


def test_the_daily_cap_limits_points_across_the_partners_events(
    app: Flask, client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    first = post_credit(client, partner, event(member_id, "run-1", amount=800))
    second = post_credit(client, partner, event(member_id, "run-2", amount=800))
    third = post_credit(client, partner, event(member_id, "run-3", amount=800))

    assert (first.get_json()["points"], first.get_json()["capped"]) == (16, False)
    assert (second.get_json()["points"], second.get_json()["capped"]) == (4, True)
    assert (third.status_code, third.get_json()["points"], third.get_json()["capped"]) == (201, 0, True)
    assert [entry.delta for entry in partner_entries(session, member_id)] == [16, 4]
    assert session.scalar(select(func.count()).select_from(PartnerActivityCredit)) == 3
    assert balance(session, member_id) == 20
    assert_ledger_clean(app)


def test_another_partners_credits_do_not_count_towards_the_cap(
    client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    other = create_partner(session, "swim", name="蓝波游泳馆")
    post_credit(client, partner, event(member_id, amount=1_000))

    response = post_credit(client, other, event(member_id, amount=1_000))

    assert response.get_json() == {"event_id": "run-1", "member_id": member_id, "points": 20, "capped": False}
    assert balance(session, member_id) == 40


def test_less_than_one_unit_is_recorded_without_points(
    client: FlaskClient, session: Session, partner: dict, member_id: int
) -> None:
    response = post_credit(client, partner, event(member_id, amount=99))

    assert response.status_code == 201
    assert response.get_json()["points"] == 0
    assert response.get_json()["capped"] is False
    assert partner_entries(session, member_id) == []
    assert session.scalar(select(PartnerActivityCredit.points)) == 0


@pytest.mark.parametrize("header", ["X-Partner-Code", "X-Timestamp", "X-Signature"])
def test_a_request_without_a_signature_header_is_401(
    client: FlaskClient, partner: dict, member_id: int, header: str
) -> None:
    response = post_credit(client, partner, event(member_id), omit=header)

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_REQUIRED"


@pytest.mark.parametrize(
    "breakage",
    [
        {"secret": "not-the-secret"},
        {"signed_body": b'{"amount": 1}'},
        {"partner": {"code": "nobody", "secret": "secret-of-yuepao"}},
    ],
    ids=["wrong secret", "tampered body", "unknown partner"],
)
def test_a_bad_signature_is_401_and_credits_nothing(
    client: FlaskClient, session: Session, partner: dict, member_id: int, breakage: dict
) -> None:
    caller = breakage.pop("partner", partner)

    response = post_credit(client, caller, event(member_id), **breakage)

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_INVALID"
    assert balance(session, member_id) == 0


def test_a_signature_for_another_path_is_invalid(client: FlaskClient, partner: dict, member_id: int) -> None:
    body = json.dumps(event(member_id)).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-Partner-Code": partner["code"],
        "X-Timestamp": stamp,
        "X-Signature": sign(partner["secret"], stamp, "POST", "/api/partner/v1/other", body),
    }

    response = client.post(PATH, data=body, headers=headers, content_type="application/json")

    assert response.get_json()["code"] == "SIGNATURE_INVALID"


@pytest.mark.parametrize("skew", [-330, 330, -3600])
def test_a_stale_or_future_timestamp_is_expired(
    client: FlaskClient, partner: dict, member_id: int, skew: int
) -> None:
    response = post_credit(client, partner, event(member_id), timestamp=int(time.time()) + skew)

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_EXPIRED"


def test_a_timestamp_that_is_not_unix_seconds_is_invalid(
    client: FlaskClient, partner: dict, member_id: int
) -> None:
    body = json.dumps(event(member_id)).encode()
    stamp = "2026-11-25T07:30:00Z"
    headers = {
        "X-Partner-Code": partner["code"],
        "X-Timestamp": stamp,
        "X-Signature": sign(partner["secret"], stamp, "POST", PATH, body),
    }

    response = client.post(PATH, data=body, headers=headers, content_type="application/json")

    assert response.get_json()["code"] == "SIGNATURE_INVALID"


def test_a_non_ascii_signature_is_invalid_not_a_crash(
    client: FlaskClient, partner: dict, member_id: int
) -> None:
    headers = {"X-Partner-Code": partner["code"], "X-Timestamp": str(int(time.time())), "X-Signature": "签名"}

    response = client.post(PATH, json=event(member_id), headers=headers)

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_INVALID"


def test_an_inactive_partner_is_refused(client: FlaskClient, session: Session, member_id: int) -> None:
    retired = create_partner(session, "retired", is_active=False)

    response = post_credit(client, retired, event(member_id))

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_INVALID"


def test_an_unknown_member_is_404_without_echoing_the_phone(
    client: FlaskClient, partner: dict, member_id: int
) -> None:
    payload = event(member_id)
    del payload["member_id"]

    by_phone = post_credit(client, partner, {**payload, "phone": "13700137000"})
    by_id = post_credit(client, partner, event(member_id + 1000, "run-2"))

    assert (by_phone.status_code, by_id.status_code) == (404, 404)
    assert by_phone.get_json()["code"] == by_id.get_json()["code"] == "MEMBER_NOT_FOUND"
    assert "13700137000" not in by_phone.get_data(as_text=True)


def test_malformed_json_with_a_valid_signature_is_400(
    client: FlaskClient, partner: dict, member_id: int
) -> None:
    response = post_credit(client, partner, b'{"event_id": "run-1",')

    assert response.status_code == 400
    assert response.get_json()["code"] == "BAD_REQUEST"


def test_the_signature_is_checked_before_the_body_is_parsed(client: FlaskClient, partner: dict) -> None:
    response = post_credit(client, partner, b"{not json", secret="not-the-secret")

    assert response.status_code == 401
    assert response.get_json()["code"] == "SIGNATURE_INVALID"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": PHONE}, "phone"),
        ({"member_id": None}, "member_id"),
        ({"amount": 0}, "amount"),
        ({"event_id": "x" * 65}, "event_id"),
        ({"occurred_at": "2026-11-25T07:30:00"}, "occurred_at"),
    ],
    ids=["both member_id and phone", "neither", "zero amount", "long event id", "naive time"],
)
def test_invalid_fields_are_422_with_details(
    client: FlaskClient, session: Session, partner: dict, member_id: int, change: dict, field: str
) -> None:
    response = post_credit(client, partner, {**event(member_id), **change})

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert field in response.get_json()["details"]
    assert balance(session, member_id) == 0


def test_the_spec_documents_the_signature_headers(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    operation = spec["paths"][PATH]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"X-Partner-Code", "X-Timestamp", "X-Signature"}
    assert operation["security"] == [{"partnerSignature": []}]
    assert spec["components"]["securitySchemes"]["partnerSignature"]["type"] == "apiKey"


@pytest.mark.mariadb
def test_twenty_concurrent_posts_of_one_event_credit_it_once(
    app: Flask, session: Session, partner: dict, member_id: int
) -> None:
    start = threading.Barrier(20)

    def post(_: int) -> TestResponse:
        client = app.test_client()
        start.wait()
        return post_credit(client, partner, event(member_id))

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 19 + [201], [r.get_json() for r in responses if r.status_code >= 400]
    assert {json.dumps(r.get_json(), sort_keys=True) for r in responses} == {
        json.dumps(
            {"capped": False, "event_id": "run-1", "member_id": member_id, "points": 6}, sort_keys=True
        )
    }
    assert len(partner_entries(session, member_id)) == 1
    assert balance(session, member_id) == 6
    assert_ledger_clean(app)


@pytest.mark.mariadb
def test_concurrent_events_of_one_member_never_exceed_the_daily_cap(
    app: Flask, session: Session, partner: dict, member_id: int
) -> None:
    start = threading.Barrier(10)

    def post(n: int) -> TestResponse:
        client = app.test_client()
        start.wait()
        return post_credit(client, partner, event(member_id, f"run-{n}", amount=300))

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))

    assert [r.status_code for r in responses] == [201] * 10
    assert sum(r.get_json()["points"] for r in responses) == 20
    assert sum(entry.delta for entry in partner_entries(session, member_id)) == 20
    assert balance(session, member_id) == 20
    assert_ledger_clean(app)

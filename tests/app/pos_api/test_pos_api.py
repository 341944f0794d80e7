"""Store POS terminals report sales and refunds: signed with a nonce, idempotent by receipt."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import jobs
from app.db import utcnow
from app.extensions import extensions, mall_time
from app.models import (
    AuditEvent,
    KpiDaily,
    Member,
    OperatorRole,
    PointsEntry,
    PointsEntryKind,
    PosRequestNonce,
    Purchase,
    PurchaseRefund,
    Store,
    Tier,
)
from app.pii import PhoneVault
from app.services import kpis
from tests import factories
from tests.flows import bearer, operator_login

PURCHASES = "/api/pos/v1/purchases"
REFUNDS = "/api/pos/v1/refunds"
TERMINALS = "/api/admin/v1/pos-terminals"
PHONE = "13800000000"


def sign(secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n{method}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def post_signed(
    client: FlaskClient,
    terminal: dict[str, Any],
    path: str,
    payload: dict[str, Any],
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    secret: str | None = None,
    signed_body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """POST the payload signed as the terminal would; the keyword arguments break it on purpose."""
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    headers = {
        **(headers or {}),
        "X-Pos-Key-Id": terminal["key_id"],
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": sign(secret or terminal["secret"], stamp, nonce, "POST", path, signed_body or body),
    }
    return client.post(path, data=body, headers=headers, content_type="application/json")


def sale(receipt_no: str = "R-1", amount_fen: int = 12_300, **fields: Any) -> dict[str, Any]:
    return {"receipt_no": receipt_no, "amount_fen": amount_fen, **fields}


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
def store(session: Session) -> Store:
    return factories.create_store(session)


@pytest.fixture
def admin(client: FlaskClient, session: Session) -> dict[str, str]:
    factories.create_operator(session, "ops", "correct-horse")
    return bearer(operator_login(client))


@pytest.fixture
def terminal(client: FlaskClient, admin: dict[str, str], store: Store) -> dict[str, Any]:
    response = client.post(TERMINALS, json={"store_id": store.id, "name": "1 号收银台"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def balance(session: Session, member_id: int) -> int:
    return session.get_one(Member, member_id, populate_existing=True).points_balance


def purchase_entries(session: Session, member_id: int) -> list[PointsEntry]:
    return list(
        session.scalars(
            select(PointsEntry).where(
                PointsEntry.member_id == member_id, PointsEntry.kind == PointsEntryKind.PURCHASE
            )
        )
    )


def assert_ledger_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


def without_time(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "purchase": {**body["purchase"], "purchased_at": None}}


def purchase_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Purchase)) or 0)


# Signed sales


def test_a_signed_sale_by_member_code_credits_points_once_even_when_retried(
    app: Flask, client: FlaskClient, session: Session, terminal: dict, member_id: int, store: Store
) -> None:
    with app.app_context():
        code = extensions().member_code_signer.issue(member_id, utcnow()).code

    first = post_signed(client, terminal, PURCHASES, sale(member_code=code))
    retry = post_signed(client, terminal, PURCHASES, sale(member_code=code))

    assert first.status_code == 201, first.get_json()
    assert retry.status_code == 200, retry.get_json()
    # Microseconds aside: MariaDB stores whole seconds, which the retry reads back.
    assert without_time(retry.get_json()) == without_time(first.get_json())
    body = first.get_json()
    assert body["purchase"]["store_id"] == store.id
    assert body["purchase"]["member_id"] == member_id
    assert body["purchase"]["points_earned"] == 123
    assert body["member"] == {"id": member_id, "phone": "138****0000", "points_balance": 123}
    assert len(purchase_entries(session, member_id)) == 1
    assert balance(session, member_id) == 123
    purchase = session.scalars(select(Purchase)).one()
    assert (purchase.pos_terminal_id, purchase.staff_id) == (terminal["id"], None)
    assert_ledger_clean(app)


def test_the_same_receipt_with_another_amount_is_a_conflict(
    client: FlaskClient, terminal: dict, member_id: int
) -> None:
    assert post_signed(client, terminal, PURCHASES, sale(phone=PHONE)).status_code == 201

    response = post_signed(client, terminal, PURCHASES, sale(phone=PHONE, amount_fen=99))

    assert response.status_code == 409
    assert response.get_json()["code"] == "RECEIPT_CONFLICT"


@pytest.mark.parametrize(
    "spelling",
    ["+86 138-0000-0000", "８６１３８００００００００", "+86１３８ ００００ ００００", "138 0000 0000"],
)
def test_a_member_is_found_by_phone_however_it_is_spelled(
    client: FlaskClient, session: Session, terminal: dict, member_id: int, spelling: str
) -> None:
    response = post_signed(client, terminal, PURCHASES, sale(phone=spelling))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["purchase"]["member_id"] == member_id
    assert balance(session, member_id) == 123


def test_a_merged_members_phone_credits_the_survivor(
    client: FlaskClient, session: Session, vault: PhoneVault, tier: Tier, terminal: dict, member_id: int
) -> None:
    merged = factories.create_member(session, vault, "13900000001", tier, merged_into_member_id=member_id)

    response = post_signed(client, terminal, PURCHASES, sale(phone="13900000001"))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["purchase"]["member_id"] == member_id
    assert balance(session, merged.id) == 0


def test_an_unknown_phone_is_refused_rather_than_losing_the_points(
    client: FlaskClient, session: Session, terminal: dict
) -> None:
    response = post_signed(client, terminal, PURCHASES, sale(phone="13912345678"))

    assert response.status_code == 404
    assert response.get_json()["code"] == "MEMBER_NOT_FOUND"
    assert purchase_count(session) == 0


def test_a_sale_without_a_member_is_recorded_and_counted_as_non_member(
    app: Flask, client: FlaskClient, session: Session, terminal: dict, store: Store
) -> None:
    response = post_signed(client, terminal, PURCHASES, sale(amount_fen=5_000))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["member"] is None
    assert response.get_json()["purchase"]["member_id"] is None
    with app.app_context():
        at = mall_time()
    kpis.compute_day(session, at.today, at)
    row = session.scalars(
        select(KpiDaily).where(KpiDaily.business_date == at.today, KpiDaily.store_id == store.id)
    ).one()
    assert (row.non_member_purchases, row.non_member_sales_fen) == (1, 5_000)


# Refunds


def test_a_refund_claws_back_points_once_per_refund_number(
    app: Flask, client: FlaskClient, session: Session, terminal: dict, member_id: int
) -> None:
    post_signed(client, terminal, PURCHASES, sale(phone=PHONE, amount_fen=10_000))
    refund = {"receipt_no": "R-1", "refund_no": "T-1", "amount_fen": 4_000}

    first = post_signed(client, terminal, REFUNDS, refund)
    retry = post_signed(client, terminal, REFUNDS, refund)

    assert first.status_code == 201, first.get_json()
    assert retry.status_code == 200
    assert first.get_json()["points_clawed_back"] == 40
    assert first.get_json()["purchase"]["refunded_fen"] == 4_000
    assert balance(session, member_id) == 60
    assert session.scalars(select(PurchaseRefund.pos_terminal_id)).one() == terminal["id"]
    assert_ledger_clean(app)


def test_a_refund_of_an_unknown_receipt_is_not_found(client: FlaskClient, terminal: dict) -> None:
    response = post_signed(
        client, terminal, REFUNDS, {"receipt_no": "nope", "refund_no": "T", "amount_fen": 1}
    )

    assert response.status_code == 404
    assert response.get_json()["code"] == "PURCHASE_NOT_FOUND"


def test_a_terminal_cannot_refund_another_stores_receipt(
    client: FlaskClient, session: Session, admin: dict, terminal: dict
) -> None:
    other_store = factories.create_store(session)
    other = client.post(TERMINALS, json={"store_id": other_store.id, "name": "B"}, headers=admin).get_json()
    post_signed(client, terminal, PURCHASES, sale())

    response = post_signed(client, other, REFUNDS, {"receipt_no": "R-1", "refund_no": "T", "amount_fen": 1})

    assert response.status_code == 404


# Signatures


def assert_refused(response: TestResponse, code: str) -> None:
    assert response.status_code == 401, response.get_json()
    body = response.get_json()
    assert body["code"] == code
    assert body["message"]


def test_an_unknown_key_id_is_refused(client: FlaskClient, session: Session, terminal: dict) -> None:
    response = post_signed(client, {**terminal, "key_id": "pos_unknown"}, PURCHASES, sale())

    assert_refused(response, "SIGNATURE_INVALID")
    assert purchase_count(session) == 0


def test_a_wrong_secret_is_refused(client: FlaskClient, session: Session, terminal: dict) -> None:
    assert_refused(post_signed(client, terminal, PURCHASES, sale(), secret="0" * 64), "SIGNATURE_INVALID")
    assert purchase_count(session) == 0


def test_a_tampered_body_is_refused(client: FlaskClient, session: Session, terminal: dict) -> None:
    signed = json.dumps(sale(amount_fen=100)).encode()

    response = post_signed(client, terminal, PURCHASES, sale(amount_fen=100_000), signed_body=signed)

    assert_refused(response, "SIGNATURE_INVALID")
    assert purchase_count(session) == 0


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_five_minutes_is_refused(
    client: FlaskClient, session: Session, terminal: dict, skew: int
) -> None:
    response = post_signed(client, terminal, PURCHASES, sale(), timestamp=int(time.time()) + skew)

    assert_refused(response, "SIGNATURE_EXPIRED")
    assert purchase_count(session) == 0


def test_a_replayed_nonce_is_refused(client: FlaskClient, session: Session, terminal: dict) -> None:
    nonce = secrets.token_hex(16)
    assert post_signed(client, terminal, PURCHASES, sale("R-1"), nonce=nonce).status_code == 201

    response = post_signed(client, terminal, PURCHASES, sale("R-2"), nonce=nonce)

    assert_refused(response, "NONCE_REUSED")
    assert purchase_count(session) == 1


def test_missing_signature_headers_are_refused(client: FlaskClient, terminal: dict) -> None:
    response = client.post(PURCHASES, json=sale(), headers={"X-Pos-Key-Id": terminal["key_id"]})

    assert_refused(response, "SIGNATURE_REQUIRED")


def test_a_deactivated_terminal_is_refused(
    client: FlaskClient, session: Session, admin: dict, terminal: dict
) -> None:
    response = client.post(f"{TERMINALS}/{terminal['id']}/deactivation", headers=admin)
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False

    assert_refused(post_signed(client, terminal, PURCHASES, sale()), "SIGNATURE_INVALID")
    assert purchase_count(session) == 0
    rotation = client.post(f"{TERMINALS}/{terminal['id']}/key-rotations", headers=admin)
    assert rotation.status_code == 409
    assert rotation.get_json()["code"] == "POS_TERMINAL_INACTIVE"


def test_after_a_key_rotation_the_old_key_is_refused_and_the_new_one_works(
    client: FlaskClient, admin: dict, terminal: dict
) -> None:
    response = client.post(f"{TERMINALS}/{terminal['id']}/key-rotations", headers=admin)
    assert response.status_code == 200, response.get_json()
    rotated = response.get_json()
    assert rotated["key_id"] != terminal["key_id"]
    assert rotated["secret"] != terminal["secret"]
    assert rotated["rotated_at"] is not None

    assert_refused(post_signed(client, terminal, PURCHASES, sale("R-1")), "SIGNATURE_INVALID")
    old_secret_new_key = {**rotated, "secret": terminal["secret"]}
    assert_refused(post_signed(client, old_secret_new_key, PURCHASES, sale("R-1")), "SIGNATURE_INVALID")
    assert post_signed(client, rotated, PURCHASES, sale("R-1")).status_code == 201


# Terminal management


def test_terminals_are_listed_without_secrets_and_filtered_by_store(
    client: FlaskClient, session: Session, admin: dict, terminal: dict, store: Store
) -> None:
    other_store = factories.create_store(session)
    client.post(TERMINALS, json={"store_id": other_store.id, "name": "B"}, headers=admin)

    everything = client.get(TERMINALS, headers=admin).get_json()
    only_first = client.get(f"{TERMINALS}?store_id={store.id}", headers=admin).get_json()

    assert [row["name"] for row in everything] == ["1 号收银台", "B"]
    assert all("secret" not in row for row in everything)
    assert [row["id"] for row in only_first] == [terminal["id"]]


def test_a_terminal_of_an_unknown_store_is_refused(client: FlaskClient, admin: dict) -> None:
    response = client.post(TERMINALS, json={"store_id": 999_999, "name": "X"}, headers=admin)

    assert response.status_code == 422


def test_terminal_management_is_audited(
    client: FlaskClient, session: Session, admin: dict, terminal: dict
) -> None:
    client.post(f"{TERMINALS}/{terminal['id']}/key-rotations", headers=admin)
    client.post(f"{TERMINALS}/{terminal['id']}/deactivation", headers=admin)

    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))

    assert [event.action for event in events] == [
        "pos_terminal.create",
        "pos_terminal.rotate_key",
        "pos_terminal.deactivate",
    ]
    assert all(event.operator_id is not None for event in events)
    assert {event.target_id for event in events} == {str(terminal["id"])}
    assert all("secret" not in json.dumps(event.detail) for event in events)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", TERMINALS),
        ("GET", TERMINALS),
        ("POST", f"{TERMINALS}/1/key-rotations"),
        ("POST", f"{TERMINALS}/1/deactivation"),
    ],
)
@pytest.mark.parametrize("role", [OperatorRole.MARKETING, OperatorRole.STORE_MANAGER])
def test_terminal_management_is_for_admins_only(
    client: FlaskClient, session: Session, store: Store, method: str, path: str, role: OperatorRole
) -> None:
    factories.create_operator(session, "mkt", "correct-horse", role=role, store_id=store.id)
    headers = bearer(operator_login(client, "mkt"))

    response = client.open(path, method=method, json={"store_id": store.id, "name": "X"}, headers=headers)

    assert response.status_code == 403


def test_terminal_management_needs_an_operator_token(client: FlaskClient) -> None:
    assert client.get(TERMINALS).status_code == 401


def test_the_purge_job_forgets_only_nonces_older_than_the_window(
    app: Flask, client: FlaskClient, session: Session, terminal: dict
) -> None:
    post_signed(client, terminal, PURCHASES, sale("R-1"), nonce="old-nonce-0000000001")
    post_signed(client, terminal, PURCHASES, sale("R-2"), nonce="new-nonce-0000000002")
    old = session.scalars(select(PosRequestNonce).where(PosRequestNonce.nonce.startswith("old"))).one()
    old.created_at = utcnow() - timedelta(minutes=11)
    session.commit()

    assert jobs.run_job(app, "purge-pos-nonces") == "purged 1 POS request nonces"
    assert session.scalars(select(PosRequestNonce.nonce)).all() == ["new-nonce-0000000002"]

"""Staff log in through WeCom OAuth and scan shoppers' member codes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.extensions import extensions
from app.models import PointsSettings, StaffRole, UsedMemberCode
from tests import factories
from tests.flows import bearer, registered_shopper, staff_login


@pytest.fixture
def mall(session: Session) -> None:
    factories.create_tiers(session)
    store = factories.create_store(session)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=store.id)
    factories.create_staff(session, "gone01", StaffRole.STORE_STAFF, is_active=False)
    session.commit()


@pytest.fixture
def shopper(client: FlaskClient, mall: None) -> tuple[str, dict]:
    return registered_shopper(client, "o-scan-me", "13700137000", nickname="扫码顾客😀")


def fresh_member_code(client: FlaskClient, shopper_token: str) -> str:
    response = client.get("/api/mp/v1/me/code", headers=bearer(shopper_token))
    assert response.status_code == 200
    return str(response.get_json()["code"])


def verify(client: FlaskClient, staff_token: str, code: str):
    return client.post("/api/staff/v1/member-codes/verify", json={"code": code}, headers=bearer(staff_token))


def test_staff_login_returns_a_token_and_who_they_are(client: FlaskClient, mall: None) -> None:
    response = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["staff"]["userid"] == "staff01"
    assert body["staff"]["role"] == "store_staff"
    assert body["token"]


@pytest.mark.parametrize("userid", ["stranger42", "gone01"])
def test_unknown_or_deactivated_wecom_users_are_forbidden(
    client: FlaskClient, mall: None, userid: str
) -> None:
    response = client.post("/api/staff/v1/auth/login", json={"code": f"sandbox:{userid}"})

    assert response.status_code == 403
    assert response.get_json()["code"] == "STAFF_NOT_REGISTERED"


def test_a_bad_wecom_code_is_rejected(client: FlaskClient, mall: None) -> None:
    response = client.post("/api/staff/v1/auth/login", json={"code": "expired-code"})

    assert response.status_code == 400
    assert response.get_json()["code"] == "WECOM_CODE_INVALID"


def test_scanning_a_member_code_shows_the_member_summary(
    client: FlaskClient, shopper: tuple[str, dict]
) -> None:
    shopper_token, member = shopper

    response = verify(client, staff_login(client, "staff01"), fresh_member_code(client, shopper_token))

    assert response.status_code == 200
    assert response.get_json() == {
        "id": member["id"],
        "phone": "137****7000",
        "nickname": "扫码顾客😀",
        "tier": {"code": "normal", "name": "普卡"},
        "points_balance": PointsSettings.DEFAULTS["welcome_points"],
    }


def test_the_member_code_carries_a_scannable_qr_image(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    import base64

    body = client.get("/api/mp/v1/me/code", headers=bearer(shopper[0])).get_json()

    assert 0 < body["expires_in"] <= 120
    assert base64.b64decode(body["qr_png_base64"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_each_request_gives_a_new_code(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    assert fresh_member_code(client, shopper[0]) != fresh_member_code(client, shopper[0])


def test_a_member_code_works_only_once(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    staff_token = staff_login(client, "staff01")
    code = fresh_member_code(client, shopper[0])
    assert verify(client, staff_token, code).status_code == 200

    replay = verify(client, staff_token, code)

    assert replay.status_code == 409
    assert replay.get_json()["code"] == "MEMBER_CODE_USED"


def test_a_code_from_two_steps_ago_is_expired(
    app: Flask, client: FlaskClient, shopper: tuple[str, dict]
) -> None:
    with app.app_context():
        signer = extensions().member_code_signer
        old = signer.issue(shopper[1]["id"], utcnow() - timedelta(seconds=2 * signer.step_seconds)).code

    response = verify(client, staff_login(client, "staff01"), old)

    assert response.status_code == 400
    assert response.get_json()["code"] == "MEMBER_CODE_EXPIRED"


def test_a_code_from_the_previous_step_is_still_accepted(
    app: Flask, client: FlaskClient, shopper: tuple[str, dict]
) -> None:
    with app.app_context():
        signer = extensions().member_code_signer
        recent = signer.issue(shopper[1]["id"], utcnow() - timedelta(seconds=signer.step_seconds)).code

    assert verify(client, staff_login(client, "staff01"), recent).status_code == 200


def test_a_code_signed_with_another_key_is_invalid(
    app: Flask, client: FlaskClient, shopper: tuple[str, dict]
) -> None:
    from app.services.member_codes import MemberCodeSigner

    forged = MemberCodeSigner("guessed-secret", 60).issue(shopper[1]["id"], utcnow()).code

    response = verify(client, staff_login(client, "staff01"), forged)

    assert response.status_code == 400
    assert response.get_json()["code"] == "MEMBER_CODE_INVALID"


@pytest.mark.parametrize("garbage", ["hello", "12345678901234567890", "!!!!", "A" * 32])
def test_garbage_codes_are_invalid(client: FlaskClient, shopper: tuple[str, dict], garbage: str) -> None:
    response = verify(client, staff_login(client, "staff01"), garbage)

    assert response.status_code == 400
    assert response.get_json()["code"] == "MEMBER_CODE_INVALID"


def test_a_tampered_member_id_is_invalid(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    import base64

    raw = bytearray(base64.b32decode(fresh_member_code(client, shopper[0])))
    raw[3] ^= 0x01  # another member id, same signature
    tampered = base64.b32encode(bytes(raw)).decode()

    response = verify(client, staff_login(client, "staff01"), tampered)

    assert response.get_json()["code"] == "MEMBER_CODE_INVALID"


def test_advisors_may_not_scan_member_codes(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    response = verify(client, staff_login(client, "advisor01"), fresh_member_code(client, shopper[0]))

    assert response.status_code == 403
    assert response.get_json()["code"] == "FORBIDDEN"


def test_a_shopper_token_cannot_scan(client: FlaskClient, shopper: tuple[str, dict]) -> None:
    response = verify(client, shopper[0], fresh_member_code(client, shopper[0]))

    assert response.status_code == 401


@pytest.mark.mariadb
def test_concurrent_scans_of_one_code_let_exactly_one_through(
    client: FlaskClient, shopper: tuple[str, dict], session: Session, app: Flask
) -> None:
    staff_token = staff_login(client, "staff01")
    code = fresh_member_code(client, shopper[0])

    def scan(_: int) -> int:
        return (
            app.test_client()
            .post("/api/staff/v1/member-codes/verify", json={"code": code}, headers=bearer(staff_token))
            .status_code
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(scan, range(8)))

    assert sorted(statuses) == [200] + [409] * 7
    assert session.scalar(select(func.count()).select_from(UsedMemberCode)) == 1


def test_purging_forgets_only_codes_that_have_expired(
    app: Flask, client: FlaskClient, shopper: tuple[str, dict], session: Session
) -> None:
    staff_token = staff_login(client, "staff01")
    with app.app_context():
        signer = extensions().member_code_signer
        old = signer.issue(shopper[1]["id"], utcnow() - timedelta(seconds=signer.step_seconds)).code
    assert verify(client, staff_token, old).status_code == 200
    assert verify(client, staff_token, fresh_member_code(client, shopper[0])).status_code == 200
    session.execute(
        update(UsedMemberCode)
        .where(UsedMemberCode.id == session.scalar(select(func.min(UsedMemberCode.id))))
        .values(expires_at=utcnow() - timedelta(hours=1))
    )
    session.commit()

    result = app.test_cli_runner().invoke(args=["jobs", "run", "purge-member-codes"])

    assert "purged 1 used" in result.output
    assert session.scalar(select(func.count()).select_from(UsedMemberCode)) == 1

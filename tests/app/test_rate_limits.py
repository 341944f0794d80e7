"""Abuse limits: request rates on logins, sign-ups, claims, check-ins and code verification (429), and
the lockout of staff who submit too many invalid member or coupon codes (423)."""

from __future__ import annotations

import uuid
from typing import Any

import limits.storage.memory
import pytest
import redis
from flask.testing import FlaskClient
from limits.storage import storage_from_string
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

import app.extensions
import app.ratelimit
from app import create_app
from app.config import Config
from app.models import StaffRole
from tests import factories
from tests.flows import bearer, registered_shopper, shopper_login, sign_up, staff_login

# Valid base32 of the right length, signed with nobody's key: what a guesser sends.
FORGED_CODE = "A" * 32


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(
        RATE_LIMIT_LOGIN="3/minute",
        RATE_LIMIT_CLAIM="2/minute",
        RATE_LIMIT_CHECKIN="1/minute",
        RATE_LIMIT_VERIFY="2/minute",
        RATE_LIMIT_ADDRESS_FACTOR=100,
        CODE_VERIFY_MAX_FAILURES=3,
        CODE_VERIFY_FAILURE_WINDOW_SECONDS=60,
        CODE_VERIFY_LOCKOUT_SECONDS=120,
    )


@pytest.fixture
def store_id(session: Session) -> int:
    factories.create_tiers(session)
    store = factories.create_store(session)
    for userid in ("staff01", "staff02"):
        factories.create_staff(session, userid, StaffRole.STORE_STAFF, store_id=store.id)
    session.commit()
    return store.id


@pytest.fixture
def shopper(client: FlaskClient, store_id: int) -> str:
    return registered_shopper(client, "o-limits", "13900000001")[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of the in-memory limits (and of Retry-After), moved by hand."""
    fake = FakeClock()
    monkeypatch.setattr(limits.storage.memory, "time", fake)
    monkeypatch.setattr(app.ratelimit, "time", fake)
    return fake


def assert_rate_limited(response: TestResponse, *, window: int = 60) -> None:
    assert response.status_code == 429, response.get_json()
    assert response.get_json() == {"code": "RATE_LIMITED", "message": "操作过于频繁，请稍后再试"}
    assert 1 <= int(response.headers["Retry-After"]) <= window


def claim(client: FlaskClient, token: str, template_id: int) -> TestResponse:
    return client.post(
        f"/api/mp/v1/coupon-templates/{template_id}/claims",
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )


def member_code(client: FlaskClient, token: str) -> str:
    return str(client.get("/api/mp/v1/me/code", headers=bearer(token)).get_json()["code"])


def verify(client: FlaskClient, staff_token: str, code: str) -> TestResponse:
    return client.post("/api/staff/v1/member-codes/verify", json={"code": code}, headers=bearer(staff_token))


# --- request rates -------------------------------------------------------------------------------------


def test_mini_program_logins_are_limited_per_client_address(client: FlaskClient, config: Config) -> None:
    worker = create_app(config.with_overrides(RATE_LIMIT_ADDRESS_FACTOR=1)).test_client()
    for n in range(3):
        assert worker.post("/api/mp/v1/auth/login", json={"code": f"sandbox:o-{n}"}).status_code == 200

    assert_rate_limited(worker.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-other"}))
    elsewhere = worker.post(
        "/api/mp/v1/auth/login", json={"code": "sandbox:o-other"}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert elsewhere.status_code == 200


def test_sign_ups_are_limited_per_account(client: FlaskClient, store_id: int) -> None:
    token = shopper_login(client, "o-signup")["token"]
    assert sign_up(client, token, "13900000002").status_code == 201
    assert sign_up(client, token, "13900000002").status_code == 200
    assert sign_up(client, token, "13900000002").status_code == 200

    assert_rate_limited(sign_up(client, token, "13900000002"))
    other = shopper_login(client, "o-signup-2")["token"]
    assert sign_up(client, other, "13900000003").status_code == 201


def test_coupon_claims_are_limited_per_member(client: FlaskClient, shopper: str, session: Session) -> None:
    template = factories.create_coupon_template(session, per_member_limit=5)
    assert [claim(client, shopper, template.id).status_code for _ in range(2)] == [201, 201]

    assert_rate_limited(claim(client, shopper, template.id))


def test_check_ins_are_limited_per_member(client: FlaskClient, shopper: str) -> None:
    assert client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper)).status_code == 200

    assert_rate_limited(client.post("/api/mp/v1/me/check-ins", headers=bearer(shopper)))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/staff/v1/member-codes/verify", {"code": "not-a-code"}),
        ("/api/staff/v1/purchases", {"member_code": "not-a-code", "receipt_no": "R-1", "amount_fen": 100}),
        ("/api/staff/v1/coupon-redemptions", {"code": "not-a-code", "order_amount_fen": 100}),
    ],
)
def test_staff_code_verification_is_limited_per_staff_account(
    client: FlaskClient, store_id: int, path: str, body: dict[str, Any]
) -> None:
    token = staff_login(client, "staff01")
    body = {**body, "store_id": store_id} if "verify" not in path else body
    assert [client.post(path, json=body, headers=bearer(token)).status_code for _ in range(2)] == [400, 400]

    assert_rate_limited(client.post(path, json=body, headers=bearer(token)))
    other = client.post(path, json=body, headers=bearer(staff_login(client, "staff02")))
    assert other.status_code == 400


@pytest.fixture
def limits_in_redis(config: Config, monkeypatch: pytest.MonkeyPatch) -> Config:
    """`config` with the limits in Redis, under keys of this run only (engineers share one Redis, and
    SQLite hands out the same member ids again), in a database the other Redis tests do not flush."""
    url = "redis://127.0.0.1:6379/14"
    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        connection.close()
    prefix = f"test-limits-{uuid.uuid4().hex}"
    monkeypatch.setattr(
        app.extensions, "limit_storage", lambda redis_url: storage_from_string(redis_url, key_prefix=prefix)
    )
    return config.with_overrides(REDIS_URL=url)


def test_limits_are_shared_by_workers_through_redis(
    client: FlaskClient, shopper: str, limits_in_redis: Config
) -> None:
    first, second = (create_app(limits_in_redis).test_client() for _ in range(2))

    assert first.post("/api/mp/v1/me/check-ins", headers=bearer(shopper)).status_code == 200
    assert_rate_limited(second.post("/api/mp/v1/me/check-ins", headers=bearer(shopper)))


def test_limits_fail_open_with_a_warning_when_redis_is_down(
    client: FlaskClient, shopper: str, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    worker = create_app(config.with_overrides(REDIS_URL="redis://127.0.0.1:1/0")).test_client()
    staff = staff_login(client, "staff01")

    check_ins = [worker.post("/api/mp/v1/me/check-ins", headers=bearer(shopper)) for _ in range(3)]
    scans = [verify(worker, staff, FORGED_CODE) for _ in range(5)]

    assert [r.status_code for r in check_ins] == [200, 200, 200]
    assert [r.get_json()["code"] for r in scans] == ["MEMBER_CODE_INVALID"] * 5
    assert "rate limit storage unreachable" in caplog.text
    assert "code verification lockout storage unreachable" in caplog.text


# --- the code verification lockout ---------------------------------------------------------------------


def test_staff_who_submit_too_many_invalid_codes_are_locked_out_until_the_lockout_ends(
    client: FlaskClient, shopper: str, config: Config, clock: FakeClock
) -> None:
    worker = create_app(config.with_overrides(RATE_LIMIT_VERIFY="100/minute")).test_client()
    staff = staff_login(client, "staff01")
    misses = [verify(worker, staff, FORGED_CODE).get_json()["code"] for _ in range(3)]

    locked = verify(worker, staff, member_code(client, shopper))
    clock.now += 119
    still_locked = verify(worker, staff, member_code(client, shopper))
    colleague = verify(worker, staff_login(client, "staff02"), member_code(client, shopper))
    clock.now += 2
    unlocked = verify(worker, staff, member_code(client, shopper))

    assert misses == ["MEMBER_CODE_INVALID"] * 3
    assert locked.status_code == 423
    assert locked.get_json()["code"] == "CODE_VERIFY_LOCKED"
    assert int(locked.headers["Retry-After"]) == 120
    assert (still_locked.status_code, still_locked.headers["Retry-After"]) == (423, "1")
    assert colleague.status_code == 200
    assert unlocked.status_code == 200, unlocked.get_json()


def test_invalid_coupon_codes_count_towards_the_same_lockout(
    client: FlaskClient, shopper: str, store_id: int, config: Config, clock: FakeClock
) -> None:
    worker = create_app(config.with_overrides(RATE_LIMIT_VERIFY="100/minute")).test_client()
    staff = staff_login(client, "staff01")
    redeem_body = {"code": FORGED_CODE, "store_id": store_id, "order_amount_fen": 100}
    for _ in range(2):
        response = worker.post("/api/staff/v1/coupon-redemptions", json=redeem_body, headers=bearer(staff))
        assert response.get_json()["code"] == "COUPON_CODE_INVALID"
    assert verify(worker, staff, FORGED_CODE).status_code == 400

    purchase = worker.post(
        "/api/staff/v1/purchases",
        json={
            "member_code": member_code(client, shopper),
            "store_id": store_id,
            "receipt_no": "R-9",
            "amount_fen": 1,
        },
        headers=bearer(staff),
    )

    assert purchase.status_code == 423
    assert purchase.get_json()["code"] == "CODE_VERIFY_LOCKED"


def test_failures_outside_the_window_do_not_lock(
    client: FlaskClient, shopper: str, config: Config, clock: FakeClock
) -> None:
    worker = create_app(config.with_overrides(RATE_LIMIT_VERIFY="100/minute")).test_client()
    staff = staff_login(client, "staff01")
    for _ in range(2):
        verify(worker, staff, FORGED_CODE)
    clock.now += 61
    verify(worker, staff, FORGED_CODE)

    assert verify(worker, staff, member_code(client, shopper)).status_code == 200

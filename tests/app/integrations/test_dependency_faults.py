"""The API under failing dependencies, driven through the sandbox's injected faults: token refresh is
bounded, endpoints that need WeChat, WeCom or the car park answer a clear 503, the others stay up, and
without Redis everything still works."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import bound_database
from app.models import StaffRole
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, registered_shopper, shopper_login, sign_up

PHONE_PATH = "/wxa/business/getuserphonenumber"
TOKEN_PATH = "/cgi-bin/stable_token"
PLATE = "粤B67890"


@pytest.fixture
def mall(session: Session) -> None:
    factories.create_tiers(session)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF)
    factories.create_coupon_template(session, min_spend_fen=0)
    factories.create_operator(session, "ops", "correct-horse")
    session.commit()


def calls_to(sandbox: SandboxProcess, server: str, path: str) -> int:
    return sum(1 for r in sandbox.requests(server) if r["path"] == path)  # type: ignore[arg-type]


def assert_unavailable(response: object, dependency: str) -> None:
    assert response.status_code == 503, response.get_json()  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    assert body["code"] == "DEPENDENCY_UNAVAILABLE"
    assert body["details"]["dependency"] == dependency
    assert "暂时" in body["message"]


# --- access tokens -----------------------------------------------------------------------------------


def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token = shopper_login(client, "o-token")["token"]
    assert sign_up(client, token, "13600136000").status_code == 201  # holds a token from here on
    sandbox.inject_fault("wechat", PHONE_PATH, 40001, times=1)

    other = shopper_login(client, "o-token-2")["token"]
    response = sign_up(client, other, "13600136001")

    assert response.status_code == 201, response.get_json()
    assert calls_to(sandbox, "wechat", PHONE_PATH) == 3  # ok; 40001, then ok
    assert calls_to(sandbox, "wechat", TOKEN_PATH) == 2  # the first token, one refresh


def test_a_token_refused_every_time_is_a_clear_error_not_a_loop(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token = shopper_login(client, "o-token-loop")["token"]
    sandbox.inject_fault("wechat", PHONE_PATH, 40001, times=None)

    response = sign_up(client, token, "13600136002")

    assert_unavailable(response, "wechat")
    assert response.get_json()["details"]["errcode"] == 40001
    assert calls_to(sandbox, "wechat", PHONE_PATH) == 2
    assert calls_to(sandbox, "wechat", TOKEN_PATH) == 2


@pytest.mark.parametrize("fault", [{"http_status": 500}, {"errcode": -1}, {"errcode": 45009}])
def test_a_failing_token_endpoint_is_a_503_for_what_needs_a_token(
    client: FlaskClient, mall: None, sandbox: SandboxProcess, fault: dict[str, int]
) -> None:
    token = shopper_login(client, "o-no-token")["token"]  # jscode2session needs no token
    sandbox.inject_fault("wechat", TOKEN_PATH, times=None, **fault)  # type: ignore[arg-type]

    response = sign_up(client, token, "13600136003")

    assert response.status_code == 503, response.get_json()
    expected = "WECHAT_RATE_LIMITED" if fault.get("errcode") == 45009 else "DEPENDENCY_UNAVAILABLE"
    assert response.get_json()["code"] == expected


def test_a_token_endpoint_failing_during_a_refresh_is_a_503_not_a_500(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token = shopper_login(client, "o-refresh")["token"]
    assert sign_up(client, token, "13600136004").status_code == 201
    sandbox.inject_fault("wechat", PHONE_PATH, 42001)
    sandbox.inject_fault("wechat", TOKEN_PATH, -1, http_status=502, times=None)

    other = shopper_login(client, "o-refresh-2")["token"]
    response = sign_up(client, other, "13600136005")

    assert_unavailable(response, "wechat")


def test_a_failing_wecom_token_endpoint_is_a_503_for_staff_login(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    sandbox.inject_fault("wecom", "/cgi-bin/gettoken", -1, http_status=503, times=None)

    response = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})

    assert_unavailable(response, "wecom")


# --- every dependency down -------------------------------------------------------------------------------


def test_with_wechat_wecom_and_the_car_park_down_the_rest_stays_up(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token, _ = registered_shopper(client, "o-outage", "13600136006")
    assert (
        client.post("/api/mp/v1/me/plates", json={"plate": PLATE}, headers=bearer(token)).status_code == 201
    )
    sandbox.park_car(PLATE, 120)
    for server in ("wechat", "wecom"):
        sandbox.inject_fault(server, "*", -1, http_status=503, times=None)  # type: ignore[arg-type]
    sandbox.inject_fault("carpark", "*", kind="lost_answer", times=None)

    headers = bearer(token)
    still_up = {
        "me": client.get("/api/mp/v1/me", headers=headers),
        "points": client.get("/api/mp/v1/me/points", headers=headers),
        "coupons": client.get("/api/mp/v1/me/coupons", headers=headers),
        "templates": client.get("/api/mp/v1/coupon-templates", headers=headers),
        "check-in": client.post("/api/mp/v1/me/check-ins", headers=headers),
    }
    login = client.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-outage-2"})
    staff = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})
    quote = client.get(f"/api/mp/v1/me/parking/quote?plate={PLATE}", headers=headers)

    assert {name: response.status_code for name, response in still_up.items()} == dict.fromkeys(still_up, 200)
    assert_unavailable(login, "wechat")
    assert_unavailable(staff, "wecom")
    assert_unavailable(quote, "carpark")


# --- Redis down ------------------------------------------------------------------------------------------


@pytest.fixture
def redisless(config: Config) -> Iterator[Flask]:
    app = create_app(config.with_overrides(REDIS_URL="redis://127.0.0.1:1/0"))
    yield app
    bound_database(app).engine.dispose()


def test_without_redis_tokens_are_kept_per_worker_and_the_api_works(
    redisless: Flask, mall: None, sandbox: SandboxProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = redisless.test_client()

    token, _ = registered_shopper(client, "o-redisless", "13600136007")
    again, _ = registered_shopper(client, "o-redisless-2", "13600136008")
    templates = client.get("/api/mp/v1/coupon-templates", headers=bearer(token)).get_json()
    claim = client.post(
        f"/api/mp/v1/coupon-templates/{templates[0]['id']}/claims",
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )
    staff = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})
    operator = client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"})

    assert claim.status_code == 201, claim.get_json()
    assert staff.status_code == 200 and operator.status_code == 200
    assert client.post("/api/mp/v1/me/check-ins", headers=bearer(again)).status_code == 200
    # The second sign-up used the token this worker kept in memory.
    assert calls_to(sandbox, "wechat", TOKEN_PATH) == 1
    assert "token storage Redis unreachable" in caplog.text
    assert "login throttle storage unreachable" in caplog.text

"""Every response carries a request id (the caller's, when it is a sane one), and the calls a
request makes to WeChat, WeCom and the car park carry the same id."""

from __future__ import annotations

import re
from urllib.parse import quote as urlquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import jobs
from app.extensions import extensions
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, registered_shopper, shopper_login

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_sane_incoming_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a:01.2_x"})

    assert response.headers["X-Request-Id"] == "lb-7f3a:01.2_x"


@pytest.mark.parametrize(
    "incoming",
    [None, "", "has space", "new\nline", "x" * 129, "-starts-with-dash", '"quoted"'],
    ids=["missing", "empty", "space", "newline", "too-long", "dash", "quotes"],
)
def test_a_missing_or_insane_request_id_is_replaced_by_a_new_one(
    client: FlaskClient, incoming: str | None
) -> None:
    # In the WSGI environ: the test client refuses to send a header with a newline, a raw socket would.
    environ = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}

    first = client.get("/healthz", environ_overrides=environ).headers["X-Request-Id"]
    second = client.get("/healthz", environ_overrides=environ).headers["X-Request-Id"]

    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second


def test_errors_carry_the_request_id_too(client: FlaskClient) -> None:
    response = client.get("/api/nowhere", headers={"X-Request-Id": "req-404"})

    assert response.status_code == 404 and response.get_json()["code"] == "NOT_FOUND"
    assert response.headers["X-Request-Id"] == "req-404"


def test_wechat_calls_carry_the_request_id_of_the_login_that_made_them(
    client: FlaskClient, sandbox: SandboxProcess
) -> None:
    response = client.post(
        "/api/mp/v1/auth/login", json={"code": "sandbox:o-traced"}, headers={"X-Request-Id": "login-42"}
    )

    assert response.status_code == 200
    [call] = [r for r in sandbox.requests("wechat") if r["path"] == "/sns/jscode2session"]
    assert call["headers"]["X-Request-Id"] == "login-42"


def test_each_request_sends_its_own_id_to_wechat(client: FlaskClient, sandbox: SandboxProcess) -> None:
    shopper_login(client, "o-first")
    shopper_login(client, "o-second")

    ids = [r["headers"].get("X-Request-Id") for r in sandbox.requests("wechat")]
    assert len(ids) == 2 and all(GENERATED.fullmatch(str(i)) for i in ids) and ids[0] != ids[1]


def test_car_park_calls_carry_the_request_id_of_the_quote(
    client: FlaskClient, session: Session, sandbox: SandboxProcess
) -> None:
    factories.create_tiers(session)
    session.commit()
    token, _ = registered_shopper(client, "o-parked", "13900139301")
    plate = "粤B54321"
    bound = client.post("/api/mp/v1/me/plates", json={"plate": plate}, headers=bearer(token))
    assert bound.status_code == 201
    sandbox.park_car(plate, 95)

    quote = client.get(
        f"/api/mp/v1/me/parking/quote?plate={urlquote(plate)}",
        headers={**bearer(token), "X-Request-Id": "quote-7"},
    )

    assert quote.status_code == 200, quote.get_json()
    [fee_call] = [r for r in sandbox.requests("carpark") if r["path"] == "/api/v1/parking/fee"]
    assert fee_call["headers"]["X-Request-Id"] == "quote-7"


def test_a_scheduled_job_run_sends_an_id_of_its_own(
    app: Flask, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ask_the_car_park() -> str:
        extensions().carpark.payment_state("no-such-order")
        extensions().carpark.payment_state("no-such-order-either")
        return "asked"

    monkeypatch.setitem(jobs.JOBS, "ask-car-park", jobs.Job(ask_the_car_park, {"minute": "*"}))

    jobs.run_job(app, "ask-car-park")
    with app.app_context():
        extensions().carpark.payment_state("outside-any-job")

    first, second, outside = (r["headers"] for r in sandbox.requests("carpark"))
    assert first["X-Request-Id"].startswith("job-ask-car-park-")
    assert second["X-Request-Id"] == first["X-Request-Id"]
    assert "X-Request-Id" not in outside

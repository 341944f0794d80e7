"""The car-park adapter against the sandbox car park: signed requests, tariff, discounts, failures."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from flask import Flask

from app.db import utcnow
from app.extensions import extensions
from app.integrations.carpark import (
    CarNotInLot,
    CarParkClient,
    CarParkNoAnswer,
    CarParkNotReached,
    CarParkRejected,
    CarParkUnavailable,
    DiscountNotice,
    PaymentState,
)
from app.sandbox import SandboxProcess
from tests.conftest import CARPARK_TIMEOUT_SECONDS

PLATE = "粤B12345"


@pytest.fixture
def carpark(app: Flask) -> CarParkClient:
    with app.app_context():
        return extensions().carpark


@pytest.mark.parametrize(
    ("minutes", "fee"),
    [
        (10, 0),
        (30, 0),
        (31, 500),
        (60, 500),
        (61, 1_000),
        (150, 1_500),
        (20 * 60, 5_000),
        (24 * 60 + 90, 6_000),
    ],
)
def test_the_fee_follows_the_tariff(
    carpark: CarParkClient, sandbox: SandboxProcess, minutes: int, fee: int
) -> None:
    sandbox.park_car(PLATE, minutes)

    quoted = carpark.query_fee(PLATE)

    assert (quoted.parking_minutes, quoted.total_fee_fen) == (minutes, fee)
    assert abs(quoted.entry_time - (utcnow() - timedelta(minutes=minutes))) < timedelta(seconds=30)


def test_free_minutes_come_off_the_time_parked(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.park_car(PLATE, 150)

    quoted = carpark.query_fee(PLATE, free_minutes=60)

    assert (quoted.total_fee_fen, quoted.free_minutes, quoted.fee_after_minutes_fen) == (1_500, 60, 1_000)


def test_the_tariff_is_configurable(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.set_tariff(freeMinutes=0, hourlyFen=800, dailyCapFen=3_000)
    sandbox.park_car(PLATE, 150)

    assert carpark.query_fee(PLATE).total_fee_fen == 2_400


def test_a_car_not_in_the_lot(carpark: CarParkClient) -> None:
    with pytest.raises(CarNotInLot):
        carpark.query_fee("粤B00000")


def test_a_wrong_signing_key_is_refused(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.park_car(PLATE, 90)
    forger = CarParkClient(api_base=carpark.api_base, park_id=carpark.park_id, signing_key="x", timeout=2)

    with pytest.raises(CarParkUnavailable) as caught:
        forger.query_fee(PLATE)

    assert caught.value.details == {"dependency": "carpark", "carpark_code": 1001}


def test_a_discount_is_applied_once_per_order(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.park_car(PLATE, 150)
    notice = DiscountNotice("MMP0001", PLATE, 1_500, 1_000, 60)

    carpark.notify_discount(notice)
    carpark.notify_discount(notice)

    assert [(d["order_no"], d["discount_fee"], d["pay_fee"]) for d in sandbox.carpark_discounts()] == [
        ("MMP0001", 1_000, 500)
    ]
    assert carpark.payment_state("MMP0001") is PaymentState.APPLIED
    assert carpark.payment_state("MMP-unknown") is PaymentState.NOT_FOUND


def test_a_discount_for_a_fee_that_changed_is_refused(
    carpark: CarParkClient, sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 150)

    with pytest.raises(CarParkRejected) as caught:
        carpark.notify_discount(DiscountNotice("MMP0002", PLATE, 1_000, 1_000, 0))

    assert caught.value.code == 2002
    assert sandbox.carpark_discounts() == []


def test_injected_business_errors(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.park_car(PLATE, 150)
    sandbox.carpark_fault("/api/v1/parking/discount", "business", code=3005, msg="车场拒绝优惠")

    with pytest.raises(CarParkRejected) as caught:
        carpark.notify_discount(DiscountNotice("MMP0003", PLATE, 1_500, 1_500, 0))

    assert (caught.value.code, caught.value.msg) == (3005, "车场拒绝优惠")
    assert sandbox.carpark_discounts() == []


def test_a_server_error_is_no_answer(carpark: CarParkClient, sandbox: SandboxProcess) -> None:
    sandbox.park_car(PLATE, 150)
    sandbox.carpark_fault("/api/v1/parking/discount", "http_error", httpStatus=502)

    with pytest.raises(CarParkNoAnswer):
        carpark.notify_discount(DiscountNotice("MMP0004", PLATE, 1_500, 1_500, 0))


def test_a_timeout_is_no_answer_though_the_car_park_acted(
    carpark: CarParkClient, sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 150)
    sandbox.carpark_fault("/api/v1/parking/discount", "timeout", delaySeconds=CARPARK_TIMEOUT_SECONDS + 0.5)

    with pytest.raises(CarParkNoAnswer):
        carpark.notify_discount(DiscountNotice("MMP0005", PLATE, 1_500, 1_500, 0))

    assert carpark.payment_state("MMP0005") is PaymentState.APPLIED


def test_a_car_park_that_is_down_was_not_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CarParkClient(api_base=f"http://127.0.0.1:{port}", park_id="p", signing_key="k", timeout=2)

    with pytest.raises(CarParkNotReached):
        client.notify_discount(DiscountNotice("MMP0006", PLATE, 1_500, 1_500, 0))
    with pytest.raises(CarParkUnavailable):
        client.query_fee(PLATE)

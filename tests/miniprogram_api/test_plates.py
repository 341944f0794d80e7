"""Shoppers bind up to three licence plates; a plate belongs to one member only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import MemberPlate
from app.services.plates import PlateInvalid, normalize_plate
from tests import factories
from tests.flows import bearer, registered_shopper


@pytest.fixture
def tiers(session: Session) -> list:
    return factories.create_tiers(session)


@pytest.fixture
def shopper(client: FlaskClient, tiers: list) -> str:
    return registered_shopper(client, "o-plates", "13900139100")[0]


def bind(client: FlaskClient, token: str, plate: str):
    return client.post("/api/mp/v1/me/plates", json={"plate": plate}, headers=bearer(token))


def my_plates(client: FlaskClient, token: str) -> list[str]:
    return [p["plate"] for p in client.get("/api/mp/v1/me/plates", headers=bearer(token)).get_json()]


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("粤B12345", "粤B12345"),
        (" 粤b 123ab ", "粤B123AB"),
        ("京A·88888", "京A88888"),
        ("粤ＢＤ１２３４５", "粤BD12345"),  # full-width, as some keyboards type it
        ("粤BD12345", "粤BD12345"),  # small new-energy
        ("沪AFA1234", "沪AFA1234"),
        ("粤B12345D", "粤B12345D"),  # large new-energy
        ("粤B1234学", "粤B1234学"),
    ],
)
def test_plates_are_normalised(raw: str, plate: str) -> None:
    assert normalize_plate(raw) == plate


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "B12345",
        "粤12345",
        "粤B1234",
        "粤B123456",
        "粤BI2345",
        "粤BO2345",
        "港B12345",
        "粤BA12345",
        "粤B1234D5",
    ],
)
def test_malformed_plates_are_refused(raw: str) -> None:
    with pytest.raises(PlateInvalid):
        normalize_plate(raw)


def test_binding_listing_and_unbinding(client: FlaskClient, shopper: str) -> None:
    first = bind(client, shopper, "粤b 12345")
    again = bind(client, shopper, "粤B12345")
    bind(client, shopper, "粤BD12345")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["plate"] == "粤B12345"
    assert my_plates(client, shopper) == ["粤B12345", "粤BD12345"]

    deleted = client.delete(f"/api/mp/v1/me/plates/{quote('粤b12345')}", headers=bearer(shopper))

    assert deleted.status_code == 204
    assert my_plates(client, shopper) == ["粤BD12345"]


def test_at_most_three_plates(client: FlaskClient, shopper: str) -> None:
    for plate in ("粤B11111", "粤B22222", "粤B33333"):
        assert bind(client, shopper, plate).status_code == 201

    response = bind(client, shopper, "粤B44444")

    assert response.status_code == 409
    assert response.get_json()["code"] == "PLATE_LIMIT_REACHED"


def test_an_invalid_plate_is_422(client: FlaskClient, shopper: str) -> None:
    response = bind(client, shopper, "ABC")

    assert response.status_code == 422
    assert response.get_json() == {"code": "PLATE_INVALID", "message": "车牌号格式不正确，请检查后重新输入"}


def test_a_plate_of_another_member_is_409_not_a_steal(client: FlaskClient, shopper: str) -> None:
    assert bind(client, shopper, "粤B12345").status_code == 201
    other, _ = registered_shopper(client, "o-plates-2", "13900139101")

    response = bind(client, other, "粤b12345")
    unbind = client.delete(f"/api/mp/v1/me/plates/{quote('粤B12345')}", headers=bearer(other))

    assert response.status_code == 409
    assert response.get_json()["code"] == "PLATE_BOUND_TO_OTHER_MEMBER"
    assert unbind.status_code == 404
    assert my_plates(client, shopper) == ["粤B12345"]
    assert my_plates(client, other) == []


def test_unbinding_a_plate_i_do_not_hold_is_404(client: FlaskClient, shopper: str) -> None:
    response = client.delete(f"/api/mp/v1/me/plates/{quote('粤B99999')}", headers=bearer(shopper))

    assert response.status_code == 404
    assert response.get_json()["code"] == "PLATE_NOT_BOUND"


@pytest.mark.mariadb
def test_members_binding_one_plate_at_once_leave_one_owner(
    app: Flask, client: FlaskClient, tiers: list, session: Session
) -> None:
    tokens = [registered_shopper(client, f"o-race-{n}", f"1390013920{n}")[0] for n in range(8)]

    def attempt(token: str) -> int:
        return bind(app.test_client(), token, "粤B77777").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, tokens))

    assert sorted(statuses) == [201] + [409] * 7
    assert session.scalar(select(func.count()).select_from(MemberPlate)) == 1

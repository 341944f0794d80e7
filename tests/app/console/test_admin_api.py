"""Operators log in and create the QR scenes printed on posters, counters and advisor cards."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import QrScene, StaffRole
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper


@pytest.fixture
def mall(session: Session) -> dict:
    factories.create_tiers(session)
    store = factories.create_store(session)
    factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=store.id)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    factories.create_operator(session, "ops", "correct-horse")
    factories.create_operator(session, "retired", "correct-horse", is_active=False)
    session.commit()
    return {"store": store}


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


def test_operator_login_returns_a_token(client: FlaskClient, mall: dict) -> None:
    response = client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"})

    assert response.status_code == 200
    assert response.get_json()["operator"]["username"] == "ops"
    assert "password" not in str(response.get_json())


@pytest.mark.parametrize(
    ("username", "password"), [("ops", "wrong"), ("nobody", "correct-horse"), ("retired", "correct-horse")]
)
def test_bad_credentials_are_401(client: FlaskClient, mall: dict, username: str, password: str) -> None:
    response = client.post("/api/admin/v1/auth/login", json={"username": username, "password": password})

    assert response.status_code == 401
    assert response.get_json() == {"code": "LOGIN_FAILED", "message": "用户名或密码错误"}


def test_repeated_failures_lock_the_account_even_for_the_right_password(
    client: FlaskClient, mall: dict
) -> None:
    for _ in range(5):
        client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "guess"})

    response = client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"})

    assert response.status_code == 429
    assert response.get_json()["code"] == "LOGIN_LOCKED"


def test_a_successful_login_clears_earlier_failures(client: FlaskClient, mall: dict) -> None:
    for _ in range(4):
        client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "guess"})
    operator_login(client)

    for _ in range(4):
        client.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "guess"})

    assert (
        client.post(
            "/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("kind", ["event", "poster"])
def test_event_and_poster_scenes_need_only_a_name(client: FlaskClient, admin: dict, kind: str) -> None:
    response = client.post(
        "/api/admin/v1/qr-scenes", json={"kind": kind, "name": "双十一快闪"}, headers=admin
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["kind"] == kind
    assert 0 < len(body["scene"]) <= 32


def test_scene_values_are_unique(client: FlaskClient, admin: dict) -> None:
    values = {
        client.post(
            "/api/admin/v1/qr-scenes", json={"kind": "poster", "name": "海报"}, headers=admin
        ).get_json()["scene"]
        for _ in range(5)
    }

    assert len(values) == 5


def test_an_advisor_scene_points_at_the_advisor_and_their_store(
    client: FlaskClient, admin: dict, mall: dict, session: Session
) -> None:
    response = client.post(
        "/api/admin/v1/qr-scenes",
        json={"kind": "advisor", "name": "顾问码", "advisor_userid": "advisor01"},
        headers=admin,
    )

    assert response.status_code == 201
    scene = session.get(QrScene, response.get_json()["id"])
    assert scene.store_id == mall["store"].id
    assert scene.advisor_id is not None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"kind": "store", "name": "门店码"}, 422, "store_id"),
        ({"kind": "store", "name": "门店码", "store_id": 999999}, 404, "store_id"),
        ({"kind": "advisor", "name": "顾问码"}, 422, "advisor_userid"),
        ({"kind": "advisor", "name": "顾问码", "advisor_userid": "staff01"}, 404, "advisor_userid"),
        ({"kind": "referral", "name": "推荐码"}, 422, "referrer_member_id"),
        ({"kind": "referral", "name": "推荐码", "referrer_member_id": 999999}, 404, "referrer_member_id"),
        ({"kind": "billboard", "name": "?"}, 422, "kind"),
        ({"kind": "poster", "name": ""}, 422, "name"),
    ],
)
def test_invalid_scenes_are_rejected_with_the_field_at_fault(
    client: FlaskClient, admin: dict, body: dict, status: int, field: str, session: Session
) -> None:
    response = client.post("/api/admin/v1/qr-scenes", json=body, headers=admin)

    assert response.status_code == status
    assert field in response.get_json()["details"]
    assert session.scalar(select(QrScene.id)) is None


def test_a_referral_scene_names_an_existing_member(client: FlaskClient, admin: dict) -> None:
    _, member = registered_shopper(client, "o-referrer", "13600136000")

    response = client.post(
        "/api/admin/v1/qr-scenes",
        json={"kind": "referral", "name": "老带新", "referrer_member_id": member["id"]},
        headers=admin,
    )

    assert response.status_code == 201
    assert response.get_json()["referrer_member_id"] == member["id"]


def test_the_scene_image_is_the_png_wechat_generates(
    client: FlaskClient, admin: dict, sandbox: SandboxProcess
) -> None:
    scene = client.post(
        "/api/admin/v1/qr-scenes", json={"kind": "poster", "name": "电梯海报"}, headers=admin
    ).get_json()

    response = client.get(f"/api/admin/v1/qr-scenes/{scene['id']}/image", headers=admin)

    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    calls = [r for r in sandbox.requests("wechat") if r["path"] == "/wxa/getwxacodeunlimit"]
    assert calls[-1]["json"]["scene"] == scene["scene"]
    assert calls[-1]["json"]["page"] == "pages/signup/index"


def test_the_image_of_a_missing_scene_is_404(client: FlaskClient, admin: dict) -> None:
    response = client.get("/api/admin/v1/qr-scenes/424242/image", headers=admin)

    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"


def test_scenes_are_listed_newest_first(client: FlaskClient, admin: dict) -> None:
    for name in ("一号", "二号", "三号"):
        client.post("/api/admin/v1/qr-scenes", json={"kind": "poster", "name": name}, headers=admin)

    response = client.get("/api/admin/v1/qr-scenes?per_page=2", headers=admin)

    assert [scene["name"] for scene in response.get_json()] == ["三号", "二号"]


def test_admin_endpoints_need_an_operator_token(client: FlaskClient, mall: dict) -> None:
    shopper_token, _ = registered_shopper(client, "o-sneaky", "13600136001")

    for headers in ({}, bearer(shopper_token)):
        response = client.post(
            "/api/admin/v1/qr-scenes", json={"kind": "poster", "name": "x"}, headers=headers
        )
        assert response.status_code == 401

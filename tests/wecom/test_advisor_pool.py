"""Members without an advisor wait in their store's pool; the store's advisors claim them."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AdvisorAssignment, AssignmentReason, Member, QrScene, SceneKind, StaffRole
from tests import factories
from tests.flows import bearer, registered_shopper, staff_login


@pytest.fixture
def mall(session: Session) -> dict[str, int]:
    factories.create_tiers(session)
    store, elsewhere = factories.create_store(session), factories.create_store(session)
    session.add_all(
        [
            QrScene(kind=SceneKind.STORE, name="一楼门店", scene="store-a", store_id=store.id),
            QrScene(kind=SceneKind.STORE, name="别的门店", scene="store-b", store_id=elsewhere.id),
        ]
    )
    advisor = factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=store.id)
    colleague = factories.create_staff(session, "advisor02", StaffRole.ADVISOR, store_id=store.id)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    session.commit()
    return {"store": store.id, "advisor": advisor.id, "colleague": colleague.id}


def pool(client: FlaskClient, token: str, **query: int) -> list[dict]:
    response = client.get("/api/staff/v1/pool/members", query_string=query, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return list(response.get_json())


def claim(client: FlaskClient, token: str, member_id: int):
    return client.post(f"/api/staff/v1/pool/members/{member_id}/claim", headers=bearer(token))


def test_the_pool_lists_the_stores_members_without_an_advisor(
    client: FlaskClient, mall: dict[str, int]
) -> None:
    _, first = registered_shopper(client, "o-p1", "13600000001", scene="store-a", nickname="小一")
    _, second = registered_shopper(client, "o-p2", "13600000002", scene="store-a")
    registered_shopper(client, "o-p3", "13600000003", scene="store-b")
    registered_shopper(client, "o-p4", "13600000004")

    members = pool(client, staff_login(client, "advisor01"))

    assert [member["id"] for member in members] == [first["id"], second["id"]]
    assert members[0]["nickname"] == "小一"
    assert members[0]["phone"] == "136****0001"


def test_the_pool_pages_by_member_number(client: FlaskClient, mall: dict[str, int]) -> None:
    ids = [
        registered_shopper(client, f"o-page{n}", f"1360000001{n}", scene="store-a")[1]["id"] for n in range(3)
    ]
    token = staff_login(client, "advisor01")

    assert [m["id"] for m in pool(client, token, limit=2)] == ids[:2]
    assert [m["id"] for m in pool(client, token, after=ids[1])] == ids[2:]


def test_claiming_makes_the_advisor_theirs_and_takes_them_out_of_the_pool(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    _, member = registered_shopper(client, "o-claim", "13600000021", scene="store-a")
    token = staff_login(client, "advisor01")

    response = claim(client, token, member["id"])

    assert response.status_code == 200
    assert response.get_json() == {"member_id": member["id"], "advisor_id": mall["advisor"]}
    assert session.get_one(Member, member["id"]).advisor_id == mall["advisor"]
    assert pool(client, token) == []
    history = session.scalars(select(AdvisorAssignment)).one()
    assert (history.staff_id, history.reason) == (mall["advisor"], AssignmentReason.POOL_CLAIM)


def test_a_member_already_claimed_cannot_be_claimed_again(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    _, member = registered_shopper(client, "o-twice", "13600000022", scene="store-a")
    assert claim(client, staff_login(client, "advisor01"), member["id"]).status_code == 200

    response = claim(client, staff_login(client, "advisor02"), member["id"])

    assert response.status_code == 409
    assert response.get_json()["code"] == "MEMBER_ALREADY_ASSIGNED"
    assert session.get_one(Member, member["id"]).advisor_id == mall["advisor"]


def test_members_of_another_store_cannot_be_claimed(
    client: FlaskClient, session: Session, mall: dict[str, int]
) -> None:
    _, member = registered_shopper(client, "o-other", "13600000023", scene="store-b")

    response = claim(client, staff_login(client, "advisor01"), member["id"])

    assert response.status_code == 404
    assert response.get_json()["message"] == "该会员不在本门店的待认领会员中"
    assert session.get_one(Member, member["id"]).advisor_id is None


def test_only_advisors_see_and_claim_the_pool(client: FlaskClient, mall: dict[str, int]) -> None:
    _, member = registered_shopper(client, "o-staff", "13600000024", scene="store-a")
    token = staff_login(client, "staff01")

    assert client.get("/api/staff/v1/pool/members", headers=bearer(token)).status_code == 403
    assert claim(client, token, member["id"]).status_code == 403


def test_claiming_a_member_that_does_not_exist_is_a_404(client: FlaskClient, mall: dict[str, int]) -> None:
    response = claim(client, staff_login(client, "advisor01"), 999_999)

    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"

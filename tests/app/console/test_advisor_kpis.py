"""Advisor KPIs for operators, with known answers: tasks, completion, 7-day conversion, QR sign-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.models import (
    AdvisorTask,
    Member,
    QrScene,
    SceneKind,
    StaffRole,
    TaskOutcome,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
)
from tests import factories
from tests.flows import bearer, operator_login

DAY = date(2026, 11, 5)


def utc(day: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    tier = factories.create_tiers(session)[0]
    store1, store2 = factories.create_store(session), factories.create_store(session)
    ann = factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安", store_id=store1.id)
    ben = factories.create_staff(session, "ben", StaffRole.ADVISOR, name="本", store_id=store1.id)
    cid = factories.create_staff(session, "cid", StaffRole.ADVISOR, name="西", store_id=store2.id)
    anns_qr = QrScene(
        kind=SceneKind.ADVISOR, name="安的码", scene="adv-ann", store_id=store1.id, advisor_id=ann.id
    )
    session.add(anns_qr)
    factories.create_operator(session)
    session.flush()
    with app.app_context():
        vault = extensions().phone_vault
    phones = iter(range(13900000000, 13900000100))

    def member(**fields: Any) -> Member:
        return factories.create_member(session, vault, str(next(phones)), tier, **fields)

    m1, m2, m3 = (member(advisor_id=ann.id) for _ in range(3))
    m4 = member(advisor_id=ben.id)
    member(signup_scene_id=anns_qr.id, joined_at=utc(3))  # a new member through Ann's QR, in the range
    member(signup_scene_id=anns_qr.id, joined_at=utc(20, month=10))  # before the range
    rule = TaskRule(
        name="规则", trigger_kind=TaskTrigger.TAG, task_type=TaskType.VIP_INVITATION, message_template="您好",
        priority=5, cool_down_days=7, due_in_days=2,
    )  # fmt: skip
    session.add(rule)
    session.flush()

    def task(member: Member, advisor_id: int, task_type: TaskType, status: TaskStatus, **fields: Any) -> None:
        values: dict[str, Any] = {
            "business_date": DAY, "member_id": member.id, "advisor_id": advisor_id, "store_id": store1.id,
            "rule_id": rule.id, "task_type": task_type, "priority": 5, "trigger_kind": TaskTrigger.TAG,
            "trigger_value": "vip", "due_date": date(2026, 11, 7), "status": status, **fields,
        }  # fmt: skip
        if status is TaskStatus.DONE:
            values.setdefault("outcome", TaskOutcome.CONTACTED)
        session.add(AdvisorTask(**values))

    task(m1, ann.id, TaskType.VIP_INVITATION, TaskStatus.DONE, completed_at=utc(5))
    task(m2, ann.id, TaskType.VIP_INVITATION, TaskStatus.DONE, completed_at=utc(5))
    task(m3, ann.id, TaskType.VIP_INVITATION, TaskStatus.OPEN)  # past due: overdue
    task(m1, ann.id, TaskType.BIRTHDAY_GREETING, TaskStatus.EXPIRED)  # overdue too
    task(m1, ann.id, TaskType.WIN_BACK_DORMANT, TaskStatus.DONE, business_date=date(2026, 10, 30),
         completed_at=utc(30, month=10))  # fmt: skip
    task(m4, ben.id, TaskType.VIP_INVITATION, TaskStatus.DONE, completed_at=utc(8))
    # m1 bought before the task, twice within 7 days of it (one partly refunded), and after the 7 days.
    factories.create_purchase(session, store1, 2_000, utc(4), m1)
    factories.create_purchase(session, store1, 5_000, utc(6), m1, refunded_fen=1_000)
    factories.create_purchase(session, store1, 3_000, utc(12, hour=9), m1)
    factories.create_purchase(session, store1, 9_000, utc(12, hour=11), m1)
    factories.create_purchase(session, store2, 1_000, utc(9), m4)
    session.commit()
    return {"store1": store1.id, "store2": store2.id, "ann": ann.id, "ben": ben.id, "cid": cid.id}


def kpis(client: FlaskClient, **query: Any) -> Any:
    token = operator_login(client)
    return client.get("/api/admin/v1/advisor-kpis", query_string=query, headers=bearer(token))


def test_advisor_kpis_with_known_answers(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = kpis(client, **{"from": "2026-11-01", "to": "2026-11-10"})

    assert response.status_code == 200, response.get_json()
    rows = {row["advisor_id"]: row for row in response.get_json()["advisors"]}
    assert list(rows) == [mall["ann"], mall["ben"], mall["cid"]]
    assert rows[mall["ann"]] == {
        "advisor_id": mall["ann"], "advisor_name": "安", "store_id": mall["store1"],
        "bound_members": 3, "tasks_generated": 4, "tasks_done": 2, "tasks_overdue": 2, "completion_rate": 0.5,
        "contacted_members": 2, "converted_members": 1, "conversion_rate": 0.5,
        "converted_sales_fen": 4_000 + 3_000, "new_members": 1,
    }  # fmt: skip
    ben = rows[mall["ben"]]
    assert (ben["tasks_generated"], ben["tasks_done"], ben["completion_rate"]) == (1, 1, 1.0)
    assert (ben["converted_members"], ben["converted_sales_fen"], ben["conversion_rate"]) == (1, 1_000, 1.0)
    cid = rows[mall["cid"]]
    assert (cid["tasks_generated"], cid["completion_rate"], cid["conversion_rate"]) == (0, None, None)
    stores = {row["store_id"]: row for row in response.get_json()["stores"]}
    assert stores[mall["store1"]]["advisor_id"] is None
    assert stores[mall["store1"]]["tasks_generated"] == 5
    assert stores[mall["store1"]]["converted_sales_fen"] == 8_000
    assert stores[mall["store1"]]["completion_rate"] == 0.6
    assert stores[mall["store1"]]["bound_members"] == 4
    assert stores[mall["store2"]]["tasks_generated"] == 0


def test_advisor_kpis_of_one_store(client: FlaskClient, mall: dict[str, Any]) -> None:
    body = kpis(client, **{"from": "2026-11-01", "to": "2026-11-10", "store_id": mall["store2"]}).get_json()

    assert [row["advisor_id"] for row in body["advisors"]] == [mall["cid"]]
    assert [row["store_id"] for row in body["stores"]] == [mall["store2"]]


def test_a_range_counts_its_own_tasks_and_their_conversions(
    client: FlaskClient, mall: dict[str, Any]
) -> None:
    body = kpis(client, **{"from": "2026-10-30", "to": "2026-10-31"}).get_json()

    ann = next(row for row in body["advisors"] if row["advisor_id"] == mall["ann"])
    # The task of 10-30 (done that day at 10:00) converted with m1's purchase of 11-04.
    assert (ann["tasks_generated"], ann["tasks_done"], ann["converted_members"]) == (1, 1, 1)
    assert (ann["converted_sales_fen"], ann["new_members"]) == (2_000, 0)


@pytest.mark.parametrize(
    "query",
    [{"from": "2026-11-10", "to": "2026-11-01"}, {"to": "2026-11-01"}, {"from": "x", "to": "2026-11-01"}],
)
def test_bad_ranges_are_a_chinese_422(
    client: FlaskClient, mall: dict[str, Any], query: dict[str, str]
) -> None:
    response = kpis(client, **query)

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"


def test_advisor_kpis_need_an_operator(client: FlaskClient, mall: dict[str, Any]) -> None:
    assert client.get("/api/admin/v1/advisor-kpis?from=2026-11-01&to=2026-11-02").status_code == 401

"""Operators give advisors their 联系我 codes and move a leaving advisor's members."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    AssignmentReason,
    LifecycleStage,
    Member,
    Staff,
    StaffRole,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
)
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, operator_login


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, int]:
    tier = factories.create_tiers(session)[0]
    store = factories.create_store(session)
    leaving = factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=store.id)
    taking_over = factories.create_staff(session, "advisor02", StaffRole.ADVISOR, store_id=store.id)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    operator = factories.create_operator(session)
    with app.app_context():
        vault = extensions().phone_vault
    members = [
        factories.create_member(session, vault, f"1350000000{n}", tier, advisor_id=leaving.id).id
        for n in range(3)
    ]
    session.commit()
    return {"leaving": leaving.id, "taking_over": taking_over.id, "operator": operator.id, "members": members}


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


def test_an_advisor_gets_one_contact_way_created_at_wecom(
    client: FlaskClient, sandbox: SandboxProcess, mall: dict, admin: dict[str, str]
) -> None:
    first = client.post(f"/api/admin/v1/advisors/{mall['leaving']}/contact-way", headers=admin)
    again = client.post(f"/api/admin/v1/advisors/{mall['leaving']}/contact-way", headers=admin)

    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json() == first.get_json()
    body = first.get_json()
    assert body["state"] == f"adv:{mall['leaving']}"
    assert body["qr_code"].startswith("https://")
    (way,) = sandbox.wecom_contact_ways()
    assert way["config_id"] == body["config_id"]
    assert (way["type"], way["scene"], way["user"], way["state"]) == (1, 2, ["advisor01"], body["state"])

    listed = client.get("/api/admin/v1/advisor-contact-ways", headers=admin).get_json()
    assert [item["staff_id"] for item in listed] == [mall["leaving"]]


def test_only_active_advisors_get_a_contact_way(
    client: FlaskClient, session: Session, admin: dict[str, str]
) -> None:
    store_staff = session.scalars(select(Staff).where(Staff.wecom_userid == "staff01")).one()

    response = client.post(f"/api/admin/v1/advisors/{store_staff.id}/contact-way", headers=admin)

    assert response.status_code == 422
    assert response.get_json()["code"] == "NOT_AN_ADVISOR"


def test_the_cli_creates_contact_ways_for_advisors_without_one(
    app: Flask, sandbox: SandboxProcess, mall: dict
) -> None:
    result = app.test_cli_runner().invoke(args=["wecom", "contact-ways"])

    assert result.exit_code == 0, result.output
    assert "2 contact ways created" in result.output
    assert sorted(way["user"][0] for way in sandbox.wecom_contact_ways()) == ["advisor01", "advisor02"]
    again = app.test_cli_runner().invoke(args=["wecom", "contact-ways"])
    assert "0 contact ways created" in again.output


def test_reassigning_moves_every_member_and_keeps_the_history(
    client: FlaskClient, session: Session, mall: dict, admin: dict[str, str]
) -> None:
    response = client.post(
        f"/api/admin/v1/advisors/{mall['leaving']}/reassign",
        json={"to_staff_id": mall["taking_over"]},
        headers=admin,
    )

    assert response.status_code == 200
    assert response.get_json() == {"moved": 3}
    advisors = session.scalars(select(Member.advisor_id).where(Member.id.in_(mall["members"]))).all()
    assert advisors == [mall["taking_over"]] * 3
    history = client.get(
        f"/api/admin/v1/members/{mall['members'][0]}/advisor-assignments", headers=admin
    ).get_json()
    assert history == [
        {
            "staff_id": mall["taking_over"],
            "reason": AssignmentReason.REASSIGNMENT.value,
            "assigned_at": history[0]["assigned_at"],
            "ended_at": None,
            "end_reason": None,
            "assigned_by_operator_id": mall["operator"],
            "ended_by_operator_id": None,
        }
    ]


def test_reassigning_again_ends_the_previous_assignment(
    client: FlaskClient, session: Session, mall: dict, admin: dict[str, str]
) -> None:
    client.post(
        f"/api/admin/v1/advisors/{mall['leaving']}/reassign",
        json={"to_staff_id": mall["taking_over"]},
        headers=admin,
    )

    response = client.post(
        f"/api/admin/v1/advisors/{mall['taking_over']}/reassign", json={"to_staff_id": None}, headers=admin
    )

    assert response.get_json() == {"moved": 3}
    assert (
        session.scalars(select(Member.advisor_id).where(Member.id.in_(mall["members"]))).all() == [None] * 3
    )
    ended = session.scalars(
        select(AdvisorAssignment).where(AdvisorAssignment.member_id == mall["members"][0])
    ).one()
    assert ended.end_reason is AssignmentEnd.RETURNED_TO_POOL
    assert ended.ended_at is not None and ended.ended_by_operator_id == mall["operator"]


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("self", 422, "VALIDATION_ERROR"),
        ("store_staff", 422, "NOT_AN_ADVISOR"),
        ("missing", 404, "NOT_FOUND"),
    ],
)
def test_reassigning_to_someone_who_cannot_take_them_is_refused(
    client: FlaskClient,
    session: Session,
    mall: dict,
    admin: dict[str, str],
    target: str,
    status: int,
    code: str,
) -> None:
    store_staff_id = session.scalars(select(Staff.id).where(Staff.wecom_userid == "staff01")).one()
    to_staff_id = {"self": mall["leaving"], "store_staff": store_staff_id, "missing": 999_999}[target]

    response = client.post(
        f"/api/admin/v1/advisors/{mall['leaving']}/reassign", json={"to_staff_id": to_staff_id}, headers=admin
    )

    assert (response.status_code, response.get_json()["code"]) == (status, code)
    assert (
        session.scalars(select(Member.advisor_id).where(Member.id.in_(mall["members"]))).all()
        == [mall["leaving"]] * 3
    )


def test_reassigning_needs_an_operator(client: FlaskClient, mall: dict) -> None:
    response = client.post(f"/api/admin/v1/advisors/{mall['leaving']}/reassign", json={"to_staff_id": None})

    assert response.status_code == 401


def test_reassigning_moves_the_open_tasks_and_leaves_the_finished_ones(
    client: FlaskClient, session: Session, mall: dict, admin: dict[str, str]
) -> None:
    rule = TaskRule(
        name="唤醒", trigger_kind=TaskTrigger.LIFECYCLE, from_stage=LifecycleStage.ACTIVE,
        to_stage=LifecycleStage.DORMANT, task_type=TaskType.WIN_BACK_DORMANT, message_template="您好",
        priority=1, cool_down_days=30, due_in_days=3,
    )  # fmt: skip
    session.add(rule)
    session.flush()
    today = date(2026, 11, 25)

    def task(member_id: int, status: TaskStatus) -> AdvisorTask:
        return AdvisorTask(
            business_date=today, member_id=member_id, advisor_id=mall["leaving"], rule_id=rule.id,
            task_type=TaskType.WIN_BACK_DORMANT, priority=1, trigger_kind=TaskTrigger.LIFECYCLE,
            trigger_value="active>dormant", due_date=today, status=status,
        )  # fmt: skip

    open_task, done_task = (
        task(mall["members"][0], TaskStatus.OPEN),
        task(mall["members"][1], TaskStatus.DONE),
    )
    session.add_all([open_task, done_task])
    session.commit()

    response = client.post(
        f"/api/admin/v1/advisors/{mall['leaving']}/reassign",
        json={"to_staff_id": mall["taking_over"]},
        headers=admin,
    )

    assert response.status_code == 200
    session.expire_all()
    assert session.get_one(AdvisorTask, open_task.id).advisor_id == mall["taking_over"]
    assert session.get_one(AdvisorTask, done_task.id).advisor_id == mall["leaving"]

"""Console member merge: the 360 page's form (admins only), the confirmation page (masked phones, what
will move), the CSRF-checked POST that merges and audits, clear refusals, and the admin API endpoint."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import AuditEvent, Member, OperatorRole, PointsEntryKind, PointsSettings
from app.services import points
from app.services.points import Posting
from tests import factories
from tests.app.console.console_flows import csrf_of, signed_in
from tests.flows import bearer, operator_login

NOW = MallTime(datetime(2026, 11, 20, 4, tzinfo=UTC), ZoneInfo("Asia/Shanghai"))
FULL_PHONE = re.compile(r"1\d{10}")


@pytest.fixture
def pair(app: Flask, session: Session) -> tuple[int, int]:
    """(survivor id, source id); the source holds 120 points."""
    with app.app_context():
        vault = extensions().phone_vault
    tiers = factories.create_tiers(session)
    survivor = factories.create_member(session, vault, "13700137001", tiers[0], nickname="新号")
    source = factories.create_member(session, vault, "13700137002", tiers[0], nickname="旧号")
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(source.id, 120, PointsEntryKind.ADJUSTMENT, "fund", "测试"),
            at=NOW,
            settings=PointsSettings.with_defaults(),
        ),
        app=app,
    )
    return survivor.id, source.id


def merged_into(session: Session, member_id: int) -> int | None:
    return session.scalar(select(Member.merged_into_member_id).where(Member.id == member_id))


def test_an_admin_merges_through_the_form_the_confirmation_and_the_post(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    signed_in(client, session, OperatorRole.ADMIN)
    detail = client.get(f"/console/members/{survivor_id}").get_data(as_text=True)
    assert "合并会员" in detail and f'action="/console/members/{survivor_id}/merge"' in detail

    confirm = client.get(f"/console/members/{survivor_id}/merge?source_member_id={source_id}")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200
    assert "137****7001" in html and "137****7002" in html and "旧号" in html
    assert not FULL_PHONE.search(html)  # phones masked
    assert "确认合并" in html and "120" in html
    assert merged_into(session, source_id) is None  # showing it changes nothing

    response = client.post(
        f"/console/members/{survivor_id}/merge",
        data={"csrf_token": csrf_of(html), "source_member_id": str(source_id)},
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/console/members/{survivor_id}?merged={source_id}")
    assert merged_into(session, source_id) == survivor_id
    assert session.scalar(select(Member.points_balance).where(Member.id == survivor_id)) == 120
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "member.merge")).one()
    assert event.detail["source_member_id"] == source_id and event.detail["moved"]["points"] == 120
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"会员 {source_id} 已并入本会员" in after
    gone = client.get(f"/console/members/{source_id}").get_data(as_text=True)
    assert "合并到" in gone and "合并会员" not in gone and "调整积分" not in gone


def test_posting_the_merge_twice_moves_once_and_says_why_the_second_is_refused(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = {"csrf_token": token, "source_member_id": str(source_id)}
    assert client.post(f"/console/members/{survivor_id}/merge", data=form).status_code == 302

    again = client.post(f"/console/members/{survivor_id}/merge", data=form)

    assert again.status_code == 409
    assert f"会员 {source_id} 已合并到会员 {survivor_id}" in again.get_data(as_text=True)
    assert "确认合并" not in again.get_data(as_text=True)
    assert session.scalar(select(Member.points_balance).where(Member.id == survivor_id)) == 120
    assert session.scalar(select(func.count()).where(AuditEvent.action == "member.merge")) == 1


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "请填写要并入的会员 ID"),
        ("abc", "会员 ID 应为正整数"),
        ("99999999", "会员 99999999 不存在"),
        ("99999999999", "会员 ID 应为正整数"),
        ("SELF", "不能把会员与自己合并"),
    ],
)
def test_bad_input_re_renders_the_form_with_a_chinese_message(
    client: FlaskClient, session: Session, pair: tuple[int, int], source: str, message: str
) -> None:
    survivor_id, _ = pair
    token = signed_in(client, session, OperatorRole.ADMIN)
    source = str(survivor_id) if source == "SELF" else source

    shown = client.get(f"/console/members/{survivor_id}/merge", query_string={"source_member_id": source})
    posted = client.post(
        f"/console/members/{survivor_id}/merge", data={"csrf_token": token, "source_member_id": source}
    )

    for response in (shown, posted):
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html and 'name="source_member_id"' in html
    assert session.scalar(select(func.count()).where(Member.merged_into_member_id.is_not(None))) == 0


def test_an_unknown_survivor_is_a_404(client: FlaskClient, session: Session, pair: tuple[int, int]) -> None:
    _, source_id = pair
    signed_in(client, session, OperatorRole.ADMIN)

    assert client.get(f"/console/members/99999999/merge?source_member_id={source_id}").status_code == 404


@pytest.mark.parametrize("role", [OperatorRole.MARKETING, OperatorRole.AUDITOR, OperatorRole.STORE_MANAGER])
def test_only_admins_may_see_or_post_the_merge(
    client: FlaskClient, session: Session, pair: tuple[int, int], role: OperatorRole
) -> None:
    survivor_id, source_id = pair
    store = factories.create_store(session)
    token = signed_in(
        client, session, role, store_id=store.id if role == OperatorRole.STORE_MANAGER else None
    )

    shown = client.get(f"/console/members/{survivor_id}/merge?source_member_id={source_id}")
    posted = client.post(
        f"/console/members/{survivor_id}/merge",
        data={"csrf_token": token, "source_member_id": str(source_id)},
    )

    assert shown.status_code == 403 and posted.status_code == 403
    assert merged_into(session, source_id) is None
    if role != OperatorRole.STORE_MANAGER:  # another store's member: the page itself is a 403
        assert "合并会员" not in client.get(f"/console/members/{survivor_id}").get_data(as_text=True)


def test_strangers_go_to_the_login_and_a_post_without_csrf_is_refused(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    page = client.get(f"/console/members/{survivor_id}/merge?source_member_id={source_id}")
    assert page.status_code == 302 and "/console/login" in page.headers["Location"]

    signed_in(client, session, OperatorRole.ADMIN)
    forged = client.post(f"/console/members/{survivor_id}/merge", data={"source_member_id": str(source_id)})

    assert forged.status_code in (400, 403)
    assert merged_into(session, source_id) is None


def test_the_admin_api_merges_and_refuses_a_repeat(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    factories.create_operator(session)
    token = operator_login(client)

    first = client.post(
        f"/api/admin/v1/members/{survivor_id}/merge",
        json={"source_member_id": source_id},
        headers=bearer(token),
    )
    again = client.post(
        f"/api/admin/v1/members/{survivor_id}/merge",
        json={"source_member_id": source_id},
        headers=bearer(token),
    )
    same = client.post(
        f"/api/admin/v1/members/{survivor_id}/merge",
        json={"source_member_id": survivor_id},
        headers=bearer(token),
    )

    assert first.status_code == 200, first.get_json()
    body: dict[str, Any] = first.get_json()
    assert body["survivor_id"] == survivor_id and body["moved"]["points"] == 120
    assert again.status_code == 409 and again.get_json()["code"] == "MEMBER_MERGE_REFUSED"
    assert same.status_code == 422 and same.get_json()["code"] == "MEMBER_MERGE_SAME"


def test_an_auditor_cannot_merge_through_the_api(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    factories.create_operator(session, "audit", role=OperatorRole.AUDITOR)
    token = operator_login(client, "audit")

    response = client.post(
        f"/api/admin/v1/members/{survivor_id}/merge",
        json={"source_member_id": source_id},
        headers=bearer(token),
    )

    assert response.status_code == 403
    assert merged_into(session, source_id) is None


def test_a_merged_members_points_cannot_be_adjusted_even_by_a_forged_post(
    client: FlaskClient, session: Session, pair: tuple[int, int]
) -> None:
    survivor_id, source_id = pair
    token = signed_in(client, session, OperatorRole.ADMIN)
    merged = client.post(
        f"/console/members/{survivor_id}/merge",
        data={"csrf_token": token, "source_member_id": str(source_id)},
    )
    assert merged.status_code == 302

    response = client.post(
        f"/console/members/{source_id}/points-adjustments",
        data={"csrf_token": token, "delta": "50", "reason": "补偿", "idempotency_key": "a" * 32},
    )

    assert response.status_code == 422
    assert f"该会员已合并到会员 {survivor_id}" in response.get_data(as_text=True)
    assert session.scalar(select(Member.points_balance).where(Member.id == source_id)) == 0

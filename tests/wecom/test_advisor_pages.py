"""The advisor pages inside WeCom, driven through HTTP as the WeCom browser would: OAuth sign-in,
today's tasks, a member's page, completing tasks, correcting info and manual tags (mirrored to WeCom)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.mall_time import MallTime
from app.models import (
    AdvisorTask,
    CorpTagSync,
    CorpTagSyncStatus,
    ExternalContact,
    Member,
    MemberTag,
    QrScene,
    SceneKind,
    Staff,
    StaffRole,
    Store,
    Tag,
    TagKind,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
)
from app.sandbox.process import SandboxProcess
from tests import factories

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def today() -> date:
    return MallTime.current(ZoneInfo("Asia/Shanghai")).today


@pytest.fixture
def mall(app: Flask, session: Session, sandbox: SandboxProcess) -> dict[str, Any]:
    """Store 1 with advisors Ann and Ben and counter staff Sue; store 2 with advisor Cid. Ann has a
    member with two tasks (one overdue); store 1's pool has a member with a task; Ben has a member."""
    sandbox.add_wecom_users({"ann": "安", "ben": "本", "cid": "西", "sue": "苏", "max": "马"})
    tier = factories.create_tiers(session)[0]
    store1, store2 = factories.create_store(session), factories.create_store(session)
    scene1 = QrScene(kind=SceneKind.STORE, name="门店一", scene="store-1", store_id=store1.id)
    scene2 = QrScene(kind=SceneKind.STORE, name="门店二", scene="store-2", store_id=store2.id)
    session.add_all([scene1, scene2])
    session.flush()
    ann = factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安", store_id=store1.id)
    ben = factories.create_staff(session, "ben", StaffRole.ADVISOR, name="本", store_id=store1.id)
    cid = factories.create_staff(session, "cid", StaffRole.ADVISOR, name="西", store_id=store2.id)
    factories.create_staff(session, "sue", StaffRole.STORE_STAFF, store_id=store1.id)
    manager = factories.create_staff(session, "max", StaffRole.MANAGER, store_id=store1.id)
    with app.app_context():
        vault = extensions().phone_vault
    mine = factories.create_member(
        session, vault, "13800000001", tier, nickname="小美", advisor_id=ann.id, signup_scene_id=scene1.id
    )
    pooled = factories.create_member(session, vault, "13800000002", tier, signup_scene_id=scene1.id)
    bens = factories.create_member(
        session, vault, "13800000003", tier, advisor_id=ben.id, signup_scene_id=scene1.id
    )
    elsewhere = factories.create_member(session, vault, "13800000004", tier, signup_scene_id=scene2.id)
    rule = TaskRule(
        name="VIP 邀约", trigger_kind=TaskTrigger.TAG, task_type=TaskType.VIP_INVITATION,
        message_template="您好", priority=5, cool_down_days=7, due_in_days=3,
    )  # fmt: skip
    session.add(rule)
    session.flush()
    day = today()

    def task(member: Member, advisor_id: int | None, task_type: TaskType, **fields: Any) -> AdvisorTask:
        values: dict[str, Any] = {
            "business_date": day, "member_id": member.id, "advisor_id": advisor_id, "store_id": store1.id,
            "rule_id": rule.id, "task_type": task_type, "priority": 5, "trigger_kind": TaskTrigger.TAG,
            "trigger_value": "vip", "due_date": day + timedelta(days=2), **fields,
        }  # fmt: skip
        created = AdvisorTask(**values)
        session.add(created)
        session.flush()
        return created

    urgent = task(mine, ann.id, TaskType.VIP_INVITATION, priority=1)
    overdue = task(
        mine, ann.id, TaskType.BIRTHDAY_GREETING,
        business_date=day - timedelta(days=5), due_date=day - timedelta(days=1), priority=9,
    )  # fmt: skip
    pool_task = task(pooled, None, TaskType.NEW_MEMBER_WELCOME)
    bens_task = task(bens, ben.id, TaskType.WIN_BACK_DORMANT)
    manual = Tag(code="likes_sport", name="爱运动", kind=TagKind.MANUAL)
    session.add(manual)
    session.commit()
    return {
        "store1": store1.id, "ann": ann.id, "ben": ben.id, "cid": cid.id, "manager": manager.id,
        "mine": mine.id, "pooled": pooled.id, "bens": bens.id, "elsewhere": elsewhere.id,
        "urgent": urgent.id, "overdue": overdue.id, "pool_task": pool_task.id, "bens_task": bens_task.id,
        "tag": manual.id,
    }  # fmt: skip


def login(client: FlaskClient, userid: str, page: str = "advisor") -> Any:
    return client.get(f"/wecom/{page}/login", query_string={"code": f"sandbox:{userid}"})


def signed_in(client: FlaskClient, userid: str) -> FlaskClient:
    response = login(client, userid)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


# Signing in


def test_login_without_a_code_goes_to_wecoms_authorize_url(client: FlaskClient, config: Any) -> None:
    response = client.get("/wecom/advisor/login", query_string={"next": "/wecom/advisor/members/7"})

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == config.WECOM_OAUTH_AUTHORIZE_URL
    assert location.fragment == "wechat_redirect"
    query = parse_qs(location.query)
    assert query["appid"] == [config.WECOM_CORP_ID]
    assert query["agentid"] == [config.WECOM_AGENT_ID]
    assert query["redirect_uri"] == ["http://localhost/wecom/advisor/login"]
    assert query["scope"] == ["snsapi_base"]
    assert query["state"] == ["/wecom/advisor/members/7"]


def test_login_with_a_code_sets_a_protected_cookie_and_returns_to_the_page(
    client: FlaskClient, mall: dict[str, Any]
) -> None:
    response = client.get(
        "/wecom/advisor/login", query_string={"code": "sandbox:ann", "state": "/wecom/advisor/members/1"}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/wecom/advisor/members/1"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/wecom/" in cookie
    assert "Secure" not in cookie  # development; any other APP_ENV sets it


def test_login_never_redirects_off_site(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = client.get(
        "/wecom/advisor/login", query_string={"code": "sandbox:ann", "state": "https://evil.example"}
    )

    assert response.headers["Location"] == "/wecom/advisor/"


def test_counter_staff_are_refused_the_advisor_pages(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = login(client, "sue")

    assert response.status_code == 403
    assert "导购工作台仅限导购和店长使用" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


def test_people_outside_the_staff_table_are_refused(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = login(client, "stranger")

    assert response.status_code == 403
    assert response.mimetype == "text/html"


def test_without_the_cookie_pages_redirect_to_the_login(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = client.get(f"/wecom/advisor/members/{mall['mine']}")

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/wecom/advisor/login"
    assert parse_qs(location.query)["next"] == [f"/wecom/advisor/members/{mall['mine']}"]


def test_a_forged_cookie_counts_as_none(client: FlaskClient, mall: dict[str, Any]) -> None:
    client.set_cookie("mm_staff_page", "eyJzdWIiOjF9.forged", path="/wecom/")

    assert client.get("/wecom/advisor/").status_code == 302


def test_a_deactivated_advisor_is_signed_out_at_once(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    signed_in(client, "ann")
    session.get_one(Staff, mall["ann"]).is_active = False
    session.commit()

    assert client.get("/wecom/advisor/").status_code == 302


# Today's tasks


def test_my_tasks_list_overdue_first_then_by_priority_with_counts_and_the_store_pool(
    client: FlaskClient, mall: dict[str, Any]
) -> None:
    html = page(signed_in(client, "ann"), "/wecom/advisor/")

    mine = re.findall(r'class="task" data-task-id="(\d+)"', html)
    assert mine == [str(mall["overdue"]), str(mall["urgent"])]
    assert re.findall(r'class="pool-task" data-task-id="(\d+)"', html) == [str(mall["pool_task"])]
    assert f'data-task-id="{mall["bens_task"]}"' not in html
    assert '<b id="count-open">2</b>' in html and '<b id="count-overdue">1</b>' in html
    assert "138****0001" in html and "13800000001" not in html
    assert "已逾期" in html and "VIP 邀约" in html and "生日祝福" in html


# A member's page


def test_the_member_page_shows_the_profile_purchases_tags_and_tasks(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    store = session.get_one(Store, mall["store1"])
    member = session.get_one(Member, mall["mine"])
    factories.create_purchase(
        session, store, 12_345, datetime.now(UTC) - timedelta(days=1), member, receipt_no="R-88"
    )
    session.commit()

    html = page(signed_in(client, "ann"), f"/wecom/advisor/members/{mall['mine']}")

    assert "138****0001" in html and "13800000001" not in html
    assert 'id="tier"' in html and "¥123.45" in html and "R-88" in html
    assert f'data-task-id="{mall["urgent"]}"' in html and f'data-task-id="{mall["overdue"]}"' in html
    assert "爱运动" in html  # a manual tag the advisor may set


def test_an_advisor_may_open_pool_members_of_their_store(client: FlaskClient, mall: dict[str, Any]) -> None:
    assert "138****0002" in page(signed_in(client, "ann"), f"/wecom/advisor/members/{mall['pooled']}")


@pytest.mark.parametrize("whose", ["bens", "elsewhere"])
def test_another_advisors_member_or_another_stores_is_a_403_page(
    client: FlaskClient, mall: dict[str, Any], whose: str
) -> None:
    response = signed_in(client, "ann").get(f"/wecom/advisor/members/{mall[whose]}")

    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "只能查看自己的会员或本店待认领的会员" in response.get_data(as_text=True)


def test_a_manager_may_open_any_member_of_their_store(client: FlaskClient, mall: dict[str, Any]) -> None:
    signed_in(client, "max")

    assert client.get(f"/wecom/advisor/members/{mall['bens']}").status_code == 200
    assert client.get(f"/wecom/advisor/members/{mall['elsewhere']}").status_code == 403


def test_an_unknown_member_is_a_404_page(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = signed_in(client, "ann").get("/wecom/advisor/members/999999")

    assert response.status_code == 404
    assert "会员不存在" in response.get_data(as_text=True)


# Completing a task


def complete(client: FlaskClient, task_id: int, token: str | None, **form: str) -> Any:
    body = {"outcome": "booked_visit", "note": "周六下午到店", **form}
    if token is not None:
        body["csrf_token"] = token
    return client.post(f"/wecom/advisor/tasks/{task_id}/complete", data=body)


def test_completing_a_task_records_outcome_and_note_once(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = csrf_of(page(signed_in(client, "ann"), "/wecom/advisor/"))

    first = complete(client, mall["urgent"], token)
    again = complete(client, mall["urgent"], token)

    assert first.status_code == again.status_code == 302
    task = session.get_one(AdvisorTask, mall["urgent"])
    assert (task.status, task.outcome.value, task.note) == (TaskStatus.DONE, "booked_visit", "周六下午到店")
    assert task.completed_by_staff_id == mall["ann"]
    html = page(client, f"/wecom/advisor/members/{mall['mine']}")
    assert "已预约到店" in html and "周六下午到店" in html


def test_a_different_outcome_after_done_is_a_clear_409_page(
    client: FlaskClient, mall: dict[str, Any]
) -> None:
    token = csrf_of(page(signed_in(client, "ann"), "/wecom/advisor/"))
    complete(client, mall["urgent"], token)

    response = complete(client, mall["urgent"], token, outcome="no_answer")

    assert response.status_code == 409
    assert "任务已完成" in response.get_data(as_text=True)


def test_completing_without_the_csrf_token_is_refused(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    signed_in(client, "ann")

    missing = complete(client, mall["urgent"], None)
    wrong = complete(client, mall["urgent"], "not-the-token")

    assert missing.status_code == wrong.status_code == 403
    assert "页面已过期" in missing.get_data(as_text=True)
    assert session.get_one(AdvisorTask, mall["urgent"]).status is TaskStatus.OPEN


def test_a_bad_outcome_is_a_chinese_422_page(client: FlaskClient, mall: dict[str, Any]) -> None:
    token = csrf_of(page(signed_in(client, "ann"), "/wecom/advisor/"))

    response = complete(client, mall["urgent"], token, outcome="teleported")

    assert response.status_code == 422
    assert "请选择跟进结果" in response.get_data(as_text=True)


def test_an_advisor_may_complete_a_store_pool_task_but_not_a_colleagues(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = csrf_of(page(signed_in(client, "ann"), "/wecom/advisor/"))

    assert complete(client, mall["pool_task"], token).status_code == 302
    assert complete(client, mall["bens_task"], token).status_code == 403
    assert session.get_one(AdvisorTask, mall["bens_task"]).status is TaskStatus.OPEN


# Correcting info and manual tags


def test_correcting_birthday_and_notes(client: FlaskClient, session: Session, mall: dict[str, Any]) -> None:
    token = csrf_of(page(signed_in(client, "ann"), f"/wecom/advisor/members/{mall['mine']}"))

    response = client.post(
        f"/wecom/advisor/members/{mall['mine']}/info",
        data={"csrf_token": token, "birthday": "1990-03-08", "advisor_note": "喜欢运动品牌，M 码"},
    )

    assert response.status_code == 302
    member = session.get_one(Member, mall["mine"])
    assert (member.birthday, member.advisor_note) == (date(1990, 3, 8), "喜欢运动品牌，M 码")
    assert "喜欢运动品牌，M 码" in page(client, f"/wecom/advisor/members/{mall['mine']}")


def test_a_malformed_birthday_is_refused_in_chinese(client: FlaskClient, mall: dict[str, Any]) -> None:
    token = csrf_of(page(signed_in(client, "ann"), f"/wecom/advisor/members/{mall['mine']}"))

    response = client.post(
        f"/wecom/advisor/members/{mall['mine']}/info", data={"csrf_token": token, "birthday": "3月8日"}
    )

    assert response.status_code == 422
    assert "生日格式不正确" in response.get_data(as_text=True)


def test_correcting_another_advisors_member_is_refused(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = csrf_of(page(signed_in(client, "ann"), f"/wecom/advisor/members/{mall['mine']}"))

    response = client.post(
        f"/wecom/advisor/members/{mall['bens']}/info", data={"csrf_token": token, "advisor_note": "x"}
    )

    assert response.status_code == 403
    assert session.get_one(Member, mall["bens"]).advisor_note is None


def change_tag(client: FlaskClient, member_id: int, tag_id: int, action: str) -> Any:
    token = csrf_of(page(client, f"/wecom/advisor/members/{member_id}"))
    return client.post(
        f"/wecom/advisor/members/{member_id}/tags",
        data={"csrf_token": token, "tag_id": tag_id, "action": action},
    )


def test_a_manual_tag_on_a_member_who_is_not_a_contact_is_kept_without_a_sync(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    signed_in(client, "ann")

    assert change_tag(client, mall["mine"], mall["tag"], "add").status_code == 302

    held = session.get_one(MemberTag, (mall["mine"], mall["tag"]))
    assert held.set_by_staff_id == mall["ann"]
    assert session.scalars(select(CorpTagSync)).all() == []


@pytest.fixture
def contact(session: Session, sandbox: SandboxProcess, mall: dict[str, Any]) -> str:
    """Ann's member is also Ann's WeCom external contact (in WeCom and in our table)."""
    added = sandbox.wecom_event("add_external_contact", "ann", unionid="union-mine")
    session.add(
        ExternalContact(
            external_userid=added["external_userid"],
            staff_id=mall["ann"],
            unionid="union-mine",
            member_id=mall["mine"],
        )
    )
    session.commit()
    return str(added["external_userid"])


def corp_tags_on(sandbox: SandboxProcess, external_userid: str) -> list[str]:
    contact = sandbox._control("wecom", "GET", f"external-contacts/{external_userid}")
    return [tag["tag_name"] for user in contact["follow_user"] for tag in user["tags"]]


def test_a_manual_tag_is_mirrored_to_a_wecom_corp_tag_on_the_advisors_contact(
    client: FlaskClient,
    session: Session,
    sandbox: SandboxProcess,
    config: Any,
    mall: dict[str, Any],
    contact: str,
) -> None:
    signed_in(client, "ann")

    change_tag(client, mall["mine"], mall["tag"], "add")

    assert corp_tags_on(sandbox, contact) == ["爱运动"]
    marks = [r for r in sandbox.requests("wecom") if r["path"] == "/cgi-bin/externalcontact/mark_tag"]
    assert [(m["json"]["userid"], m["json"]["external_userid"]) for m in marks] == [("ann", contact)]
    added = [r for r in sandbox.requests("wecom") if r["path"] == "/cgi-bin/externalcontact/add_corp_tag"]
    assert added[0]["json"]["group_name"] == config.WECOM_CORP_TAG_GROUP
    sync = session.scalars(select(CorpTagSync)).one()
    assert (sync.status, sync.attempts, sync.action.value) == (CorpTagSyncStatus.DONE, 1, "add")

    change_tag(client, mall["mine"], mall["tag"], "remove")

    assert corp_tags_on(sandbox, contact) == []
    assert session.get(MemberTag, (mall["mine"], mall["tag"])) is None
    # The corp tag existed by then: looked up, not added again.
    assert len([r for r in sandbox.requests("wecom") if r["path"].endswith("add_corp_tag")]) == 1


def test_a_failed_mirror_stays_pending_visible_and_is_retried(
    app: Flask,
    client: FlaskClient,
    session: Session,
    sandbox: SandboxProcess,
    mall: dict[str, Any],
    contact: str,
) -> None:
    signed_in(client, "ann")
    sandbox.inject_fault("wecom", "/cgi-bin/externalcontact/mark_tag", errcode=-1, errmsg="system busy")

    response = change_tag(client, mall["mine"], mall["tag"], "add")

    assert response.status_code == 302  # the tag is kept; WeCom is told later
    assert session.get(MemberTag, (mall["mine"], mall["tag"])) is not None
    sync = session.scalars(select(CorpTagSync)).one()
    assert (sync.status, sync.attempts) == (CorpTagSyncStatus.PENDING, 1)
    assert sync.last_error and sync.last_error.startswith("-1")
    assert "尚未同步到企业微信" in page(client, f"/wecom/advisor/members/{mall['mine']}")

    result = app.test_cli_runner().invoke(args=["wecom", "sync-corp-tags"])

    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get_one(CorpTagSync, sync.id).status is CorpTagSyncStatus.DONE
    assert corp_tags_on(sandbox, contact) == ["爱运动"]


def test_setting_a_rule_tag_by_hand_is_refused(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    rule_tag = Tag(code="vip", name="VIP", kind=TagKind.RULE, rule={})
    session.add(rule_tag)
    session.commit()
    signed_in(client, "ann")

    response = change_tag(client, mall["mine"], rule_tag.id, "add")

    assert response.status_code in (409, 422, 400)
    assert response.mimetype == "text/html"
    assert session.get(MemberTag, (mall["mine"], rule_tag.id)) is None


def test_an_advisor_claims_a_pool_member_from_the_task_list(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = csrf_of(page(signed_in(client, "ann"), "/wecom/advisor/"))

    response = client.post(f"/wecom/advisor/members/{mall['pooled']}/claim", data={"csrf_token": token})
    again = client.post(f"/wecom/advisor/members/{mall['pooled']}/claim", data={"csrf_token": token})

    assert response.status_code == 302
    assert session.get_one(Member, mall["pooled"]).advisor_id == mall["ann"]
    assert again.status_code == 409
    assert again.mimetype == "text/html"

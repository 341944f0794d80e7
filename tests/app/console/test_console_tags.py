"""Console pages of tags and segments: who may see and change them, the rule builder saving a rule the
nightly refresh then applies, its live preview counting the members the rule hits, segments with their
members and an Excel export with masked phones, and an audit row for every change and export."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import BytesIO
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.console import tag_pages
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import AuditEvent, Member, MemberTag, OperatorRole, Segment, Tier
from app.models.tag import Tag, TagKind
from app.services import segments
from tests import factories
from tests.app.console.console_flows import signed_in

DORMANT_ROWS = {"match": "all", "field": ["days_since_last_purchase"], "op": [">="], "value": ["90"]}


@pytest.fixture
def now(app: Flask) -> MallTime:
    with app.app_context():
        return MallTime.current(extensions().mall_tz)


@pytest.fixture
def mall(app: Flask, session: Session, now: MallTime) -> dict[str, Any]:
    """Two dormant members (last bought 120 days ago), one regular (3 days ago), one who never bought."""
    with app.app_context():
        vault = extensions().phone_vault
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, name="优衣库", category="服饰")

    def member(phone: str, nickname: str, bought_days_ago: int | None, points: int = 0) -> Member:
        created = factories.create_member(
            session,
            vault,
            phone,
            tiers[0],
            nickname=nickname,
            points_balance=points,
            joined_at=now.now - timedelta(days=400),
        )
        if bought_days_ago is not None:
            factories.create_purchase(
                session, store, 20_000, now.now - timedelta(days=bought_days_ago), created
            )
        return created

    return {
        "tiers": tiers,
        "sleepy": member("13800138001", "沉睡的 🐼", 120, points=500),
        "sleepier": member("13800138004", "=HYPERLINK(1)", 150, points=50),
        "regular": member("13800138002", "常客", 3, points=1_000),
        "newcomer": member("13800138003", "未消费", None),
    }


def refresh(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["tags", "refresh", "--batch-size", "2"])
    assert result.exit_code == 0, result.output


def rule_tag(session: Session, code: str = "dormant-90", rule: dict[str, Any] | None = None) -> Tag:
    tag = Tag(
        code=code,
        name="90天未消费",
        kind=TagKind.RULE,
        rule=rule or {"all": [{"field": "days_since_last_purchase", "op": ">=", "value": 90}]},
    )
    session.add(tag)
    session.flush()
    return tag


def segment_of(session: Session, rule: dict[str, Any], name: str = "高积分会员") -> Segment:
    segment = Segment(name=name, rule=rule)
    session.add(segment)
    session.flush()
    return segment


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def preview(client: FlaskClient, token: str, form: dict[str, Any]) -> Any:
    return client.post(
        "/console/rules/preview", data=form, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )


def preview_count(html: str) -> int:
    found = re.search(r"符合条件的会员：([\d,]+) 人", html)
    assert found, html
    return int(found.group(1).replace(",", ""))


# --- who may do what --------------------------------------------------------------------------------


@pytest.fixture
def targets(session: Session, mall: dict[str, Any]) -> dict[str, int]:
    return {
        "tag": rule_tag(session).id,
        "segment": segment_of(session, {"field": "points_balance", "op": ">=", "value": 100}).id,
    }


READ_PAGES = ("/console/tags", "/console/tags/{tag}", "/console/segments", "/console/segments/{segment}")
WRITE_PAGES = (
    "/console/tags/new",
    "/console/tags/{tag}/edit",
    "/console/segments/new",
    "/console/segments/{segment}/edit",
)
ACTIONS = (
    "/console/tags/new",
    "/console/tags/{tag}/edit",
    "/console/rules/preview",
    "/console/segments/new",
    "/console/segments/{segment}/edit",
    "/console/segments/{segment}/export",
    "/console/segments/{segment}/delete",
)


def test_strangers_are_sent_to_the_login(client: FlaskClient, targets: dict[str, int]) -> None:
    for page in READ_PAGES + WRITE_PAGES:
        response = client.get(page.format(**targets))
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/console/login?next="), page
    for action in ACTIONS:
        response = client.post(action.format(**targets), data={"csrf_token": "x"})
        assert response.status_code == 302 and response.headers["Location"] == "/console/login", action


@pytest.mark.parametrize("role", [OperatorRole.ADMIN, OperatorRole.MARKETING])
def test_admins_and_marketing_open_every_page(
    client: FlaskClient, session: Session, targets: dict[str, int], role: OperatorRole
) -> None:
    signed_in(client, session, role)

    for page in READ_PAGES + WRITE_PAGES:
        assert client.get(page.format(**targets)).status_code == 200, page
    nav = client.get("/console/").get_data(as_text=True)
    assert ">标签</a>" in nav and ">人群分组</a>" in nav


def test_an_auditor_reads_but_changes_and_exports_nothing(
    client: FlaskClient, session: Session, targets: dict[str, int]
) -> None:
    token = signed_in(client, session, OperatorRole.AUDITOR)

    for page in READ_PAGES:
        html = client.get(page.format(**targets)).get_data(as_text=True)
        assert "编辑" not in html and "新建" not in html and "导出" not in html, page
    for page in WRITE_PAGES:
        assert client.get(page.format(**targets)).status_code == 403, page
    for action in ACTIONS:
        response = client.post(action.format(**targets), data={"csrf_token": token, **DORMANT_ROWS})
        assert response.status_code == 403, action
    assert session.scalar(select(func.count()).select_from(Tag)) == 1
    assert session.scalar(select(func.count()).select_from(Segment)) == 1
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_a_store_manager_is_kept_out(client: FlaskClient, session: Session, targets: dict[str, int]) -> None:
    store = factories.create_store(session)
    token = signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=store.id)

    assert ">标签</a>" not in client.get("/console/").get_data(as_text=True)
    for page in READ_PAGES + WRITE_PAGES:
        response = client.get(page.format(**targets))
        assert response.status_code == 403, page
        assert "当前角色无权访问" in response.get_data(as_text=True)
    for action in ACTIONS:
        assert client.post(action.format(**targets), data={"csrf_token": token}).status_code == 403, action


def test_actions_without_the_csrf_token_are_refused(
    client: FlaskClient, session: Session, targets: dict[str, int]
) -> None:
    signed_in(client, session, OperatorRole.ADMIN)

    for action in ACTIONS:
        response = client.post(action.format(**targets), data={"csrf_token": "forged", **DORMANT_ROWS})
        assert response.status_code == 403, action
    assert session.scalar(select(func.count()).select_from(Segment)) == 1


# --- tags ---------------------------------------------------------------------------------------------


def test_the_builder_saves_a_rule_tag_that_the_refresh_applies(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    form = client.get("/console/tags/new").get_data(as_text=True)
    assert 'hx-post="/console/rules/preview" hx-trigger="change delay:400ms"' in form
    assert "距上次消费天数" in form and '<option value="tag"' not in form  # rule tags cannot read tags

    response = client.post(
        "/console/tags/new",
        data={"csrf_token": token, "code": "dormant-90", "name": "90天未消费", **DORMANT_ROWS},
    )

    assert response.status_code == 302
    tag = session.scalars(select(Tag)).one()
    assert response.headers["Location"] == f"/console/tags/{tag.id}"
    assert (tag.kind, tag.rule) == (
        TagKind.RULE,
        {"all": [{"field": "days_since_last_purchase", "op": ">=", "value": 90}]},
    )
    (created,) = audit_rows(session, "tag.create")
    assert created.target_id == str(tag.id) and created.detail["rule"] == tag.rule
    refresh(app)
    holders = set(session.scalars(select(MemberTag.member_id).where(MemberTag.tag_id == tag.id)))
    assert holders == {mall["sleepy"].id, mall["sleepier"].id}
    detail = client.get(f"/console/tags/{tag.id}").get_data(as_text=True)
    assert "138****8001" in detail and "13800138001" not in detail and "常客" not in detail
    listing = client.get("/console/tags").get_data(as_text=True)
    assert "距上次消费天数 ≥ 90" in listing and "RFM·重要价值" in listing


def test_the_preview_counts_the_members_the_rule_hits_and_follows_the_conditions(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    refresh(app)
    token = signed_in(client, session, OperatorRole.MARKETING)

    dormant = preview(client, token, DORMANT_ROWS)
    assert dormant.status_code == 200
    html = dormant.get_data(as_text=True)
    assert preview_count(html) == 2
    assert "138****8001" in html and "13800138001" not in html and "常客" not in html
    recent = preview(client, token, {**DORMANT_ROWS, "value": ["1"]})
    assert preview_count(recent.get_data(as_text=True)) == 3
    rich = {"match": "all", "field": ["points_balance"], "op": [">="], "value": ["100"]}
    assert preview_count(preview(client, token, rich).get_data(as_text=True)) == 2
    either = {
        "match": "any",
        "field": ["points_balance", "days_since_last_purchase"],
        "op": [">=", ">="],
        "value": ["100", "140"],
    }
    assert preview_count(preview(client, token, either).get_data(as_text=True)) == 3
    both = {**either, "match": "all"}
    assert preview_count(preview(client, token, both).get_data(as_text=True)) == 0


def test_the_preview_reads_tier_names_and_value_lists(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)
    normal: Tier = mall["tiers"][0]

    by_name = preview(client, token, {"field": ["tier"], "op": ["in"], "value": [f"{normal.name}，gold"]})

    assert preview_count(by_name.get_data(as_text=True)) == 4
    between = {"field": ["points_balance"], "op": ["between"], "value": ["50, 500"]}
    assert preview_count(preview(client, token, between).get_data(as_text=True)) == 2


def test_amounts_are_typed_and_shown_in_yuan_and_stored_in_fen(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    refresh(app)  # every purchase of the mall is ¥200
    token = signed_in(client, session, OperatorRole.MARKETING)
    spent = {"field": ["spend_365d_fen"], "op": [">="], "value": ["199.99"]}
    assert "近 365 天消费金额（元）" in client.get("/console/segments/new").get_data(as_text=True)
    assert preview_count(preview(client, token, spent).get_data(as_text=True)) == 3
    assert preview_count(preview(client, token, {**spent, "value": ["200.01"]}).get_data(as_text=True)) == 0
    refused = preview(client, token, {**spent, "value": ["200.001"]})
    assert refused.status_code == 422 and "金额应为数字（元），最多两位小数" in refused.get_data(as_text=True)

    response = client.post(
        "/console/segments/new", data={"csrf_token": token, "name": "消费满两百", **spent, "value": ["200"]}
    )

    assert response.status_code == 302
    segment = session.scalars(select(Segment)).one()
    assert segment.rule == {"all": [{"field": "spend_365d_fen", "op": ">=", "value": 20_000}]}
    assert "≥ ¥200.00" in client.get("/console/segments").get_data(as_text=True)
    form = client.get(f"/console/segments/{segment.id}/edit").get_data(as_text=True)
    assert 'name="value" aria-label="值" placeholder="值" value="200"' in form


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"field": ["points_balance"], "op": [">="], "value": ["很多"]}, "第 1 个条件的值：应为整数"),
        ({"field": ["tier"], "op": [">="], "value": ["gold"]}, "第 1 个条件的运算：字段 tier 支持的运算"),
        ({"field": ["tier"], "op": ["="], "value": ["黑卡"]}, "第 1 个条件的值：未知的值：黑卡"),
        ({"field": ["points_balance"], "op": ["between"], "value": ["9, 1"]}, "下限不能大于上限"),
        ({"field": ["points_balance"], "op": [">="], "value": [""]}, "第 1 个条件：请填写值"),
        ({"field": [""], "op": ["="], "value": ["1"]}, "第 1 个条件：请选择字段"),
        ({"field": [], "op": [], "value": []}, "请至少添加一个条件"),
        ({"rule_json": '{"all": [}'}, "规则 JSON 格式有误"),
        ({"rule_json": '{"all": [{"field": "nope", "op": "=", "value": 1}]}'}, "未知字段：nope"),
    ],
)
def test_an_invalid_rule_previews_as_a_chinese_error(
    client: FlaskClient, session: Session, mall: dict[str, Any], form: dict[str, Any], message: str
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)

    response = preview(client, token, form)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'class="error"' in html and "符合条件的会员" not in html


def test_bad_input_rerenders_the_form_with_the_message_and_saves_nothing(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    rule_tag(session, code="taken")
    cases = [
        ({"code": "Bad Code!", "name": "x", **DORMANT_ROWS}, 422, "标签编码：2–48 位小写字母"),
        ({"code": "fine", "name": "", **DORMANT_ROWS}, 422, "名称：长度应在 1 到 64 之间"),
        ({"code": "fine", "name": "x", **DORMANT_ROWS, "value": ["九十"]}, 422, "第 1 个条件的值：应为整数"),
        ({"code": "taken", "name": "x", **DORMANT_ROWS}, 409, "标签编码已存在"),
    ]
    for form, status, message in cases:
        response = client.post("/console/tags/new", data={"csrf_token": token, **form})
        html = response.get_data(as_text=True)
        assert response.status_code == status, form
        assert message in html, form
        assert f'value="{form["name"]}"' in html  # what was typed is kept
    assert set(session.scalars(select(Tag.code))) == {"taken"}
    assert audit_rows(session, "tag.create") == []


def test_editing_a_rule_tag_shows_its_rows_and_audits_the_change(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    tag = rule_tag(session)
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = client.get(f"/console/tags/{tag.id}/edit").get_data(as_text=True)
    assert '<option value="days_since_last_purchase" selected>' in form and 'value="90"' in form
    assert 'hx-trigger="change delay:400ms, load"' in form  # the current rule is counted at once

    response = client.post(
        f"/console/tags/{tag.id}/edit",
        data={"csrf_token": token, "name": "120天未消费", **DORMANT_ROWS, "value": ["120"]},
    )

    assert response.status_code == 302
    session.refresh(tag)
    assert tag.name == "120天未消费" and tag.active is False  # the box was left unticked
    assert tag.rule == {"all": [{"field": "days_since_last_purchase", "op": ">=", "value": 120}]}
    (updated,) = audit_rows(session, "tag.update")
    assert updated.detail["name"] == ["90天未消费", "120天未消费"]
    assert updated.detail["active"] == [True, False]
    assert updated.detail["rule"][1]["all"][0]["value"] == 120


def test_a_nested_rule_is_edited_as_json(client: FlaskClient, session: Session, mall: dict[str, Any]) -> None:
    nested = {
        "any": [
            {"all": [{"field": "points_balance", "op": ">=", "value": 100}]},
            {"field": "days_since_joined", "op": ">=", "value": 30},
        ]
    }
    tag = rule_tag(session, rule=nested)
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = client.get(f"/console/tags/{tag.id}/edit").get_data(as_text=True)
    assert 'name="rule_json"' in form and "points_balance" in form

    changed = {"all": [{"field": "points_balance", "op": ">=", "value": 1}]}
    response = client.post(
        f"/console/tags/{tag.id}/edit",
        data={"csrf_token": token, "name": "x", "active": "1", "rule_json": json.dumps(changed)},
    )

    assert response.status_code == 302
    session.refresh(tag)
    assert tag.rule == changed and tag.active is True


def test_a_manual_tag_is_renamed_without_a_rule(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    tag = Tag(code="vip-friend", name="老朋友", kind=TagKind.MANUAL)
    session.add(tag)
    session.flush()
    token = signed_in(client, session, OperatorRole.MARKETING)
    assert "data-rule-builder" not in client.get(f"/console/tags/{tag.id}/edit").get_data(as_text=True)

    response = client.post(
        f"/console/tags/{tag.id}/edit",
        data={"csrf_token": token, "name": "老朋友们", "description": "导购标记", "active": "1"},
    )

    assert response.status_code == 302
    session.refresh(tag)
    assert (tag.name, tag.description, tag.rule, tag.active) == ("老朋友们", "导购标记", None, True)
    (updated,) = audit_rows(session, "tag.update")
    assert updated.detail == {"name": ["老朋友", "老朋友们"], "description": [None, "导购标记"]}


def test_system_tags_cannot_be_edited(app: Flask, client: FlaskClient, session: Session, mall: dict) -> None:
    refresh(app)
    system = session.scalars(select(Tag).where(Tag.kind == TagKind.SYSTEM)).first()
    assert system is not None
    token = signed_in(client, session, OperatorRole.ADMIN)

    assert "编辑" not in client.get(f"/console/tags/{system.id}").get_data(as_text=True)
    response = client.post(f"/console/tags/{system.id}/edit", data={"csrf_token": token, "name": "x"})
    assert response.status_code == 409 and "系统标签不能修改" in response.get_data(as_text=True)
    assert client.get("/console/tags/99999").status_code == 404


def test_holders_are_paged_by_member_id(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any], monkeypatch: Any
) -> None:
    tag = rule_tag(session, rule={"field": "days_since_joined", "op": ">=", "value": 1})
    refresh(app)
    signed_in(client, session, OperatorRole.AUDITOR)
    monkeypatch.setattr(tag_pages, "PAGE_SIZE", 3)

    first = client.get(f"/console/tags/{tag.id}").get_data(as_text=True)
    ids = sorted(member.id for key, member in mall.items() if key != "tiers")
    assert f"/console/tags/{tag.id}?after={ids[2]}" in first and "下一页" in first
    second = client.get(f"/console/tags/{tag.id}?after={ids[2]}").get_data(as_text=True)
    assert "138****8003" in second and "下一页" not in second and "第一页" in second
    assert client.get(f"/console/tags/{tag.id}?after=abc").status_code == 422


# --- segments -----------------------------------------------------------------------------------------


def test_a_segment_is_built_from_tags_and_lists_its_members(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    rule_tag(session)
    refresh(app)
    token = signed_in(client, session, OperatorRole.MARKETING)
    assert '<option value="tag"' in client.get("/console/segments/new").get_data(as_text=True)

    response = client.post(
        "/console/segments/new",
        data={
            "csrf_token": token,
            "name": "沉睡高积分",
            "description": "唤醒对象",
            "match": "all",
            "field": ["tag", "points_balance"],
            "op": ["=", ">="],
            "value": ["dormant-90", "100"],
        },
    )

    assert response.status_code == 302
    segment = session.scalars(select(Segment)).one()
    assert segment.rule == {
        "all": [
            {"field": "tag", "op": "=", "value": "dormant-90"},
            {"field": "points_balance", "op": ">=", "value": 100},
        ]
    }
    (created,) = audit_rows(session, "segment.create")
    assert created.target_id == str(segment.id)
    detail = client.get(f"/console/segments/{segment.id}").get_data(as_text=True)
    assert "当前人数：1" in detail and "138****8001" in detail and "13800138001" not in detail
    assert "已有标签 = 90天未消费 且 积分余额 ≥ 100" in detail
    listing = client.get("/console/segments").get_data(as_text=True)
    assert "沉睡高积分" in listing and "唤醒对象" in listing


def test_editing_a_segment_changes_its_members_and_is_audited(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    segment = segment_of(session, {"field": "points_balance", "op": ">=", "value": 100})
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = client.get(f"/console/segments/{segment.id}/edit").get_data(as_text=True)
    assert '<option value="points_balance" selected>' in form

    bad = client.post(
        f"/console/segments/{segment.id}/edit",
        data={
            "csrf_token": token,
            "name": "高积分会员",
            "field": ["points_balance"],
            "op": ["in"],
            "value": ["x"],
        },
    )
    assert bad.status_code == 422 and "第 1 个条件的运算" in bad.get_data(as_text=True)
    response = client.post(
        f"/console/segments/{segment.id}/edit",
        data={
            "csrf_token": token,
            "name": "千分会员",
            "field": ["points_balance"],
            "op": [">="],
            "value": ["1000"],
        },
    )

    assert response.status_code == 302
    assert "当前人数：1" in client.get(f"/console/segments/{segment.id}").get_data(as_text=True)
    (updated,) = audit_rows(session, "segment.update")
    assert updated.detail["name"] == ["高积分会员", "千分会员"]


def test_a_taken_segment_name_is_a_clear_error(client: FlaskClient, session: Session, mall: dict) -> None:
    segment_of(session, {"field": "points_balance", "op": ">=", "value": 100})
    token = signed_in(client, session, OperatorRole.MARKETING)

    response = client.post(
        "/console/segments/new",
        data={
            "csrf_token": token,
            "name": "高积分会员",
            "field": ["points_balance"],
            "op": [">="],
            "value": ["1"],
        },
    )

    assert response.status_code == 409 and "人群名称已存在" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Segment)) == 1


def test_the_export_opens_in_excel_with_masked_phones_and_is_audited(
    client: FlaskClient, session: Session, mall: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(segments, "EXPORT_BATCH", 2)  # three members: read in two batches
    segment = segment_of(session, {"field": "points_balance", "op": ">=", "value": 50})
    token = signed_in(client, session, OperatorRole.MARKETING)

    response = client.post(f"/console/segments/{segment.id}/export", data={"csrf_token": token})

    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in response.headers["Content-Disposition"]
    sheet = load_workbook(BytesIO(response.data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == ["会员号", "昵称", "手机号（脱敏）", "会员等级", "积分余额", "入会时间"]
    members = [mall["sleepy"], mall["sleepier"], mall["regular"]]
    assert [row[0] for row in rows[1:]] == sorted(member.id for member in members)
    assert {row[2] for row in rows[1:]} == {"138****8001", "138****8004", "138****8002"}
    assert not any("1380013800" in str(value) for row in rows for value in row)
    formula = next(row for row in rows[1:] if row[0] == mall["sleepier"].id)
    assert formula[1] == "=HYPERLINK(1)"
    assert (
        next(sheet.iter_rows(min_row=1 + rows.index(formula), max_row=1 + rows.index(formula)))[1].data_type
        == "s"
    )
    (exported,) = audit_rows(session, "segment.export")
    assert exported.target_id == str(segment.id) and exported.detail["members"] == 3


def test_a_segment_is_deleted_with_an_audit_row(client: FlaskClient, session: Session, mall: dict) -> None:
    segment = segment_of(session, {"field": "points_balance", "op": ">=", "value": 50})
    token = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post(f"/console/segments/{segment.id}/delete", data={"csrf_token": token})

    assert response.status_code == 302 and response.headers["Location"] == "/console/segments"
    assert session.scalar(select(func.count()).select_from(Segment)) == 0
    (deleted,) = audit_rows(session, "segment.delete")
    assert deleted.detail["name"] == "高积分会员"

"""Operators build tags and read segments and KPIs over HTTP; the nightly refresh runs as the CLI does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.mall_time import MallTime
from app.models import Member, MemberTagHistory
from tests import factories
from tests.flows import bearer, operator_login

API = "/api/admin/v1"
DORMANT_RULE = {"all": [{"field": "days_since_last_purchase", "op": ">=", "value": 90}]}


@pytest.fixture
def now(app: Flask) -> MallTime:
    with app.app_context():
        return MallTime.current(extensions().mall_tz)


@pytest.fixture
def mall(app: Flask, session: Session, now: MallTime) -> dict[str, Any]:
    with app.app_context():
        vault = extensions().phone_vault
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, name="优衣库", category="服饰")
    factories.create_operator(session, "ops", "correct-horse")

    def member(phone: str, nickname: str, bought_days_ago: int | None) -> Member:
        created = factories.create_member(
            session, vault, phone, tiers[0], nickname=nickname, joined_at=now.now - timedelta(days=400)
        )
        if bought_days_ago is not None:
            factories.create_purchase(
                session, store, 20_000, now.now - timedelta(days=bought_days_ago), created
            )
        return created

    return {
        "store": store,
        "sleepy": member("13800138001", "沉睡的 🐼", 120),
        "regular": member("13800138002", "常客", 3),
        "newcomer": member("13800138003", "未消费", None),
    }


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


def refresh(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["tags", "refresh", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_rule_builder_lists_fields_operators_and_choices(client: FlaskClient, admin: dict) -> None:
    fields = {
        field["field"]: field for field in client.get(f"{API}/tag-rules/fields", headers=admin).get_json()
    }

    assert fields["tier"]["choices"] == ["diamond", "gold", "normal", "silver"]
    assert fields["days_since_last_purchase"]["label"] == "距上次消费天数"
    assert "between" in fields["spend_365d_fen"]["ops"]
    assert fields["lifecycle_stage"]["choices"] == ["new", "active", "dormant", "churned"]


def test_a_preview_counts_and_samples_the_members_hit_with_masked_phones(
    app: Flask, client: FlaskClient, admin: dict, mall: dict
) -> None:
    refresh(app)

    response = client.post(f"{API}/tag-rules/preview", json={"rule": DORMANT_RULE}, headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 1
    assert [(m["id"], m["nickname"], m["phone_masked"]) for m in body["sample"]] == [
        (mall["sleepy"].id, "沉睡的 🐼", "138****8001")
    ]


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "days_since_last_purchase", "op": "≥", "value": 90},
        {"all": [{"field": "nope", "op": "=", "value": 1}]},
        {"any": "not a list"},
        {},
    ],
)
def test_a_malformed_rule_is_a_clear_422(client: FlaskClient, admin: dict, rule: dict) -> None:
    response = client.post(f"{API}/tag-rules/preview", json={"rule": rule}, headers=admin)

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "INVALID_TAG_RULE"
    assert body["message"].startswith("标签规则有误：rule")
    assert body["details"]["path"].startswith("rule")


def test_a_rule_tag_is_materialised_like_its_preview_and_follows_the_members(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, session: Session, now: MallTime
) -> None:
    created = client.post(
        f"{API}/tags",
        json={"code": "dormant-90", "name": "90天未消费", "kind": "rule", "rule": DORMANT_RULE},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    tag_id = created.get_json()["id"]

    output = refresh(app)
    preview = client.post(f"{API}/tag-rules/preview", json={"rule": DORMANT_RULE}, headers=admin).get_json()
    listed = {tag["code"]: tag for tag in client.get(f"{API}/tags", headers=admin).get_json()}
    holders = client.get(f"{API}/tags/{tag_id}/members", headers=admin).get_json()

    assert "stats" in output and "total" in output
    assert listed["dormant-90"]["members"] == preview["count"] == 1
    assert [holder["id"] for holder in holders] == [mall["sleepy"].id]
    assert listed["lifecycle:dormant"]["kind"] == "system"

    factories.create_purchase(session, mall["store"], 5_000, now.now, mall["sleepy"])  # back in the mall
    refresh(app)
    history_rows = session.scalar(select(func.count()).select_from(MemberTagHistory))
    refresh(app)  # a second run changes nothing
    tags_of_sleepy = client.get(f"{API}/members/{mall['sleepy'].id}/tags", headers=admin).get_json()

    assert client.get(f"{API}/tags/{tag_id}/members", headers=admin).get_json() == []
    assert "dormant-90" not in {tag["code"] for tag in tags_of_sleepy["current"]}
    assert "lifecycle:active" in {tag["code"] for tag in tags_of_sleepy["current"]}
    ended = {entry["code"]: entry for entry in tags_of_sleepy["history"]}
    assert set(ended) == {"dormant-90", "lifecycle:dormant", "rfm:general_retain"}
    assert (
        ended["dormant-90"]["source"] == "rule"
        and ended["dormant-90"]["until"] >= ended["dormant-90"]["since"]
    )
    assert session.scalar(select(func.count()).select_from(MemberTagHistory)) == history_rows


def test_manual_tags_are_set_and_removed_by_people_and_rules_leave_them(
    app: Flask, client: FlaskClient, admin: dict, mall: dict
) -> None:
    tag = client.post(
        f"{API}/tags", json={"code": "vip-invited", "name": "已邀约", "kind": "manual"}, headers=admin
    )
    tag_id = tag.get_json()["id"]
    member_id = mall["newcomer"].id
    url = f"{API}/members/{member_id}/tags/{tag_id}"

    assert client.put(url, headers=admin).status_code == 204
    assert client.put(url, headers=admin).status_code == 204  # idempotent
    refresh(app)
    kept = client.get(f"{API}/members/{member_id}/tags", headers=admin).get_json()
    assert client.delete(url, headers=admin).status_code == 204
    after = client.get(f"{API}/members/{member_id}/tags", headers=admin).get_json()

    assert ("vip-invited", "manual") in {(t["code"], t["source"]) for t in kept["current"]}
    assert "vip-invited" not in {t["code"] for t in after["current"]}
    assert [t["code"] for t in after["history"]] == ["vip-invited"]


def test_a_missed_night_is_caught_up_as_that_day_ended(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, now: MallTime
) -> None:
    """The sleepy member last bought 120 days ago: dormant today, still active 40 days ago."""
    forty_days_ago = now.today - timedelta(days=40)

    result = app.test_cli_runner().invoke(args=["tags", "refresh", "--as-of", forty_days_ago.isoformat()])

    assert result.exit_code == 0, result.output
    assert f"as of {forty_days_ago}" in result.output
    current = client.get(f"{API}/members/{mall['sleepy'].id}/tags", headers=admin).get_json()["current"]
    assert {tag["code"] for tag in current} >= {"lifecycle:active"}
    (since,) = [tag["since"] for tag in current if tag["code"] == "lifecycle:active"]
    assert datetime.fromisoformat(since) == MallTime.closing(forty_days_ago, now.tz).now
    kpis = client.get(
        f"{API}/kpis", query_string={"from": forty_days_ago, "to": forty_days_ago}, headers=admin
    ).get_json()
    assert [(day["business_date"], day["active_30d"]) for day in kpis] == [(forty_days_ago.isoformat(), 0)]


def test_system_and_rule_tags_cannot_be_set_by_hand(
    client: FlaskClient, admin: dict, mall: dict, app: Flask
) -> None:
    refresh(app)
    system_tag = next(t for t in client.get(f"{API}/tags", headers=admin).get_json() if t["kind"] == "system")

    response = client.put(f"{API}/members/{mall['newcomer'].id}/tags/{system_tag['id']}", headers=admin)
    edited = client.put(f"{API}/tags/{system_tag['id']}", json={"name": "x", "active": True}, headers=admin)

    assert (response.status_code, response.get_json()["code"]) == (409, "TAG_NOT_MANUAL")
    assert (edited.status_code, edited.get_json()["code"]) == (409, "TAG_READ_ONLY")


def test_a_rule_tag_needs_a_valid_rule_and_a_free_code(client: FlaskClient, admin: dict, mall: dict) -> None:
    def create(**body: Any) -> Any:
        return client.post(
            f"{API}/tags", json={"code": "t1", "name": "标签", "kind": "rule", **body}, headers=admin
        )

    missing = create()
    uses_tags = create(rule={"field": "tag", "op": "=", "value": "lifecycle:new"})
    first, taken = create(rule=DORMANT_RULE), create(rule=DORMANT_RULE)

    assert (missing.status_code, missing.get_json()["code"]) == (422, "INVALID_TAG_RULE")
    assert uses_tags.status_code == 422
    assert (first.status_code, taken.status_code, taken.get_json()["code"]) == (201, 409, "TAG_CODE_TAKEN")


def test_deactivating_a_rule_tag_empties_it_at_the_next_refresh(
    app: Flask, client: FlaskClient, admin: dict, mall: dict
) -> None:
    tag_id = client.post(
        f"{API}/tags",
        json={"code": "dormant-90", "name": "90天未消费", "kind": "rule", "rule": DORMANT_RULE},
        headers=admin,
    ).get_json()["id"]
    refresh(app)

    client.put(
        f"{API}/tags/{tag_id}",
        json={"name": "90天未消费", "rule": DORMANT_RULE, "active": False},
        headers=admin,
    )
    refresh(app)

    assert client.get(f"{API}/tags/{tag_id}/members", headers=admin).get_json() == []


def test_segmentation_settings(client: FlaskClient, admin: dict) -> None:
    defaults = client.get(f"{API}/segmentation-settings", headers=admin).get_json()
    changed = client.put(
        f"{API}/segmentation-settings",
        json={
            "rfm_window_days": 180,
            "new_member_days": 14,
            "dormant_after_days": 60,
            "churned_after_days": 120,
        },
        headers=admin,
    )
    out_of_order = client.put(
        f"{API}/segmentation-settings",
        json={
            "rfm_window_days": 180,
            "new_member_days": 14,
            "dormant_after_days": 120,
            "churned_after_days": 120,
        },
        headers=admin,
    )

    assert defaults == {
        "rfm_window_days": 365,
        "new_member_days": 30,
        "dormant_after_days": 90,
        "churned_after_days": 180,
    }
    assert changed.status_code == 200 and changed.get_json()["dormant_after_days"] == 60
    assert out_of_order.status_code == 422
    assert client.get(f"{API}/segmentation-settings", headers=admin).get_json()["churned_after_days"] == 120


def test_kpi_trend_after_the_refresh(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, now: MallTime
) -> None:
    refresh(app)
    today = now.today.isoformat()

    response = client.get(f"{API}/kpis?from={today}&to={today}", headers=admin)
    per_store = client.get(f"{API}/kpis?from={today}&to={today}&store_id={mall['store'].id}", headers=admin)
    backwards = client.get(
        f"{API}/kpis?from={today}&to={(now.today - timedelta(days=1)).isoformat()}", headers=admin
    )

    assert response.status_code == 200
    (day,) = response.get_json()
    assert (day["business_date"], day["members_total"], day["active_30d"]) == (today, 3, 1)
    assert day["activation_rate"] == round(1 / 3, 4)
    assert day["repurchase_rate"] == 0.0
    assert day["tier_distribution"]["normal"] == 3
    assert per_store.get_json()[0]["store_id"] == mall["store"].id
    assert backwards.status_code == 422


def test_operators_only(client: FlaskClient, mall: dict) -> None:
    assert client.post(f"{API}/tag-rules/preview", json={"rule": DORMANT_RULE}).status_code == 401
    assert client.get(f"{API}/kpis?from=2026-01-01&to=2026-01-02").status_code == 401


def test_a_segment_combines_tags_counts_live_and_is_a_campaign_audience(
    app: Flask, client: FlaskClient, admin: dict, mall: dict, session: Session
) -> None:
    client.post(
        f"{API}/tags",
        json={"code": "dormant-90", "name": "90天未消费", "kind": "rule", "rule": DORMANT_RULE},
        headers=admin,
    )
    refresh(app)
    rule = {
        "any": [
            {"field": "tag", "op": "=", "value": "dormant-90"},
            {"field": "tag", "op": "=", "value": "lifecycle:active"},
        ]
    }
    created = client.post(f"{API}/segments", json={"name": "唤醒对象", "rule": rule}, headers=admin)
    segment_id = created.get_json()["id"]
    template = factories.create_coupon_template(session)

    members = client.get(f"{API}/segments/{segment_id}/members", headers=admin).get_json()
    campaign = client.post(
        f"{API}/coupon-campaigns",
        json={"name": "唤醒券", "template_id": template.id, "segment_id": segment_id},
        headers=admin,
    )
    in_use = client.delete(f"{API}/segments/{segment_id}", headers=admin)

    assert created.status_code == 201, created.get_json()
    assert created.get_json()["members"] == 2
    assert [m["id"] for m in members] == sorted([mall["sleepy"].id, mall["regular"].id])
    assert campaign.status_code == 201, campaign.get_json()
    assert (campaign.get_json()["segment_id"], campaign.get_json()["total"]) == (segment_id, 2)
    assert (in_use.status_code, in_use.get_json()["code"]) == (409, "SEGMENT_IN_USE")
    assert client.get(f"{API}/segments", headers=admin).get_json()[0]["members"] == 2


def test_segments_refuse_bad_rules_taken_names_and_ambiguous_campaigns(
    client: FlaskClient, admin: dict, mall: dict, session: Session
) -> None:
    body = {"name": "常客", "rule": {"field": "purchase_count_30d", "op": ">=", "value": 1}}
    first = client.post(f"{API}/segments", json=body, headers=admin)
    again = client.post(f"{API}/segments", json=body, headers=admin)
    unknown_tag = client.post(
        f"{API}/segments",
        json={"name": "x", "rule": {"field": "tag", "op": "=", "value": "nope"}},
        headers=admin,
    )
    template = factories.create_coupon_template(session)
    both = client.post(
        f"{API}/coupon-campaigns",
        json={
            "name": "券",
            "template_id": template.id,
            "segment_id": first.get_json()["id"],
            "member_ids": [1],
        },
        headers=admin,
    )
    empty = client.post(
        f"{API}/coupon-campaigns",
        json={"name": "券", "template_id": template.id, "segment_id": first.get_json()["id"]},
        headers=admin,
    )

    assert first.status_code == 201 and first.get_json()["members"] == 0  # no refresh yet: no statistics
    assert (again.status_code, again.get_json()["code"]) == (409, "SEGMENT_NAME_TAKEN")
    assert (unknown_tag.status_code, unknown_tag.get_json()["code"]) == (422, "INVALID_TAG_RULE")
    assert both.status_code == 422
    assert empty.status_code == 422 and "需要 1 到" in empty.get_json()["message"]
    assert client.delete(f"{API}/segments/{first.get_json()['id']}", headers=admin).status_code == 204

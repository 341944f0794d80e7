"""Console coupon templates: who may see and change them, the live issue/use figures, the create and
edit forms (Chinese errors, nothing saved when refused), publish / pause, the audit trail, and a
template made in the console being claimable by a shopper."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.extensions import extensions, mall_time
from app.models import (
    AuditEvent,
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    OperatorRole,
    TemplateStatus,
)
from app.services import coupons
from tests import factories
from tests.app.console.console_flows import csrf_of, signed_in
from tests.flows import bearer, registered_shopper
from tests.observe import statements_during

PAGES = ("/console/coupons", "/console/coupons/new")
FORM = {
    "kind": "cash_off",
    "name": "满200减30",
    "description": "全场通用",
    "face_value_fen": "30",
    "min_spend_fen": "200.00",
    "total_stock": "500",
    "per_member_limit": "2",
    "per_member_daily_limit": "0",
    "points_price": "0",
    "validity_mode": "relative",
    "valid_days_after_issue": "15",
}


def post_form(client: FlaskClient, path: str, token: str, form: dict[str, Any]) -> Any:
    return client.post(path, data={**form, "csrf_token": token})


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def field_error(html: str, field: str) -> str:
    found = re.search(rf'<span class="field-error" data-field="{field}">([^<]*)</span>', html)
    assert found, f"no error shown for {field}"
    return found.group(1)


def template_row(html: str, template_id: int) -> dict[str, str]:
    row = html.split(f'<tr data-template="{template_id}">', 1)[1].split("</tr>", 1)[0]
    return dict(re.findall(r'data-stat="(\w+)">([^<]*)<', row))


def members(app: Flask, session: Session, count: int) -> list[int]:
    tier = factories.create_tiers(session)[0]
    with app.app_context():
        vault = extensions().phone_vault
    return [factories.create_member(session, vault, f"137{n:08d}", tier).id for n in range(count)]


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_strangers_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "path", ["/console/coupons/new", "/console/coupons/1/publish", "/console/coupons/1/pause"]
)
def test_strangers_cannot_post(client: FlaskClient, session: Session, path: str) -> None:
    response = client.post(path, data=FORM)

    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


def test_a_store_manager_is_refused_every_coupon_page_and_action(
    client: FlaskClient, session: Session
) -> None:
    store = factories.create_store(session)
    template = factories.create_coupon_template(session, status=TemplateStatus.DRAFT)
    token = signed_in(client, session, OperatorRole.STORE_MANAGER, store_id=store.id)

    pages = [client.get(path) for path in (*PAGES, f"/console/coupons/{template.id}/edit")]
    publish = client.post(f"/console/coupons/{template.id}/publish", data={"csrf_token": token})

    assert [page.status_code for page in pages] == [403, 403, 403]
    assert "当前角色无权访问" in pages[0].get_data(as_text=True)
    assert publish.status_code == 403
    assert session.get_one(CouponTemplate, template.id, populate_existing=True).status is TemplateStatus.DRAFT
    assert "优惠券" not in client.get("/console/").get_data(as_text=True).split("</nav>")[0]


def test_an_auditor_reads_the_list_but_cannot_create_edit_or_publish(
    client: FlaskClient, session: Session
) -> None:
    template = factories.create_coupon_template(session, status=TemplateStatus.DRAFT)
    token = signed_in(client, session, OperatorRole.AUDITOR)

    listing = client.get("/console/coupons")
    new_form = client.get("/console/coupons/new")
    created = post_form(client, "/console/coupons/new", token, FORM)
    published = client.post(f"/console/coupons/{template.id}/publish", data={"csrf_token": token})

    assert listing.status_code == 200 and "满100减20" in listing.get_data(as_text=True)
    assert "新建券模板" not in listing.get_data(as_text=True)
    assert (new_form.status_code, created.status_code, published.status_code) == (403, 403, 403)
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 1
    assert session.get_one(CouponTemplate, template.id, populate_existing=True).status is TemplateStatus.DRAFT


# --- create, publish, claim ------------------------------------------------------------------------


def test_a_template_created_and_published_in_the_console_is_claimable_by_a_shopper(
    client: FlaskClient, session: Session
) -> None:
    factories.create_tiers(session)
    shopper_token, _ = registered_shopper(client, "o-console-coupon", "13900139001")
    operator_client = client.application.test_client()
    token = signed_in(operator_client, session, OperatorRole.MARKETING)
    form_token = csrf_of(operator_client.get("/console/coupons/new").get_data(as_text=True))

    created = post_form(operator_client, "/console/coupons/new", form_token, FORM)
    template = session.scalars(select(CouponTemplate)).one()
    claim_path = f"/api/mp/v1/coupon-templates/{template.id}/claims"
    draft_claim = client.post(
        claim_path, headers={**bearer(shopper_token), "Idempotency-Key": uuid.uuid4().hex}
    )
    published = operator_client.post(f"/console/coupons/{template.id}/publish", data={"csrf_token": token})
    claim = client.post(claim_path, headers={**bearer(shopper_token), "Idempotency-Key": uuid.uuid4().hex})

    assert created.status_code == 302 and created.headers["Location"].startswith("/console/coupons")
    assert (template.kind, template.name, template.face_value_fen, template.min_spend_fen) == (
        CouponKind.CASH_OFF,
        "满200减30",
        3_000,
        20_000,
    )
    assert (template.total_stock, template.per_member_limit, template.valid_days_after_issue) == (500, 2, 15)
    assert template.status is TemplateStatus.DRAFT
    assert draft_claim.status_code != 201
    assert published.status_code == 302
    assert claim.status_code == 201, claim.get_json()
    assert (claim.get_json()["face_value_fen"], claim.get_json()["source"]) == (3_000, "claim")
    assert session.get_one(CouponTemplate, template.id, populate_existing=True).remaining_stock == 499
    (creation,) = audit_rows(session, "coupon_template.create")
    assert creation.target_id == str(template.id)
    assert creation.detail["after"]["face_value_fen"] == 3_000
    (publication,) = audit_rows(session, "coupon_template.publish")
    assert publication.detail == {"status": ["draft", "active"]}


def test_a_fixed_window_discount_in_some_stores_and_tiers_is_saved_as_typed(
    client: FlaskClient, session: Session
) -> None:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, category="餐饮")
    factories.create_store(session, category="服饰")
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = {
        "kind": "discount",
        "name": "金卡八八折",
        "discount_percent": "88",
        "max_discount_fen": "50.5",
        "min_spend_fen": "",
        "face_value_fen": "30",  # left from an earlier choice of kind: ignored
        "total_stock": "100",
        "per_member_limit": "1",
        "points_price": "200",
        "validity_mode": "fixed",
        "valid_from": "2026-12-01T10:00",
        "valid_until": "2026-12-31T22:00",
        "valid_days_after_issue": "30",  # the other validity mode: ignored
        "store_ids": [str(food.id)],
        "store_categories": ["餐饮"],
        "eligible_tier_ids": [str(tiers[2].id)],
        "refund_points_on_expiry": "1",
    }

    response = post_form(client, "/console/coupons/new", token, form)

    assert response.status_code == 302, response.get_data(as_text=True)
    template = session.scalars(select(CouponTemplate)).one()
    assert (template.discount_percent, template.max_discount_fen, template.face_value_fen) == (88, 5_050, 0)
    assert (template.points_price, template.refund_points_on_expiry) == (200, True)
    assert (template.store_ids, template.store_categories, template.eligible_tier_ids) == (
        [food.id],
        ["餐饮"],
        [tiers[2].id],
    )
    # Mall time (UTC+8) on the form, UTC in the database.
    assert template.valid_from.isoformat() == "2026-12-01T02:00:00+00:00"
    assert template.valid_until.isoformat() == "2026-12-31T14:00:00+00:00"
    assert template.valid_days_after_issue is None
    edit = client.get(f"/console/coupons/{template.id}/edit").get_data(as_text=True)
    assert 'name="valid_from" value="2026-12-01T10:00"' in edit
    assert 'name="max_discount_fen" value="50.50"' in edit


# --- refused input -------------------------------------------------------------------------------


def test_bad_input_is_shown_again_in_chinese_and_nothing_is_saved(
    client: FlaskClient, session: Session
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    form = {
        **FORM,
        "name": "",
        "face_value_fen": "三十",
        "total_stock": "-5",
        "valid_days_after_issue": "abc",
    }

    response = post_form(client, "/console/coupons/new", token, form)

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "提交的内容有误" in html
    assert field_error(html, "name") == "必填"
    assert field_error(html, "face_value_fen") == "金额应为数字，最多两位小数"
    assert "不能小于 1" in field_error(html, "total_stock") or "应在 1 到" in field_error(html, "total_stock")
    assert field_error(html, "valid_days_after_issue") == "应为整数"
    assert 'value="三十"' in html  # what was typed is kept
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0
    assert audit_rows(session, "coupon_template.create") == []


def test_terms_the_service_refuses_are_shown_beside_their_field(
    client: FlaskClient, session: Session
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)

    response = post_form(client, "/console/coupons/new", token, {**FORM, "min_spend_fen": "10"})
    no_kind = post_form(client, "/console/coupons/new", token, {**FORM, "kind": ""})
    no_dates = post_form(client, "/console/coupons/new", token, {**FORM, "validity_mode": "fixed"})

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "优惠券的优惠内容设置有误" in html
    assert field_error(html, "min_spend_fen") == "使用门槛不能低于减免金额；0 表示无门槛"
    assert no_kind.status_code == 422
    assert field_error(no_kind.get_data(as_text=True), "kind") == "请选择券类型"
    assert no_dates.status_code == 422
    assert field_error(no_dates.get_data(as_text=True), "valid_until") == "固定有效期须同时填写开始和结束时间"
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


# --- list and stats ------------------------------------------------------------------------------


def test_the_list_counts_issued_and_used_coupons_live(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    member_ids = members(app, session, 3)
    template = factories.create_coupon_template(session, name="三张券", total_stock=10)
    untouched = factories.create_coupon_template(session, name="没人领", status=TemplateStatus.PAUSED)
    with app.app_context():
        for member_id in member_ids:
            run_transaction(
                lambda s, m=member_id: coupons.issue_by_system(
                    s, template.id, m, source=CouponSource.CAMPAIGN, key=f"t:{m}", at=mall_time()
                )
            )
    session.execute(
        update(Coupon)
        .where(Coupon.member_id == member_ids[0])
        .values(status=CouponStatus.USED, used_at=utcnow())
    )
    signed_in(client, session, OperatorRole.MARKETING)

    html = client.get("/console/coupons").get_data(as_text=True)
    only_paused = client.get("/console/coupons?status=paused").get_data(as_text=True)

    assert template_row(html, template.id) == {
        "issued": "3",
        "used": "1",
        "conversion": "33.3%",
        "remaining": "7 / 10",
    }
    assert template_row(html, untouched.id) == {
        "issued": "0",
        "used": "0",
        "conversion": "—",
        "remaining": "100 / 100",
    }
    assert "没人领" in only_paused and "三张券" not in only_paused


def test_the_list_reads_coupon_counts_in_one_grouped_statement_whatever_the_number_of_templates(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    for n in range(12):
        factories.create_coupon_template(session, name=f"券{n:02d}")
    signed_in(client, session, OperatorRole.MARKETING)

    seen = statements_during(app, lambda: client.get("/console/coupons"))

    on_coupons = [statement for statement in seen if " coupons" in statement]
    assert len(on_coupons) == 1 and "group by" in on_coupons[0]


def test_the_list_pages_by_twenty(client: FlaskClient, session: Session) -> None:
    for n in range(21):
        factories.create_coupon_template(session, name=f"券{n:02d}")
    signed_in(client, session, OperatorRole.ADMIN)

    first = client.get("/console/coupons").get_data(as_text=True)
    second = client.get("/console/coupons?page=2").get_data(as_text=True)

    assert "券20" in first and "券00" not in first and "第 1 / 2 页" in first
    assert "券00" in second and "券20" not in second


# --- edit, pause ---------------------------------------------------------------------------------


def test_an_edit_is_saved_and_audited_field_by_field(client: FlaskClient, session: Session) -> None:
    template = factories.create_coupon_template(session)
    token = signed_in(client, session, OperatorRole.MARKETING)
    form = csrf_of(client.get(f"/console/coupons/{template.id}/edit").get_data(as_text=True))
    assert form == token

    response = post_form(
        client,
        f"/console/coupons/{template.id}/edit",
        token,
        {**FORM, "name": "满100减20", "face_value_fen": "20", "min_spend_fen": "100", "total_stock": "300"},
    )

    assert response.status_code == 302
    stored = session.get_one(CouponTemplate, template.id, populate_existing=True)
    assert (stored.total_stock, stored.remaining_stock, stored.per_member_limit) == (300, 300, 2)
    (row,) = audit_rows(session, "coupon_template.update")
    assert row.detail["total_stock"] == [100, 300]
    assert row.detail["valid_days_after_issue"] == [30, 15]
    assert "name" not in row.detail


def test_stock_below_what_was_issued_is_refused_on_the_form(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    template = factories.create_coupon_template(session, total_stock=10, remaining_stock=4)
    token = signed_in(client, session, OperatorRole.MARKETING)

    response = post_form(client, f"/console/coupons/{template.id}/edit", token, {**FORM, "total_stock": "5"})

    assert response.status_code == 409
    assert "库存不能少于已发放数量" in response.get_data(as_text=True)
    assert session.get_one(CouponTemplate, template.id, populate_existing=True).total_stock == 10
    assert audit_rows(session, "coupon_template.update") == []


def test_pausing_stops_claims_and_is_audited(client: FlaskClient, session: Session) -> None:
    template = factories.create_coupon_template(session)
    token = signed_in(client, session, OperatorRole.ADMIN)

    paused = client.post(f"/console/coupons/{template.id}/pause", data={"csrf_token": token})
    again = client.post(f"/console/coupons/{template.id}/pause", data={"csrf_token": token})

    assert paused.status_code == 302
    assert (
        session.get_one(CouponTemplate, template.id, populate_existing=True).status is TemplateStatus.PAUSED
    )
    assert again.status_code == 409 and "当前状态不能执行该操作" in again.get_data(as_text=True)
    (row,) = audit_rows(session, "coupon_template.pause")
    assert (row.target_id, row.detail) == (str(template.id), {"status": ["active", "paused"]})

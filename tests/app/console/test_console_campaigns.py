"""Console coupon campaigns: issue a template to a segment, follow the progress (an htmx fragment while it
runs), cancel; who may do what, Chinese errors, the audit trail."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction
from app.extensions import extensions, mall_time
from app.jobs import run_campaign
from app.models import (
    AuditEvent,
    CampaignStatus,
    Coupon,
    CouponCampaign,
    OperatorRole,
    Segment,
    TemplateStatus,
)
from app.services import segments
from tests import factories
from tests.app.console.console_flows import signed_in

EVERYONE = {"field": "days_since_joined", "op": ">=", "value": 0}


def members(app: Flask, session: Session, count: int) -> list[int]:
    tier = factories.create_tiers(session)[0]
    with app.app_context():
        vault = extensions().phone_vault
    return [factories.create_member(session, vault, f"138{n:08d}", tier).id for n in range(count)]


def segment(app: Flask, name: str = "全部会员", rule: dict | None = None) -> Segment:
    with app.app_context():
        return run_transaction(
            lambda s: segments.create_segment(
                s, name=name, rule=rule or EVERYONE, description=None, operator_id=None, at=mall_time()
            )
        )


def campaign_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(CouponCampaign)) or 0)


@pytest.mark.parametrize(
    "path", ["/console/campaigns", "/console/campaigns/new", "/console/campaigns/1/progress"]
)
def test_strangers_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


def test_a_store_manager_is_refused_and_an_auditor_only_reads(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    members(app, session, 1)
    template = factories.create_coupon_template(session)
    audience = segment(app)
    manager_client = app.test_client()
    signed_in(
        manager_client, session, OperatorRole.STORE_MANAGER, store_id=factories.create_store(session).id
    )
    token = signed_in(client, session, OperatorRole.AUDITOR)
    form = {"name": "审计员发券", "template_id": template.id, "segment_id": audience.id, "csrf_token": token}

    manager_pages = [
        manager_client.get(path).status_code for path in ("/console/campaigns", "/console/campaigns/new")
    ]
    listing = client.get("/console/campaigns")
    auditor_form = client.get("/console/campaigns/new")
    auditor_post = client.post("/console/campaigns/new", data=form)

    assert manager_pages == [403, 403]
    assert listing.status_code == 200 and "新建发券活动" not in listing.get_data(as_text=True)
    assert (auditor_form.status_code, auditor_post.status_code) == (403, 403)
    assert campaign_count(session) == 0


def test_a_campaign_created_in_the_console_runs_and_its_progress_shows_the_issued_count(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    member_ids = members(app, session, 3)
    template = factories.create_coupon_template(session, name="老客回馈券", total_stock=50)
    audience = segment(app)
    token = signed_in(client, session, OperatorRole.MARKETING)
    form_page = client.get("/console/campaigns/new").get_data(as_text=True)

    created = client.post(
        "/console/campaigns/new",
        data={"name": "老客回馈", "template_id": template.id, "segment_id": audience.id, "csrf_token": token},
    )
    campaign = session.scalars(select(CouponCampaign)).one()
    pending = client.get("/console/campaigns").get_data(as_text=True)
    with app.app_context():
        run_campaign(campaign.id)
    fragment = client.get(f"/console/campaigns/{campaign.id}/progress").get_data(as_text=True)
    done = client.get("/console/campaigns").get_data(as_text=True)

    assert "老客回馈券" in form_page and "全部会员" in form_page
    assert created.status_code == 302
    assert (campaign.name, campaign.template_id, campaign.segment_id) == (
        "老客回馈",
        template.id,
        audience.id,
    )
    assert sorted(campaign.member_ids) == sorted(member_ids)
    # While it waits or runs, the row asks for its progress every 2 s; once done, it stops asking.
    assert (
        f'hx-get="/console/campaigns/{campaign.id}/progress"' in pending
        and 'hx-trigger="every 2s"' in pending
    )
    assert "等待执行" in pending and "已发放 0 / 3" in pending
    assert "已完成" in fragment and "已发放 3 / 3" in fragment and "hx-get" not in fragment
    assert "已发放 3 / 3" in done and "hx-trigger" not in done
    assert (
        session.scalar(select(func.count()).select_from(Coupon).where(Coupon.campaign_id == campaign.id)) == 3
    )
    (row,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "coupon_campaign.create")).all()
    assert row.target_id == str(campaign.id)
    assert row.detail["after"] == {
        "name": "老客回馈",
        "template_id": template.id,
        "segment_id": audience.id,
        "members": 3,
    }


def test_a_campaign_without_a_segment_or_name_is_refused_in_chinese(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    members(app, session, 1)
    template = factories.create_coupon_template(session)
    token = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post(
        "/console/campaigns/new",
        data={"name": "", "template_id": template.id, "segment_id": "", "csrf_token": token},
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'data-field="segment_id">请选择目标人群<', html)
    assert re.search(r'data-field="name">必填<', html)
    assert campaign_count(session) == 0


def test_an_empty_segment_or_an_unknown_template_is_refused_on_the_form(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    members(app, session, 1)
    template = factories.create_coupon_template(session)
    nobody = segment(app, "没有人", {"field": "days_since_joined", "op": ">=", "value": 9999})
    token = signed_in(client, session, OperatorRole.ADMIN)

    empty = client.post(
        "/console/campaigns/new",
        data={"name": "空人群", "template_id": template.id, "segment_id": nobody.id, "csrf_token": token},
    )
    unknown = client.post(
        "/console/campaigns/new",
        data={"name": "无模板", "template_id": 999999, "segment_id": segment(app).id, "csrf_token": token},
    )

    assert empty.status_code == 422 and "人群「没有人」当前有 0 位会员" in empty.get_data(as_text=True)
    assert unknown.status_code == 422 and "券模板不存在" in unknown.get_data(as_text=True)
    assert campaign_count(session) == 0


def test_cancelling_a_pending_campaign_is_audited_and_only_once(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    members(app, session, 2)
    template = factories.create_coupon_template(session, status=TemplateStatus.ACTIVE)
    audience = segment(app)
    token = signed_in(client, session, OperatorRole.MARKETING)
    client.post(
        "/console/campaigns/new",
        data={"name": "待取消", "template_id": template.id, "segment_id": audience.id, "csrf_token": token},
    )
    campaign = session.scalars(select(CouponCampaign)).one()

    cancelled = client.post(f"/console/campaigns/{campaign.id}/cancel", data={"csrf_token": token})
    again = client.post(f"/console/campaigns/{campaign.id}/cancel", data={"csrf_token": token})

    assert cancelled.status_code == 302
    assert (
        session.get_one(CouponCampaign, campaign.id, populate_existing=True).status
        is CampaignStatus.CANCELLED
    )
    assert again.status_code == 409 and "已结束或已取消" in again.get_data(as_text=True)
    (row,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "coupon_campaign.cancel")).all()
    assert row.detail == {"status": ["pending", "cancelled"]}

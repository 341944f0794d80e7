"""Operators issue a coupon to a list of members; the run is batched, resumable and never issues twice."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.jobs import run_campaign
from app.models import Coupon, CouponCampaign, CouponSource
from tests import factories
from tests.flows import bearer, operator_login


def members(app: Flask, session: Session, count: int) -> list[int]:
    tier = factories.create_tiers(session)[0]
    with app.app_context():
        vault = extensions().phone_vault
    return [factories.create_member(session, vault, f"136{n:08d}", tier).id for n in range(count)]


def test_a_campaign_issues_to_every_listed_member_once(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    member_ids = members(app, session, 7)
    template = factories.create_coupon_template(session, total_stock=100)
    factories.create_operator(session)
    admin = bearer(operator_login(client))

    created = client.post(
        "/api/admin/v1/coupon-campaigns",
        json={"name": "老客回馈", "template_id": template.id, "member_ids": member_ids + member_ids[:2]},
        headers=admin,
    )
    with app.app_context():
        outcome = run_campaign(created.get_json()["id"], batch_size=3)

    assert created.status_code == 201
    assert (created.get_json()["status"], created.get_json()["total"]) == ("pending", 7)
    assert outcome == f"campaign {created.get_json()['id']}: 7 issued, 0 skipped of 7"
    done = client.get(f"/api/admin/v1/coupon-campaigns/{created.get_json()['id']}", headers=admin).get_json()
    assert (done["status"], done["processed"], done["issued"], done["skipped"]) == ("completed", 7, 7, 0)
    holders = session.scalars(select(Coupon.member_id).where(Coupon.source == CouponSource.CAMPAIGN)).all()
    assert sorted(holders) == sorted(member_ids)


def test_an_interrupted_campaign_resumes_without_issuing_twice(app: Flask, session: Session) -> None:
    from app.services import campaigns

    member_ids = members(app, session, 5)
    template = factories.create_coupon_template(session, total_stock=100)
    with app.app_context():
        from app.db import run_transaction

        campaign = run_transaction(
            lambda s: campaigns.create_campaign(
                s, name="中断测试", template_id=template.id, member_ids=member_ids, operator_id=None
            )
        )
        # A run that issued to the first three members and died before recording progress.
        from app.extensions import mall_time

        for member_id in member_ids[:3]:
            run_transaction(
                lambda s, m=member_id: campaigns.issue_to_member(
                    s, campaign.id, template.id, m, at=mall_time()
                )
            )
        outcome = run_campaign(campaign.id, batch_size=2)

    assert outcome.endswith("5 issued, 0 skipped of 5")
    assert session.scalar(select(func.count()).select_from(Coupon)) == 5
    assert app.test_cli_runner().invoke(args=["coupons", "verify"]).exit_code == 0


def test_members_beyond_the_stock_are_skipped(app: Flask, session: Session) -> None:
    member_ids = members(app, session, 4)
    template = factories.create_coupon_template(session, total_stock=3)
    session.add(CouponCampaign(name="限量", template_id=template.id, member_ids=member_ids))
    session.commit()
    campaign_id = session.scalars(select(CouponCampaign.id)).one()

    output = app.test_cli_runner().invoke(args=["jobs", "run", "run-campaigns"]).output

    assert f"campaign {campaign_id}: 3 issued, 1 skipped of 4" in output
    assert "no campaigns to run" in app.test_cli_runner().invoke(args=["jobs", "run", "run-campaigns"]).output


def test_campaigns_reject_unknown_members_and_templates(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    member_ids = members(app, session, 1)
    template = factories.create_coupon_template(session)
    factories.create_operator(session)
    admin = bearer(operator_login(client))

    unknown_member = client.post(
        "/api/admin/v1/coupon-campaigns",
        json={"name": "x", "template_id": template.id, "member_ids": [*member_ids, 999_999]},
        headers=admin,
    )
    unknown_template = client.post(
        "/api/admin/v1/coupon-campaigns",
        json={"name": "x", "template_id": 999_999, "member_ids": member_ids},
        headers=admin,
    )
    empty = client.post(
        "/api/admin/v1/coupon-campaigns",
        json={"name": "x", "template_id": template.id, "member_ids": []},
        headers=admin,
    )

    assert unknown_member.status_code == 422 and "999999" in str(unknown_member.get_json()["details"])
    assert unknown_template.status_code == 404
    assert empty.status_code == 422


def test_a_cancelled_campaign_stops_and_cannot_be_cancelled_twice(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    member_ids = members(app, session, 2)
    template = factories.create_coupon_template(session)
    factories.create_operator(session)
    admin = bearer(operator_login(client))
    campaign_id = client.post(
        "/api/admin/v1/coupon-campaigns",
        json={"name": "取消", "template_id": template.id, "member_ids": member_ids},
        headers=admin,
    ).get_json()["id"]

    cancelled = client.post(f"/api/admin/v1/coupon-campaigns/{campaign_id}/cancel", headers=admin)
    again = client.post(f"/api/admin/v1/coupon-campaigns/{campaign_id}/cancel", headers=admin)
    missing = client.post("/api/admin/v1/coupon-campaigns/999999/cancel", headers=admin)
    run = app.test_cli_runner().invoke(args=["jobs", "run", "run-campaigns"]).output

    assert cancelled.get_json()["status"] == "cancelled"
    assert (again.status_code, again.get_json()["code"]) == (409, "CAMPAIGN_NOT_RUNNABLE")
    assert missing.status_code == 404
    assert "no campaigns to run" in run
    assert session.scalar(select(func.count()).select_from(Coupon)) == 0

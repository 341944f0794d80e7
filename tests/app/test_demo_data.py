"""`flask seed-demo` fills an empty database with a mall worth clicking through."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    Coupon,
    CouponCampaign,
    CouponTemplate,
    Member,
    Operator,
    Purchase,
    QrScene,
    Segment,
    Staff,
    StaffRole,
    Store,
    Tier,
)
from app.models.tag import Tag, TagKind


def test_seed_demo_builds_the_demo_mall_once(app: Flask, session: Session) -> None:
    runner = app.test_cli_runner()

    first = runner.invoke(args=["seed-demo", "--members", "120"])
    second = runner.invoke(args=["seed-demo"])

    assert first.exit_code == 0, first.output
    assert "Seeded demo mall" in first.output
    assert "already present" in second.output
    count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
    assert count(Store) >= 10
    assert len(set(session.scalars(select(Store.category)))) >= 4
    assert [t.name for t in session.scalars(select(Tier).order_by(Tier.rank))] == [
        "普卡",
        "银卡",
        "金卡",
        "钻石卡",
    ]
    assert count(Member) == 120
    assert count(Purchase) > 120
    assert (
        session.scalars(select(Staff).where(Staff.wecom_userid == "staff01")).one().role
        is StaffRole.STORE_STAFF
    )
    advisors = session.scalars(select(Staff.wecom_userid).where(Staff.role == StaffRole.ADVISOR)).all()
    assert {f"advisor{n:02d}" for n in range(1, 21)} <= set(advisors)
    assert session.scalars(select(Operator.username)).all() == ["admin"]
    # Marketing set up through the services: something on every console page.
    assert count(QrScene) == 4
    assert session.scalar(select(func.count()).where(Member.signup_scene_id.is_not(None))) > 0
    assert count(CouponTemplate) == 4
    assert count(Coupon) == 60
    assert count(Segment) == 2
    assert session.scalars(select(Tag.code).where(Tag.kind == TagKind.RULE)).all() == ["big-spender"]
    assert count(CouponCampaign) == 1


def test_the_demo_logins_work(app: Flask) -> None:
    seeded = app.test_cli_runner().invoke(args=["seed-demo", "--members", "10"])
    assert seeded.exit_code == 0, seeded.output
    client = app.test_client()

    admin = client.post("/api/admin/v1/auth/login", json={"username": "admin", "password": "mallmember-demo"})
    staff = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})

    assert admin.status_code == 200
    assert staff.status_code == 200

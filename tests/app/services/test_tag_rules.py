"""Tag rules on a small hand-built mall with known answers: every field and operator, boundaries
(exactly N days, birthdays across the new year and 29 February), nesting, and malformed rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import nightly
from app.db import transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import (
    Coupon,
    CouponSource,
    CouponStatus,
    Member,
    QrScene,
    SceneKind,
    StaffRole,
    Tag,
    TagKind,
)
from app.services import tags
from app.services.tag_rules import InvalidTagRule
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = MallTime(datetime(2026, 12, 28, 12, tzinfo=SHANGHAI).astimezone(UTC), SHANGHAI)


def noon(days_ago: int, at: MallTime = AT) -> datetime:
    return at.start_of(at.today - timedelta(days=days_ago)) + timedelta(hours=12)


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    """Six members, each different in the ways the rules below tell apart (as of 2026-12-28)."""
    with app.app_context():
        vault = extensions().phone_vault
    normal, silver, *_ = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    fashion = factories.create_store(session, name="优衣库", category="服饰")
    advisor = factories.create_staff(session, "adv01", StaffRole.ADVISOR, store_id=fashion.id)
    scene = QrScene(kind=SceneKind.STORE, name="优衣库门口", scene="store-fashion", store_id=fashion.id)
    session.add(scene)
    session.flush()
    phones = iter(range(13100000000, 13199999999))

    def member(name: str, joined_days_ago: int, **overrides: Any) -> Member:
        return factories.create_member(
            session,
            vault,
            str(next(phones)),
            normal,
            nickname=name,
            joined_at=noon(joined_days_ago),
            **overrides,
        )

    people = {
        # Bought 90 days ago exactly, twice in the year; birthday on 2 January (within 5 days).
        "amy": member("amy", 400, birthday=date(1990, 1, 2), points_balance=500),
        # Bought yesterday and 20 days ago at the tea shop; silver; advisor-bound; joined via the scene.
        "bo": member(
            "bo",
            200,
            tier_id=silver.id,
            advisor_id=advisor.id,
            signup_scene_id=scene.id,
            points_balance=1_200,
        ),
        # Bought 89 days ago; birthday 27 December (yesterday: not within).
        "cai": member("cai", 300, birthday=date(1985, 12, 27)),
        # Never bought, joined 10 days ago; a coupon ending in 3 days.
        "dan": member("dan", 10, birthday=date(2000, 12, 31)),
        # Big spender long ago (churned); birthday 29 February.
        "eve": member("eve", 800, birthday=date(1992, 2, 29), points_balance=99_000),
        # Joined 30 days ago exactly, never bought.
        "fay": member("fay", 30),
    }
    buy = factories.create_purchase
    buy(session, fashion, 30_000, noon(90), people["amy"])
    buy(session, fashion, 10_000, noon(200), people["amy"])
    buy(session, food, 5_000, noon(1), people["bo"])
    buy(session, food, 7_000, noon(20), people["bo"])
    buy(session, fashion, 2_000, noon(20), people["bo"])
    buy(session, food, 8_000, noon(89), people["cai"])
    buy(session, fashion, 900_000, noon(300), people["eve"])
    template = factories.create_coupon_template(session)
    session.add(
        Coupon(
            template_id=template.id,
            member_id=people["dan"].id,
            source=CouponSource.CLAIM,
            idempotency_key="dan-coupon",
            status=CouponStatus.AVAILABLE,
            valid_from=noon(5),
            valid_until=AT.start_of(AT.today + timedelta(days=4)),  # the end of business day today + 3
            issued_at=noon(5),
            issued_on=AT.today - timedelta(days=5),
            **template.terms(),
        )
    )
    manual = Tag(code="vip-invited", name="已邀约", kind=TagKind.MANUAL)
    session.add(manual)
    session.flush()
    nightly.refresh(app, AT, steps=("stats", "rfm"))
    with transaction(app) as work:
        tags.set_manual_tag(work, people["bo"].id, manual.id, at=AT)
    return {"people": people, "food": food, "fashion": fashion, "scene": scene}


def hits(app: Flask, rule: dict[str, Any], at: MallTime = AT) -> set[str]:
    with transaction(app) as session:
        preview = tags.preview(session, rule, at)
        assert preview.count == len(preview.sample)  # fewer than the sample size here
        return {row.nickname for row in preview.sample}


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("days_since_last_purchase", ">=", 90), {"amy", "eve"}),
        (cond("days_since_last_purchase", ">", 89), {"amy", "eve"}),
        (cond("days_since_last_purchase", "<", 90), {"bo", "cai"}),
        (cond("days_since_last_purchase", "<=", 89), {"bo", "cai"}),
        (cond("days_since_last_purchase", "=", 1), {"bo"}),
        (cond("days_since_last_purchase", "!=", 1), {"amy", "cai", "eve"}),
        (cond("days_since_last_purchase", "between", [89, 90]), {"amy", "cai"}),
        (cond("purchase_count_30d", ">=", 2), {"bo"}),
        (cond("purchase_count_30d", "=", 0), {"amy", "cai", "dan", "eve", "fay"}),
        (cond("purchase_count_90d", "=", 1), {"cai"}),  # 90 days ago is outside the last 90 days
        (cond("purchase_count_365d", "=", 2), {"amy"}),
        (cond("spend_365d_fen", ">", 100_000), {"eve"}),
        (cond("spend_90d_fen", "between", [8_000, 30_000]), {"bo", "cai"}),
        (cond("avg_ticket_365d_fen", ">=", 20_000), {"amy", "eve"}),
        (cond("favourite_category", "=", "餐饮"), {"bo", "cai"}),
        (cond("favourite_category", "in", ["服饰", "超市"]), {"amy", "eve"}),
        (cond("tier", "=", "silver"), {"bo"}),
        (cond("tier", "not_in", ["silver"]), {"amy", "cai", "dan", "eve", "fay"}),
        (cond("points_balance", ">", 1_000), {"bo", "eve"}),
        (cond("coupon_expiring_within_days", "<=", 3), {"dan"}),
        (cond("coupon_expiring_within_days", "<=", 2), set()),
        (cond("birthday_within_days", "<=", 5), {"amy", "dan"}),  # 31 Dec and 2 Jan, across the new year
        (cond("days_since_joined", "<=", 30), {"dan", "fay"}),
        (cond("days_since_joined", "<", 30), {"dan"}),
        (cond("lifecycle_stage", "=", "churned"), {"eve"}),
        (cond("lifecycle_stage", "in", ["dormant", "new"]), {"amy", "dan", "fay"}),
        (cond("has_advisor", "=", True), {"bo"}),
        (cond("has_advisor", "=", False), {"amy", "cai", "dan", "eve", "fay"}),
        (cond("tag", "=", "vip-invited"), {"bo"}),
        (cond("tag", "not_in", ["vip-invited"]), {"amy", "cai", "dan", "eve", "fay"}),
        (
            {
                "any": [
                    cond("tier", "=", "silver"),
                    {"all": [cond("points_balance", ">", 0), cond("purchase_count_365d", ">", 1)]},
                ]
            },
            {"amy", "bo"},
        ),
    ],
)
def test_each_field_and_operator(app: Flask, mall: dict, rule: dict[str, Any], expected: set[str]) -> None:
    assert hits(app, rule) == expected


def test_signup_scene_and_store(app: Flask, mall: dict) -> None:
    store_id, scene_id = mall["fashion"].id, mall["scene"].id

    assert hits(app, cond("signup_store_id", "=", store_id)) == {"bo"}
    assert hits(app, cond("signup_scene_id", "in", [scene_id])) == {"bo"}
    assert hits(app, cond("signup_store_id", "!=", store_id)) == {"amy", "cai", "dan", "eve", "fay"}


def test_rfm_segment_field(app: Flask, mall: dict) -> None:
    assert hits(app, cond("rfm_segment", "=", "no_purchase")) == {"dan", "fay"}


def test_a_29_february_birthday_counts_on_28_february_in_other_years(app: Flask, mall: dict) -> None:
    before_march = MallTime(datetime(2027, 2, 27, 12, tzinfo=SHANGHAI).astimezone(UTC), SHANGHAI)

    assert "eve" in hits(app, cond("birthday_within_days", "<=", 1), at=before_march)
    assert "eve" not in hits(app, cond("birthday_within_days", "<=", 0), at=before_march)


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"field": "height", "op": "=", "value": 1}, "rule.field"),
        (cond("tier", ">", "gold"), "rule.op"),
        (cond("points_balance", ">", "100"), "rule.value"),
        (cond("points_balance", ">", True), "rule.value"),
        (cond("points_balance", ">", -1), "rule.value"),
        (cond("points_balance", "between", [10]), "rule.value"),
        (cond("points_balance", "between", [10, 5]), "rule.value"),
        (cond("tier", "in", []), "rule.value"),
        (cond("tier", "=", "platinum"), "rule.value"),
        (cond("birthday_within_days", "<=", 400), "rule.value"),
        ({"all": []}, "rule.all"),
        ({"all": [cond("points_balance", ">", 1)], "any": []}, "rule"),
        ({"field": "points_balance", "op": ">"}, "rule"),
        ([cond("points_balance", ">", 1)], "rule"),
        (
            {"all": [{"all": [{"all": [{"all": [{"all": [cond("points_balance", ">", 1)]}]}]}]}]},
            "rule.all[0].all[0].all[0].all[0]",
        ),
    ],
)
def test_malformed_rules_are_refused_naming_the_faulty_part(
    app: Flask, mall: dict, rule: Any, path: str
) -> None:
    with pytest.raises(InvalidTagRule) as refused:
        hits(app, rule)

    assert refused.value.details["path"] == path
    assert refused.value.message.startswith("标签规则有误")

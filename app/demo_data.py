"""A believable demo mall: stores, tiers, staff, an operator, members and their purchases, and some
marketing set up in the console's way (registration QR scenes, coupon templates with claims, a rule tag,
segments and a pending coupon campaign).

Deterministic (seeded RNG) so screenshots and docs stay stable between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.mall_time import MallTime
from app.models import CouponKind, Member, MemberSource, Operator, SceneKind, Staff, StaffRole, Store, Tier
from app.models.tag import TagKind
from app.pii import PhoneVault
from app.services import (
    campaigns,
    coupon_templates,
    coupons,
    points,
    purchases,
    rewards,
    scenes,
    segments,
    tags,
)
from app.services.authentication import hash_password

DEMO_ADMIN_USERNAME = "admin"
DEMO_ADMIN_PASSWORD = "mallmember-demo"

TIERS = [
    # code, name, rank, min annual spend (fen), multiplier %, free parking minutes/day
    ("normal", "普卡", 1, 0, 100, 0),
    ("silver", "银卡", 2, 500_000, 120, 60),
    ("gold", "金卡", 3, 2_000_000, 150, 120),
    ("diamond", "钻石卡", 4, 5_000_000, 200, 240),
]

STORES = [
    ("F1-01", "星巴克臻选", "餐饮", "1F"),
    ("F1-02", "海底捞火锅", "餐饮", "5F"),
    ("F1-03", "喜茶", "餐饮", "B1"),
    ("F2-01", "优衣库", "服饰", "2F"),
    ("F2-02", "ZARA", "服饰", "2F"),
    ("F2-03", "李宁", "服饰", "3F"),
    ("F1-10", "丝芙兰", "美妆", "1F"),
    ("F1-11", "雅诗兰黛", "美妆", "1F"),
    ("F4-01", "孩子王", "母婴", "4F"),
    ("F4-02", "乐高授权专卖店", "母婴", "4F"),
    ("F3-01", "华为授权体验店", "数码", "3F"),
    ("B1-01", "Ole' 精品超市", "超市", "B1"),
]

# Typical basket in fen per category: (low, high).
BASKETS = {
    "餐饮": (3_000, 60_000),
    "服饰": (15_000, 200_000),
    "美妆": (20_000, 300_000),
    "母婴": (10_000, 150_000),
    "数码": (50_000, 900_000),
    "超市": (5_000, 80_000),
}

NICKNAMES = [
    "小王",
    "Lily🌸",
    "阿杰",
    "陈女士",
    "张先生",
    "Momo😊",
    "林林",
    "大卫",
    "小鱼🐟",
    "Anna",
    None,
    None,
]


@dataclass(frozen=True)
class DemoSummary:
    stores: int
    staff: int
    members: int
    purchases: int


def is_seeded(session: Session) -> bool:
    return session.scalar(select(Operator.id).limit(1)) is not None


def create_standard_tiers(session: Session) -> list[Tier]:
    """普卡 / 银卡 / 金卡 / 钻石卡, lowest rank first."""
    tiers = [
        Tier(
            code=code,
            name=name,
            rank=rank,
            min_annual_spend_fen=spend,
            points_multiplier_percent=multiplier,
            free_parking_minutes_per_day=parking,
        )
        for code, name, rank, spend, multiplier, parking in TIERS
    ]
    session.add_all(tiers)
    session.flush()
    return tiers


def seed_demo_mall(
    session: Session, vault: PhoneVault, tz: ZoneInfo, *, member_count: int = 300, seed: int = 20261125
) -> DemoSummary:
    rng = random.Random(seed)
    now = datetime.now(UTC)

    tiers = create_standard_tiers(session)
    stores = [
        Store(code=code, name=name, category=category, floor=floor) for code, name, category, floor in STORES
    ]
    session.add_all(stores)
    session.flush()

    staff = [
        Staff(wecom_userid="staff01", name="收银员小周", role=StaffRole.STORE_STAFF, store_id=stores[0].id),
        Staff(wecom_userid="manager01", name="运营经理老郑", role=StaffRole.MANAGER),
    ]
    advisors = [
        Staff(
            wecom_userid=f"advisor{n:02d}",
            name=f"顾问{n:02d}",
            role=StaffRole.ADVISOR,
            store_id=stores[(n - 1) % len(stores)].id,
        )
        for n in range(1, 21)
    ]
    session.add_all(staff + advisors)
    session.add(
        Operator(
            username=DEMO_ADMIN_USERNAME,
            display_name="商场运营",
            password_hash=hash_password(DEMO_ADMIN_PASSWORD),
        )
    )
    session.flush()

    members: list[Member] = []
    for n in range(member_count):
        protected = vault.protect(f"139{n:08d}")
        joined = now - timedelta(days=rng.randint(0, 720), minutes=rng.randint(0, 1440))
        members.append(
            Member(
                phone_ciphertext=protected.ciphertext,
                phone_index=protected.blind_index,
                phone_masked=protected.masked,
                nickname=rng.choice(NICKNAMES),
                birthday=date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28))
                if rng.random() < 0.7
                else None,
                tier_id=tiers[0].id,
                advisor_id=rng.choice(advisors).id if rng.random() < 0.6 else None,
                source=rng.choice([MemberSource.WECHAT, MemberSource.WECHAT, MemberSource.POS]),
                joined_at=joined,
            )
        )
    session.add_all(members)
    session.flush()

    # Points come only through the ledger, so the demo passes `flask points verify`.
    settings = points.points_settings(session)
    manager = staff[1]
    purchase_count = 0
    for member in members:
        rewards.reward_sign_up(session, member, at=MallTime(member.joined_at, tz), settings=settings)
        visits = sorted(
            member.joined_at + (now - member.joined_at) * rng.random()
            for _ in range(rng.choices([0, 1, 3, 8, 20], weights=[20, 30, 25, 18, 7])[0])
        )
        for paid_at in visits:
            store = rng.choice(stores)
            low, high = BASKETS[store.category]
            purchase_count += 1
            purchases.record_purchase(
                session,
                purchases.NewPurchase(
                    store_id=store.id,
                    receipt_no=f"R{purchase_count:08d}",
                    amount_fen=rng.randint(low, high),
                    member_id=member.id,
                    paid_at=paid_at,
                ),
                staff=manager,
                at=MallTime(paid_at, tz),
                settings=settings,
            )
        points.expire_due_lots(session, member_id=member.id, at=MallTime(now, tz))
    _marketing(session, random.Random(seed + 1), stores, members, MallTime(now, tz))
    return DemoSummary(
        stores=len(stores), staff=len(staff) + len(advisors), members=len(members), purchases=purchase_count
    )


def _marketing(
    session: Session, rng: random.Random, stores: list[Store], members: list[Member], at: MallTime
) -> None:
    """What the marketing team would have set up in the console, through the same services."""
    entrance = scenes.create_scene(
        session, scenes.NewScene(kind=SceneKind.POSTER, name="1F 正门海报"), operator_id=None
    )
    counters = [
        scenes.create_scene(
            session,
            scenes.NewScene(kind=SceneKind.STORE, name=f"{store.name}收银台", store_id=store.id),
            operator_id=None,
        )
        for store in stores[:3]
    ]
    for member in members:
        if member.source is MemberSource.WECHAT and rng.random() < 0.4:
            member.signup_scene_id = rng.choice([entrance, *counters]).id

    def template(**values: Any) -> int:
        return coupon_templates.create_template(session, coupon_templates.TemplateValues(**values)).id

    cash_off = template(
        kind=CouponKind.CASH_OFF, name="满 200 减 30", total_stock=500, face_value_fen=3_000,
        min_spend_fen=20_000, valid_days_after_issue=30, description="全场通用，每人限领 1 张",
    )  # fmt: skip
    discount = template(
        kind=CouponKind.DISCOUNT, name="美妆八八折", total_stock=200, discount_percent=88,
        max_discount_fen=10_000, store_categories=["美妆"], valid_days_after_issue=14, points_price=300,
    )  # fmt: skip
    parking = template(
        kind=CouponKind.PARKING, name="周末免费停车 2 小时", total_stock=1_000, parking_minutes=120,
        valid_days_after_issue=7,
    )  # fmt: skip
    template(
        kind=CouponKind.GIFT,
        name="新春礼盒",
        total_stock=100,
        gift_name="生肖红包礼盒",
        valid_days_after_issue=30,
    )
    for template_id in (cash_off, discount, parking):
        coupon_templates.activate(session, template_id)
    for n, member in enumerate(rng.sample(members, min(len(members), 60))):
        template_id = cash_off if n % 2 == 0 else parking
        coupons.claim(session, template_id, member.id, request_key=f"demo-{n}", at=at)

    tags.create_tag(
        session, code="big-spender", name="年消费过万", kind=TagKind.RULE,
        rule={"all": [{"field": "spend_365d_fen", "op": ">=", "value": 1_000_000}]},
        description="近 365 天消费满 ¥10,000", operator_id=None, at=at,
    )  # fmt: skip
    segments.create_segment(
        session, name="沉睡的银卡及以上会员",
        rule={"all": [
            {"field": "tier", "op": "in", "value": ["silver", "gold", "diamond"]},
            {"field": "days_since_last_purchase", "op": ">=", "value": 60},
        ]},
        description="召回对象", operator_id=None, at=at,
    )  # fmt: skip
    rich = segments.create_segment(
        session, name="积分 5,000 以上",
        rule={"all": [{"field": "points_balance", "op": ">=", "value": 5_000}]},
        description="积分兑换活动的目标人群", operator_id=None, at=at,
    )  # fmt: skip
    if segments.live_count(session, rich, at) == 0:
        return  # a tiny demo mall (--members 10) may have nobody to send to
    # Pending until the scheduler's run-campaigns job issues it.
    campaigns.create_segment_campaign(
        session,
        name="积分大户专享：满 200 减 30",
        template_id=cash_off,
        segment_id=rich.id,
        operator_id=None,
        at=at,
    )

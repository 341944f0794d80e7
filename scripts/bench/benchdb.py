"""The bench database: created fresh, migrated by Alembic, seeded with a mall, reset between runs.

Seeded members have joined within the last ten months and got their welcome points through the ledger,
as members signing up in the mini-program do; `--empty-ledger` leaves them without any entry instead.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pymysql
from alembic import command
from flask import Flask
from sqlalchemy import func, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from app import create_app
from app.auth import Audience, issue_token
from app.cli import alembic_config
from app.config import Config
from app.db import bound_database, transaction
from app.demo_data import STORES, create_standard_tiers
from app.mall_time import MallTime
from app.models import (
    CouponKind,
    CouponTemplate,
    EarningRate,
    Member,
    MemberSource,
    PointsPromotion,
    PointsSettings,
    Staff,
    StaffRole,
    Store,
    TemplateStatus,
)
from app.pii import PhoneVault
from app.services import coupons, points, rewards

DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/mallmember_bench"

# Tables the purchase endpoint inserts into, children first; cut back to the seed before each side runs.
WRITTEN_TABLES = ("tier_changes", "points_lots", "points_entries", "purchases")
# What the endpoint updates in `members`, saved after seeding so that each side starts from it.
MEMBER_SNAPSHOT = "bench_seeded_members"


@dataclass(frozen=True)
class Mall:
    """What the load generators need to know about the seeded data."""

    member_ids: range
    store_ids: list[int]
    staff_id: int
    # Highest id of each WRITTEN_TABLES table right after seeding (0 when empty).
    seeded_max_ids: dict[str, int]


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


# Every client of a benchmark comes from 127.0.0.1 and a handful of accounts, which the shopper and
# staff rate limits would turn into 429s: the limits stay in the path (each request is counted) but
# far above what a benchmark sends.
UNLIMITED = {
    name: "1000000/minute"
    for name in ("RATE_LIMIT_LOGIN", "RATE_LIMIT_CLAIM", "RATE_LIMIT_VERIFY", "RATE_LIMIT_CHECKIN")
}


def bench_config(database_url: str, redis_url: str | None = None) -> Config:
    """Development defaults (an empty environ: a developer's .env must not change the figures)."""
    return Config.from_env(
        {}, APP_ENV="development", DATABASE_URL=database_url, REDIS_URL=redis_url or None, **UNLIMITED
    )


def connect_server(
    url: URL, *, database: str | None = None, local_infile: bool = False
) -> pymysql.Connection:
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        charset="utf8mb4",
        local_infile=local_infile,
    )


def recreate_database(database_url: str) -> None:
    """DROP and CREATE the database named in the URL (utf8mb4), then apply every migration."""
    url = make_url(database_url)
    name = url.database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}: use a plain name like mallmember_bench")
    connection = connect_server(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        connection.close()
    command.upgrade(alembic_config(database_url), "head")


def seed(app: Flask, *, member_count: int, welcome_points: bool = True, seed_value: int = 20261125) -> Mall:
    """Tiers, the demo stores, earning rates, a running promotion, one manager and `member_count` members
    (with their welcome points unless `welcome_points` is False); then a snapshot for `reset_purchases`."""
    rng = random.Random(seed_value)
    vault = app.extensions["mallmember"].phone_vault
    tz: ZoneInfo = app.extensions["mallmember"].mall_tz
    now = datetime.now(UTC)
    today = now.date()
    with app.app_context(), transaction() as session:
        tiers = create_standard_tiers(session)
        stores = [
            Store(code=code, name=name, category=category, floor=floor)
            for code, name, category, floor in STORES
        ]
        session.add_all(stores)
        session.add(PointsSettings.with_defaults())
        session.add_all(
            [
                EarningRate(category=EarningRate.DEFAULT_CATEGORY, spend_unit_fen=100, points_per_unit=1),
                EarningRate(category="美妆", spend_unit_fen=100, points_per_unit=2),
                EarningRate(category="数码", spend_unit_fen=200, points_per_unit=1),
            ]
        )
        # A promotion that is running today, so the promotion lookup finds a row for some stores.
        session.add(
            PointsPromotion(
                name="餐饮双倍积分",
                starts_on=today - timedelta(days=1),
                ends_on=today + timedelta(days=30),
                multiplier_percent=200,
                category="餐饮",
            )
        )
        manager = Staff(wecom_userid="bench-manager", name="压测经理", role=StaffRole.MANAGER)
        session.add(manager)
        session.flush()
        if welcome_points:
            members = []
            for n in range(member_count):
                protected = vault.protect(member_phone(n))
                members.append(
                    Member(
                        phone_ciphertext=protected.ciphertext,
                        phone_index=protected.blind_index,
                        phone_masked=protected.masked,
                        nickname=f"会员{n}",
                        birthday=date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)),
                        tier_id=tiers[0].id,
                        source=MemberSource.WECHAT,
                        joined_at=now - timedelta(days=rng.randint(1, 300), minutes=rng.randint(0, 1439)),
                    )
                )
            session.add_all(members)
            session.flush()
            settings = points.points_settings(session)
            for member in members:
                rewards.reward_sign_up(session, member, at=MallTime(member.joined_at, tz), settings=settings)
            ids = sorted(member.id for member in members)
        else:
            # Without a ledger nothing needs the ORM objects: the same rows by Core executemany, without
            # building and flushing 100,000 objects (the import benchmark's members).
            ids = _insert_members(session, vault, member_count, tier_id=tiers[0].id, rng=rng, now=now)
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise AssertionError("member ids are expected to be contiguous")
        mall = Mall(
            member_ids=range(ids[0], ids[-1] + 1),
            store_ids=[store.id for store in stores],
            staff_id=manager.id,
            seeded_max_ids={},
        )
    with app.app_context(), bound_database().engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE {MEMBER_SNAPSHOT} AS SELECT id, points_balance, points_debt, tier_id FROM members"
        )
        for table in WRITTEN_TABLES:
            top = connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one()
            mall.seeded_max_ids[table] = int(top)
    return mall


def member_phone(n: int) -> str:
    """The phone of the n-th seeded member (0-based): 137 followed by n on eight digits."""
    return f"137{n:08d}"


def _insert_members(
    session: Session, vault: PhoneVault, count: int, *, tier_id: int, rng: random.Random, now: datetime
) -> list[int]:
    """`count` members as `seed` makes them, inserted in chunks of executemany; their ids in order."""
    first = int(session.scalar(select(func.coalesce(func.max(Member.id), 0)))) + 1
    chunk: list[dict[str, object]] = []
    for n in range(count):
        protected = vault.protect(member_phone(n))
        chunk.append(
            {
                "phone_ciphertext": protected.ciphertext,
                "phone_index": protected.blind_index,
                "phone_masked": protected.masked,
                "nickname": f"会员{n}",
                "birthday": date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)),
                "tier_id": tier_id,
                "points_balance": 0,
                "points_debt": 0,
                "source": MemberSource.WECHAT,
                "joined_at": now - timedelta(days=rng.randint(1, 300), minutes=rng.randint(0, 1439)),
            }
        )
        if len(chunk) == 5_000 or n == count - 1:
            session.execute(insert(Member.__table__), chunk)
            chunk.clear()
    return [int(i) for i in session.scalars(select(Member.id).where(Member.id >= first).order_by(Member.id))]


def reset_purchases(app: Flask, mall: Mall) -> None:
    """Back to the state right after seeding: later purchases, entries, lots and tier changes deleted,
    members' balances, debts and tiers restored."""
    with app.app_context(), bound_database().engine.begin() as connection:
        for table in WRITTEN_TABLES:
            connection.exec_driver_sql(f"DELETE FROM {table} WHERE id > {mall.seeded_max_ids[table]}")
        connection.exec_driver_sql(
            f"UPDATE members m JOIN {MEMBER_SNAPSHOT} s ON s.id = m.id"
            " SET m.points_balance = s.points_balance, m.points_debt = s.points_debt, m.tier_id = s.tier_id"
        )


def wait_until_idle(app: Flask, *, quiet_seconds: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until no purchase has been written for `quiet_seconds`: when the load generator stops, the
    server still finishes the requests it had in flight, and a reset or a check racing them fails
    (a lot inserted between the deletes of lots and of entries breaks the foreign key)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        with app.app_context(), bound_database().engine.connect() as connection:
            top = connection.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM purchases").scalar_one()
        if top != last:
            last, since = top, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return
        time.sleep(0.1)


def staff_token(app: Flask, staff_id: int) -> str:
    """A staff bearer token minted in-process (what WeCom login would hand out)."""
    with app.app_context():
        token, _ = issue_token(Audience.STAFF, staff_id)
    return token


def ledger_problems(app: Flask) -> list[str]:
    """What `flask points verify` would print."""
    with app.app_context(), transaction() as session:
        return points.verify_ledger(session)


def innodb_deadlocks(app: Flask) -> int | None:
    """MariaDB's count of deadlocks since it started (None where the server does not report it)."""
    with app.app_context(), bound_database().engine.connect() as connection:
        row = connection.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'").first()
    return int(row[1]) if row else None


def rows_added(app: Flask, mall: Mall) -> dict[str, int]:
    """Rows written since seeding, per table."""
    with app.app_context(), bound_database().engine.connect() as connection:
        return {
            table: int(
                connection.exec_driver_sql(
                    f"SELECT COUNT(*) FROM {table} WHERE id > {mall.seeded_max_ids[table]}"
                ).scalar_one()
            )
            for table in WRITTEN_TABLES
        }


def build_app(database_url: str, redis_url: str | None = None) -> Flask:
    return create_app(bench_config(database_url, redis_url))


def seed_shoppers(app: Flask, mall: Mall) -> list[int]:
    """A mini-program account (WeChatAccount) linked to every seeded member, as after sign-up;
    returns the account ids, which are what a shopper's token names."""
    with app.app_context(), bound_database().engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO wechat_accounts (appid, openid, member_id, created_at, last_login_at)"
            " SELECT 'wxbench', CONCAT('bench-openid-', id), id, joined_at, UTC_TIMESTAMP() FROM members"
            f" WHERE id BETWEEN {mall.member_ids[0]} AND {mall.member_ids[-1]} ORDER BY id"
        )
        # They signed up under the current privacy policy: claims ask for consent to it.
        connection.exec_driver_sql(
            "INSERT INTO member_consents (member_id, wechat_account_id, policy_version, granted_at)"
            " SELECT member_id, id, %s, created_at FROM wechat_accounts WHERE appid = 'wxbench'",
            (app.extensions["mallmember"].config.PRIVACY_POLICY_VERSION,),
        )
        rows = connection.exec_driver_sql(
            "SELECT id FROM wechat_accounts WHERE appid = 'wxbench' ORDER BY id"
        ).all()
    return [int(row[0]) for row in rows]


def shopper_tokens(app: Flask, account_ids: list[int]) -> list[str]:
    """Mini-program bearer tokens minted in-process (what WeChat login would hand out)."""
    with app.app_context():
        return [issue_token(Audience.MINIPROGRAM, account_id)[0] for account_id in account_ids]


def create_flash_template(app: Flask, *, stock: int, name: str) -> int:
    """An active free 满100减20 coupon, `stock` in stock, one per member, valid 30 days from issue
    (what tests.factories.create_coupon_template makes)."""
    with app.app_context(), transaction() as session:
        template = CouponTemplate(
            kind=CouponKind.CASH_OFF,
            name=name,
            face_value_fen=2_000,
            min_spend_fen=10_000,
            status=TemplateStatus.ACTIVE,
            total_stock=stock,
            remaining_stock=stock,
            per_member_limit=1,
            valid_days_after_issue=30,
            store_ids=[],
            store_categories=[],
            eligible_tier_ids=[],
        )
        session.add(template)
        session.flush()
        return template.id


@dataclass(frozen=True)
class Stock:
    total: int
    remaining: int
    issued: int  # coupons of the template in the database

    @property
    def oversold(self) -> int:
        return max(self.issued - self.total, 0)


def template_stock(app: Flask, template_id: int) -> Stock:
    with app.app_context(), bound_database().engine.connect() as connection:
        total, remaining = connection.exec_driver_sql(
            f"SELECT total_stock, remaining_stock FROM coupon_templates WHERE id = {int(template_id)}"
        ).one()
        issued = connection.exec_driver_sql(
            f"SELECT COUNT(*) FROM coupons WHERE template_id = {int(template_id)}"
        ).scalar_one()
    return Stock(int(total), int(remaining), int(issued))


def coupon_problems(app: Flask) -> list[str]:
    """What `coupons.verify_coupons` finds (stock + issued == total for every template, single use)."""
    with app.app_context(), transaction() as session:
        return coupons.verify_coupons(session)

"""Generate a realistic mall for the nightly job: members, stores, advisors, QR scenes and purchases.

    .venv/bin/python scripts/gen_data.py --members 1000000 --purchases 10000000 \\
        --database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_nightly [--recreate] [--seed 7]

Deterministic by seed (phones are sealed with the development keys; the AES nonces are random, the rest is
not). The shape follows DOMAIN.md: about 30 % of members ("heavy" buyers: more visits, bigger baskets)
bring almost 90 % of member sales; 40 % of members lapse at some point (dormant and churned members);
visits are seasonal (Spring Festival, National Day, December, weekends) and in opening hours; each member
favours one or two store categories; 2 % of purchases are refunded (half of them in full); a quarter of all
purchases are by shoppers who are not members (for the member-share KPI). Birthdays for 80 % of members,
tiers by value class, a quarter of members bound to an advisor, most signed up through a store's QR code.
Points balances are 0 and no ledger entries are made (`flask points verify` stays clean).

Loading: CSV files streamed to a temporary directory (memory stays flat) and `LOAD DATA LOCAL INFILE` on
MariaDB/MySQL; chunked `executemany` on SQLite. The database must be migrated and empty (`--recreate` drops
and recreates a MariaDB database first).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from app.config import Config  # noqa: E402
from app.db import normalize_database_url  # noqa: E402
from app.demo_data import TIERS  # noqa: E402
from app.models import Member  # noqa: E402
from app.pii import PhoneVault  # noqa: E402

CATEGORIES = {
    # category: (share of stores, typical basket low..high in fen)
    "餐饮": (0.30, (3_000, 30_000)),
    "服饰": (0.22, (15_000, 120_000)),
    "美妆": (0.10, (20_000, 150_000)),
    "母婴": (0.08, (10_000, 80_000)),
    "数码": (0.06, (50_000, 800_000)),
    "超市": (0.06, (5_000, 40_000)),
    "运动": (0.08, (20_000, 100_000)),
    "影院娱乐": (0.05, (6_000, 30_000)),
    "生活家居": (0.05, (10_000, 90_000)),
}
MONTH_WEIGHT = {
    1: 1.35,
    2: 1.3,
    3: 0.9,
    4: 0.95,
    5: 1.05,
    6: 1.0,
    7: 1.05,
    8: 1.05,
    9: 0.95,
    10: 1.25,
    11: 1.1,
    12: 1.3,
}
HEAVY_SHARE = 0.30  # of members
HEAVY_VISIT_SHARE = 0.70  # of member purchases
HEAVY_BASKET_FACTOR = 3.0
LAPSE_SHARE = 0.40
NON_MEMBER_SHARE = 0.25
REFUND_SHARE = 0.02


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument(
        "--purchases", type=int, default=1_000_000, help="all purchases, non-members' included"
    )
    parser.add_argument("--stores", type=int, default=150)
    parser.add_argument("--years", type=int, default=3, help="history length (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=Config().DATABASE_URL)
    parser.add_argument("--recreate", action="store_true", help="drop, recreate and migrate (MariaDB) first")
    args = parser.parse_args(argv)
    generate(
        args.database_url,
        members=args.members,
        purchases=args.purchases,
        stores=args.stores,
        years=args.years,
        seed=args.seed,
        recreate=args.recreate,
    )


def generate(
    database_url: str,
    *,
    members: int,
    purchases: int,
    stores: int = 150,
    years: int = 3,
    seed: int = 7,
    recreate: bool = False,
    now: datetime | None = None,
) -> None:
    if recreate:
        sys.path.insert(0, str(PROJECT_ROOT / "scripts" / "bench"))
        import benchdb

        benchdb.recreate_database(database_url)
    engine = create_engine(normalize_database_url(database_url), connect_args=_connect_args(database_url))
    with engine.connect() as connection:
        if connection.scalar(select(func.count()).select_from(Member)):
            raise SystemExit(
                "the database already has members: use an empty, migrated database (or --recreate)"
            )
    mall = Generator(seed=seed, members=members, purchases=purchases, stores=stores, years=years, now=now)
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="gen-data-") as directory,
        Loader(engine, Path(directory)) as load,
    ):
        _raise_buffer_pool(engine)
        load.rows(
            "tiers",
            [
                "id",
                "code",
                "name",
                "rank",
                "min_annual_spend_fen",
                "points_multiplier_percent",
                "free_parking_minutes_per_day",
            ],
            mall.tiers(),
        )
        load.rows("stores", ["id", "code", "name", "category", "floor", "created_at"], mall.stores())
        load.rows(
            "staff",
            ["id", "wecom_userid", "name", "role", "store_id", "is_active", "created_at"],
            mall.advisors(),
        )
        load.rows("qr_scenes", ["id", "kind", "name", "scene", "store_id", "created_at"], mall.scenes())
        _log(began, f"{members:,} members")
        load.rows("members", MEMBER_COLUMNS, mall.members(), hex_columns={"phone_ciphertext"})
        _log(began, f"{purchases:,} purchases")
        load.rows("purchases", PURCHASE_COLUMNS, mall.purchases())
    _log(began, f"done: {mall.purchase_count:,} purchases ({mall.member_purchase_count:,} by members)")


MEMBER_COLUMNS = [
    "id",
    "phone_ciphertext",
    "phone_index",
    "phone_masked",
    "nickname",
    "birthday",
    "tier_id",
    "points_balance",
    "points_debt",
    "advisor_id",
    "signup_scene_id",
    "source",
    "joined_at",
]
PURCHASE_COLUMNS = [
    "member_id",
    "store_id",
    "receipt_no",
    "amount_fen",
    "refunded_fen",
    "points_earned",
    "points_clawed_back",
    "purchased_at",
    "created_at",
]


class Generator:
    def __init__(
        self, *, seed: int, members: int, purchases: int, stores: int, years: int, now: datetime | None
    ) -> None:
        self.rng = random.Random(seed)
        self.member_count = members
        self.purchase_target = purchases
        self.store_count = stores
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.start = self.now - timedelta(days=365 * years)
        self.tz = ZoneInfo("Asia/Shanghai")
        config = Config()
        self.vault = PhoneVault(config.phone_encryption_keys(), config.PHONE_INDEX_KEY)
        self.category_of_store: dict[int, str] = {}
        self.stores_by_category: dict[str, list[int]] = {}
        self.advisor_ids: list[int] = []
        self.store_scene_ids: list[int] = []
        self.purchase_count = 0
        self.member_purchase_count = 0
        member_purchases = round(purchases * (1 - NON_MEMBER_SHARE))
        heavy = max(1, round(members * HEAVY_SHARE))
        self.mean_visits = {
            True: member_purchases * HEAVY_VISIT_SHARE / heavy,
            False: member_purchases * (1 - HEAVY_VISIT_SHARE) / max(1, members - heavy),
        }
        self.non_member_purchases = purchases - member_purchases
        # Per-member visit counts are drawn, then scaled to hit the target exactly (see `purchases`).
        self._member_plans: list[tuple[int, bool, datetime, datetime, list[str]]] = []

    def tiers(self) -> Iterator[list[Any]]:
        for number, (code, name, rank, spend, multiplier, parking) in enumerate(TIERS, start=1):
            yield [number, code, name, rank, spend, multiplier, parking]

    def stores(self) -> Iterator[list[Any]]:
        categories = list(CATEGORIES)
        weights = [CATEGORIES[name][0] for name in categories]
        for store_id in range(1, self.store_count + 1):
            category = self.rng.choices(categories, weights)[0]
            self.category_of_store[store_id] = category
            self.stores_by_category.setdefault(category, []).append(store_id)
            floor = f"{self.rng.choice(['B1', '1', '2', '3', '4', '5'])}F".replace("B1F", "B1")
            yield [
                store_id,
                f"S{store_id:04d}",
                f"{category}门店{store_id}",
                category,
                floor,
                _ts(self.start),
            ]

    def advisors(self) -> Iterator[list[Any]]:
        staff_id = 0
        for store_id in range(1, self.store_count + 1):
            for _ in range(2):
                staff_id += 1
                self.advisor_ids.append(staff_id)
                yield [
                    staff_id,
                    f"adv{staff_id:05d}",
                    f"顾问{staff_id}",
                    "advisor",
                    store_id,
                    1,
                    _ts(self.start),
                ]

    def scenes(self) -> Iterator[list[Any]]:
        for store_id in range(1, self.store_count + 1):
            self.store_scene_ids.append(store_id)
            yield [store_id, "store", f"门店码{store_id}", f"store-{store_id}", store_id, _ts(self.start)]

    def members(self) -> Iterator[list[Any]]:
        rng = self.rng
        span_days = (self.now - self.start).days
        categories = list(CATEGORIES)
        weights = [CATEGORIES[name][0] for name in categories]
        for member_id in range(1, self.member_count + 1):
            heavy = rng.random() < HEAVY_SHARE
            # Sign-ups grow over time: more recent joiners.
            joined = self.now - timedelta(days=span_days * rng.random() ** 1.6, seconds=rng.randrange(86_400))
            last_active = self.now
            if rng.random() < LAPSE_SHARE:
                last_active = joined + (self.now - joined) * rng.random()
            favourites = rng.sample(categories, 2) if rng.random() < 0.5 else rng.choices(categories, weights)
            self._member_plans.append((member_id, heavy, joined, last_active, favourites))
            phone = f"1{rng.choice('3456789')}{member_id:09d}"
            sealed = self.vault.protect(phone)
            birthday = None
            if rng.random() < 0.8:
                birthday = date(rng.randint(1960, 2005), 1, 1) + timedelta(days=rng.randrange(365))
            tier = self._tier(heavy)
            advisor = rng.choice(self.advisor_ids) if rng.random() < 0.25 else None
            scene = rng.choice(self.store_scene_ids) if rng.random() < 0.6 else None
            yield [
                member_id, sealed.ciphertext.hex(), sealed.blind_index, sealed.masked, f"会员{member_id}",
                birthday.isoformat() if birthday else None, tier, 0, 0, advisor, scene, "wechat", _ts(joined),
            ]  # fmt: skip

    def _tier(self, heavy: bool) -> int:
        roll = self.rng.random()
        if heavy:
            return 4 if roll < 0.05 else 3 if roll < 0.25 else 2 if roll < 0.65 else 1
        return 2 if roll < 0.08 else 1

    def purchases(self) -> Iterator[list[Any]]:
        rng = self.rng
        drawn = [rng.expovariate(1 / self.mean_visits[heavy]) for _, heavy, *_ in self._member_plans]
        member_purchases = self.purchase_target - self.non_member_purchases
        scale = member_purchases / max(sum(drawn), 1e-9)
        counts = [int(value * scale) for value in drawn]
        for index in rng.sample(range(len(counts)), min(len(counts), member_purchases - sum(counts))):
            counts[index] += 1
        receipt = 0
        for (member_id, heavy, joined, last_active, favourites), count in zip(
            self._member_plans, counts, strict=True
        ):
            for _ in range(count):
                receipt += 1
                yield self._purchase(member_id, receipt, joined, last_active, favourites, heavy)
        for _ in range(self.non_member_purchases):
            receipt += 1
            yield self._purchase(None, receipt, self.start, self.now, None, False)
        self._member_plans.clear()

    def _purchase(
        self,
        member_id: int | None,
        receipt: int,
        first: datetime,
        last: datetime,
        favourites: list[str] | None,
        heavy: bool,
    ) -> list[Any]:
        rng = self.rng
        if favourites and rng.random() < 0.75:
            category = rng.choice(favourites)
            store_id = rng.choice(self.stores_by_category.get(category) or [1])
        else:
            store_id = rng.randint(1, self.store_count)
            category = self.category_of_store[store_id]
        low, high = CATEGORIES[category][1]
        amount = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        if heavy:
            amount = int(amount * HEAVY_BASKET_FACTOR)
        amount = max(100, amount // 100 * 100)
        refunded = 0
        if rng.random() < REFUND_SHARE:
            refunded = amount if rng.random() < 0.5 else amount // 2
        at = self._visit_time(first, last)
        self.purchase_count += 1
        if member_id is not None:
            self.member_purchase_count += 1
        return [member_id, store_id, f"G{receipt:09d}", amount, refunded, 0, 0, _ts(at), _ts(at)]

    def _visit_time(self, first: datetime, last: datetime) -> datetime:
        """A moment in [first, last], weighted by season and weekday, in opening hours (10:00–22:00)."""
        rng = self.rng
        span = max((last - first).total_seconds(), 1.0)
        for _ in range(8):
            moment = first + timedelta(seconds=rng.random() * span)
            local = moment.astimezone(self.tz)
            weight = MONTH_WEIGHT[local.month] * (1.3 if local.weekday() >= 5 else 1.0) / 1.8
            if rng.random() < weight:
                break
        day_start = datetime.combine(local.date(), datetime.min.time(), tzinfo=self.tz)
        opening = day_start + timedelta(hours=10, seconds=rng.randrange(12 * 3600))
        visit = opening.astimezone(UTC)
        return min(max(visit, first), last)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _log(began: float, message: str) -> None:
    print(f"[{time.perf_counter() - began:7.1f} s] {message}", file=sys.stderr, flush=True)


def _connect_args(database_url: str) -> dict[str, Any]:
    return {"local_infile": True} if make_url(database_url).get_backend_name() in {"mysql", "mariadb"} else {}


def _raise_buffer_pool(engine: Engine) -> None:
    """Loading 10M rows through MariaDB's default 128 MiB buffer pool thrashes its indexes; a real server
    has far more. Raise it to 2 GiB when smaller (it is a dynamic setting)."""
    if engine.dialect.name != "mysql":
        return
    with engine.connect() as connection:
        size = int(connection.scalar(text("SELECT @@innodb_buffer_pool_size")) or 0)
        if size < 2 << 30:
            connection.execute(text(f"SET GLOBAL innodb_buffer_pool_size = {2 << 30}"))
            print("innodb_buffer_pool_size raised to 2 GiB", file=sys.stderr)


class Loader:
    """Streams rows to a table: LOAD DATA from a tab-separated file (MariaDB), executemany (SQLite)."""

    CHUNK = 20_000

    def __init__(self, engine: Engine, directory: Path) -> None:
        self.engine = engine
        self.directory = directory

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.engine.dispose()

    def rows(
        self,
        table: str,
        columns: list[str],
        rows: Iterator[list[Any]],
        *,
        hex_columns: set[str] | None = None,
    ) -> None:
        if self.engine.dialect.name == "mysql":
            self._load_data(table, columns, rows, hex_columns or set())
        else:
            self._insert(table, columns, rows, hex_columns or set())

    def _load_data(
        self, table: str, columns: list[str], rows: Iterator[list[Any]], hex_columns: set[str]
    ) -> None:
        path = self.directory / f"{table}.tsv"
        with path.open("w", encoding="utf-8", newline="") as out:
            # Generated values hold no tab, newline or backslash, so no escaping is needed; \N is NULL.
            out.writelines(
                "\t".join("\\N" if value is None else str(value) for value in row) + "\n" for row in rows
            )
        targets = [f"@{name}" if name in hex_columns else f"`{name}`" for name in columns]
        assignments = ", ".join(f"`{name}` = UNHEX(@{name})" for name in hex_columns)
        statement = (
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({', '.join(targets)})"
            + (f" SET {assignments}" if assignments else "")
        )
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET unique_checks = 0, foreign_key_checks = 0")
            cursor.execute(statement)
            raw.commit()
        finally:
            raw.close()
        path.unlink()

    def _insert(
        self, table: str, columns: list[str], rows: Iterator[list[Any]], hex_columns: set[str]
    ) -> None:
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        hex_positions = [columns.index(name) for name in hex_columns]
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            chunk: list[list[Any]] = []
            for row in rows:
                for position in hex_positions:
                    row[position] = bytes.fromhex(row[position])
                chunk.append(row)
                if len(chunk) >= self.CHUNK:
                    cursor.executemany(statement, chunk)
                    chunk.clear()
            if chunk:
                cursor.executemany(statement, chunk)
            raw.commit()
        finally:
            raw.close()


if __name__ == "__main__":
    main()

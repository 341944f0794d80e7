"""The floor to compare the app with: the same ledger work as one purchase request, in raw PyMySQL.

One transaction per purchase with the SQL effects of `purchases.record_purchase` + `points.earn` +
`tiers.upgrade_after_purchase`, and the same locking discipline (the member row is locked first, before
the purchase row references it and before today's points are summed), but no HTTP, no Flask, no ORM,
and no statement that is only there for the response.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
from loadgen import Measurement, Traffic, run_threads
from sqlalchemy.engine import URL

_RETRYABLE = {1213, 1205}  # deadlock victim, lock wait timeout: what app.db.run_transaction retries
_ATTEMPTS = 3
_ROLLING_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class Context:
    url: URL
    staff_id: int
    traffic: Traffic
    tz: ZoneInfo


class LedgerWorker:
    """One connection crediting purchases back to back, as one worker thread of a hand-written service."""

    def __init__(self, context: Context, seed: int) -> None:
        url = context.url
        self._connection = pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            autocommit=False,
            # As the app's engine: no gap locks, and reads after the member lock are fresh.
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        self._context = context
        self._rng = random.Random(seed)

    def one(self, receipt_no: str) -> bool:
        traffic = self._context.traffic
        member_id = self._rng.choice(traffic.member_ids)
        store_id = self._rng.choice(traffic.store_ids)
        amount_fen = self._rng.randint(traffic.low_fen, traffic.high_fen)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._credit(member_id, store_id, receipt_no, amount_fen)
                return True
            except pymysql.err.OperationalError as exc:
                self._connection.rollback()
                if exc.args[0] not in _RETRYABLE or attempt == _ATTEMPTS:
                    return False
            except pymysql.err.MySQLError:
                self._connection.rollback()
                return False
        return False

    def close(self) -> None:
        self._connection.close()

    def _credit(self, member_id: int, store_id: int, receipt_no: str, amount_fen: int) -> None:
        now = datetime.now(UTC)
        naive_now = now.replace(tzinfo=None)
        today = now.astimezone(self._context.tz).date()
        staff_id = self._context.staff_id
        with self._connection.cursor() as cur:
            cur.execute("SELECT name, category FROM stores WHERE id = %s", (store_id,))
            store_name, category = _one(cur)
            cur.execute(
                "SELECT purchase_min_amount_fen, purchase_daily_cap_points, expiry_policy, expiry_days"
                " FROM points_settings WHERE id = 1"
            )
            min_amount_fen, daily_cap, expiry_policy, expiry_days = _one(cur)
            # The member first: the purchase's foreign key would take a shared lock on it otherwise.
            cur.execute(
                "SELECT points_balance, points_debt, tier_id FROM members WHERE id = %s FOR UPDATE",
                (member_id,),
            )
            balance, debt, tier_id = _one(cur)
            cur.execute(
                "INSERT INTO purchases (member_id, store_id, receipt_no, amount_fen, refunded_fen,"
                " points_earned, points_clawed_back, staff_id, purchased_at, created_at)"
                " VALUES (%s, %s, %s, %s, 0, 0, 0, %s, %s, %s)",
                (member_id, store_id, receipt_no, amount_fen, staff_id, naive_now, naive_now),
            )
            purchase_id = cur.lastrowid

            earned = 0
            if amount_fen >= min_amount_fen:
                cur.execute(
                    "SELECT category, spend_unit_fen, points_per_unit FROM earning_rates"
                    " WHERE category IN (%s, '*')",
                    (category,),
                )
                rates = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
                unit_fen, per_unit = rates.get(category) or rates.get("*") or (100, 1)
                cur.execute("SELECT points_multiplier_percent FROM tiers WHERE id = %s", (tier_id,))
                (tier_percent,) = _one(cur)
                cur.execute(
                    "SELECT multiplier_percent FROM points_promotions WHERE is_active IS true"
                    " AND starts_on <= %s AND ends_on >= %s AND (category IS NULL OR category = %s)"
                    " ORDER BY multiplier_percent DESC LIMIT 1",
                    (today, today, category),
                )
                promotion = cur.fetchone()
                promotion_percent = promotion[0] if promotion else 100
                earned = amount_fen // unit_fen * per_unit * tier_percent * promotion_percent // 10_000
                if daily_cap:
                    # A plain read, as the app's: the member's lock already keeps its postings still.
                    cur.execute(
                        "SELECT COALESCE(SUM(delta), 0) FROM points_entries"
                        " WHERE member_id = %s AND kind = 'purchase' AND business_date = %s",
                        (member_id, today),
                    )
                    (already,) = _one(cur)
                    earned = max(min(earned, daily_cap - int(already)), 0)

            if earned:
                repaid = min(debt, earned)
                spendable = earned - repaid
                balance, debt = balance + spendable, debt - repaid
                cur.execute(
                    "UPDATE members SET points_balance = %s, points_debt = %s WHERE id = %s",
                    (balance, debt, member_id),
                )
                cur.execute(
                    "INSERT INTO points_entries (member_id, kind, delta, balance_after, debt_after,"
                    " description, reference, idempotency_key, staff_id, business_date, created_at)"
                    " VALUES (%s, 'purchase', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        member_id,
                        earned,
                        balance,
                        debt,
                        f"{store_name} 消费 ¥{amount_fen // 100}.{amount_fen % 100:02d}",
                        f"purchase:{purchase_id}",
                        f"purchase:{purchase_id}",
                        staff_id,
                        today,
                        naive_now,
                    ),
                )
                entry_id = cur.lastrowid
                if spendable:
                    cur.execute(
                        "INSERT INTO points_lots (member_id, entry_id, earned, remaining, expires_on,"
                        " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                        (
                            member_id,
                            entry_id,
                            spendable,
                            spendable,
                            _expiry_date(expiry_policy, expiry_days, today),
                            naive_now,
                        ),
                    )
                cur.execute("UPDATE purchases SET points_earned = %s WHERE id = %s", (earned, purchase_id))

            cur.execute("SELECT id, `rank`, min_annual_spend_fen FROM tiers ORDER BY `rank`")
            tiers = cur.fetchall()
            cur.execute(
                "SELECT COALESCE(SUM(amount_fen - refunded_fen), 0) FROM purchases"
                " WHERE member_id = %s AND purchased_at >= %s",
                (member_id, naive_now - _ROLLING_WINDOW),
            )
            (spend,) = _one(cur)
            reached = [tier for tier in tiers if tier[2] <= spend] or [tiers[0]]
            target_id, target_rank, _ = reached[-1]
            current_rank = next(tier[1] for tier in tiers if tier[0] == tier_id)
            if target_rank > current_rank:
                cur.execute("UPDATE members SET tier_id = %s WHERE id = %s", (target_id, member_id))
                cur.execute(
                    "INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason,"
                    " rolling_spend_fen, created_at) VALUES (%s, %s, %s, 'purchase', %s, %s)",
                    (member_id, tier_id, target_id, int(spend), naive_now),
                )
        self._connection.commit()


def _one(cursor: pymysql.cursors.Cursor) -> tuple[Any, ...]:
    row = cursor.fetchone()
    if row is None:
        raise LookupError("expected a row")
    return tuple(row)


def _expiry_date(policy: str, days: int, earned_on: date) -> date:
    if policy == "days_after_earning":
        return earned_on + timedelta(days=days)
    return date(earned_on.year + 1, 12, 31)


def run(context: Context, *, clients: int, seconds: int, receipt_prefix: str) -> Measurement:
    return run_threads(
        clients, seconds, lambda n: LedgerWorker(context, seed=10_000 + n), receipt_prefix=receipt_prefix
    )

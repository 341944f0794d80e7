"""The baseline of nightly.py: the nightly job's steps as hand-written MariaDB SQL, one statement per
table-wide step (no batching, no ORM, no Python per member), through PyMySQL.

It writes the same rows as `flask tags refresh` (nightly.py compares the results), so the difference
in time is what the app's batching, portability and SQLAlchemy cost.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pymysql

from app.services.kpis import COUNT_COLUMNS

KPI_COLUMNS = COUNT_COLUMNS  # the same kpi_daily columns as the app writes
# What the app's SegmentationSettings defaults are.
RFM_WINDOW, NEW_DAYS, DORMANT_DAYS, CHURNED_DAYS = 365, 30, 90, 180
SEGMENTS = {
    (1, 1, 1): "important_value",
    (1, 0, 1): "important_develop",
    (0, 1, 1): "important_keep",
    (0, 0, 1): "important_retain",
    (1, 1, 0): "general_value",
    (1, 0, 0): "general_develop",
    (0, 1, 0): "general_keep",
    (0, 0, 0): "general_retain",
}


class Day:
    def __init__(self, today: date, tz: ZoneInfo) -> None:
        self.today, self.tz = today, tz

    def start(self, days_back: int) -> str:
        """The UTC instant (naive, as stored) at which business day today − days_back begins."""
        day = self.today - timedelta(days=days_back)
        local = datetime.combine(day, datetime.min.time(), tzinfo=self.tz)
        return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")


def run(
    connection: pymysql.Connection,
    today: date,
    tz: ZoneInfo,
    rule_tags: list[tuple[int, str]],
    *,
    batch_size: int = 20_000,
) -> dict[str, float]:
    """Run every step; returns seconds per step. `rule_tags` are (tag id, SQL condition over m and s)."""
    day = Day(today, tz)
    timings: dict[str, float] = {}
    cursor = connection.cursor()

    def step(name: str, *statements: tuple[str, dict[str, Any] | None]) -> None:
        began = time.perf_counter()
        for sql, params in statements:
            cursor.execute(sql, params)
        connection.commit()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

    windows = {days: day.start(days - 1) for days in (30, 90, 180, 365)}
    params: dict[str, Any] = {
        "as_of": today,
        "end": day.start(-1),
        "rfm": day.start(RFM_WINDOW - 1),
        "new_since": day.start(NEW_DAYS),
        "churned_before": day.start(CHURNED_DAYS - 1),
        "dormant_before": day.start(DORMANT_DAYS - 1),
    }
    params.update({f"w{days}": since for days, since in windows.items()})
    cursor.execute("SELECT DISTINCT category FROM stores ORDER BY category")
    categories = [row[0] for row in cursor.fetchall()]
    counts = ", ".join(
        f"SUM(p.amount_fen > p.refunded_fen AND p.purchased_at >= %(w{d})s) p{d}, "
        f"SUM(IF(p.purchased_at >= %(w{d})s, p.amount_fen - p.refunded_fen, 0)) s{d}"
        for d in (30, 90, 180, 365)
    )
    per_category = ", ".join(
        f"SUM(IF(s.category = %(c{i})s AND p.amount_fen > p.refunded_fen AND p.purchased_at >= %(w365)s, "
        f"p.amount_fen - p.refunded_fen, 0)) c{i}"
        for i in range(len(categories))
    )
    params.update({f"c{i}": category for i, category in enumerate(categories)})
    top = f"GREATEST({', '.join(f'a.c{i}' for i in range(len(categories)))})"
    favourite = (
        f"CASE WHEN COALESCE({top}, 0) <= 0 THEN NULL "
        + " ".join(f"WHEN a.c{i} = {top} THEN %(c{i})s" for i in range(len(categories)))
        + " END"
    )
    stage = """CASE WHEN m.joined_at >= %(new_since)s THEN 'new'
        WHEN COALESCE(a.last_at, m.joined_at) < %(churned_before)s THEN 'churned'
        WHEN COALESCE(a.last_at, m.joined_at) < %(dormant_before)s THEN 'dormant' ELSE 'active' END"""
    upsert = f"""
        INSERT INTO member_stats (member_id, first_purchase_at, last_purchase_at,
            purchases_30d, spend_30d_fen, purchases_90d, spend_90d_fen, purchases_180d, spend_180d_fen,
            purchases_365d, spend_365d_fen, avg_ticket_365d_fen, favourite_category, birthday_mmdd,
            rfm_frequency, rfm_monetary_fen, lifecycle_stage, previous_lifecycle_stage, lifecycle_since)
        SELECT m.id, a.first_at, a.last_at,
            COALESCE(a.p30, 0), COALESCE(a.s30, 0), COALESCE(a.p90, 0), COALESCE(a.s90, 0),
            COALESCE(a.p180, 0), COALESCE(a.s180, 0), COALESCE(a.p365, 0), COALESCE(a.s365, 0),
            IF(a.p365 > 0, a.s365 DIV a.p365, 0), {favourite}, MONTH(m.birthday) * 100 + DAY(m.birthday),
            COALESCE(a.rf, 0), COALESCE(a.rm, 0), {stage}, {stage}, %(as_of)s
        FROM members m
        LEFT JOIN (
            SELECT STRAIGHT_JOIN p.member_id,
                MIN(IF(p.amount_fen > p.refunded_fen, p.purchased_at, NULL)) first_at,
                MAX(IF(p.amount_fen > p.refunded_fen, p.purchased_at, NULL)) last_at,
                {counts},
                SUM(p.amount_fen > p.refunded_fen AND p.purchased_at >= %(rfm)s) rf,
                SUM(IF(p.purchased_at >= %(rfm)s, p.amount_fen - p.refunded_fen, 0)) rm,
                {per_category}
            FROM purchases p JOIN stores s ON s.id = p.store_id
            WHERE p.member_id >= %(low)s AND p.member_id < %(high)s AND p.purchased_at < %(end)s
            GROUP BY p.member_id
        ) a ON a.member_id = m.id
        WHERE m.id >= %(low)s AND m.id < %(high)s
        ON DUPLICATE KEY UPDATE first_purchase_at = VALUES(first_purchase_at),
            last_purchase_at = VALUES(last_purchase_at), purchases_30d = VALUES(purchases_30d),
            spend_30d_fen = VALUES(spend_30d_fen), purchases_90d = VALUES(purchases_90d),
            spend_90d_fen = VALUES(spend_90d_fen), purchases_180d = VALUES(purchases_180d),
            spend_180d_fen = VALUES(spend_180d_fen), purchases_365d = VALUES(purchases_365d),
            spend_365d_fen = VALUES(spend_365d_fen), avg_ticket_365d_fen = VALUES(avg_ticket_365d_fen),
            favourite_category = VALUES(favourite_category), birthday_mmdd = VALUES(birthday_mmdd),
            rfm_frequency = VALUES(rfm_frequency), rfm_monetary_fen = VALUES(rfm_monetary_fen),
            previous_lifecycle_stage = IF(lifecycle_stage <=> VALUES(lifecycle_stage),
                previous_lifecycle_stage, lifecycle_stage),
            lifecycle_since = IF(lifecycle_stage <=> VALUES(lifecycle_stage), lifecycle_since,
                VALUES(lifecycle_since)),
            lifecycle_stage = VALUES(lifecycle_stage)
    """
    transitions = """
        INSERT INTO lifecycle_transitions (member_id, from_stage, to_stage, business_date)
        SELECT member_id, previous_lifecycle_stage, lifecycle_stage, %(as_of)s FROM member_stats
        WHERE member_id >= %(low)s AND member_id < %(high)s AND previous_lifecycle_stage IS NOT NULL
            AND previous_lifecycle_stage <> lifecycle_stage AND lifecycle_since = %(as_of)s
            AND NOT EXISTS (SELECT 1 FROM lifecycle_transitions t
                WHERE t.member_id = member_stats.member_id AND t.business_date = %(as_of)s)
    """
    cursor.execute("SELECT MIN(id), MAX(id) FROM members")
    low_id, high_id = cursor.fetchone()
    for low in range(low_id, high_id + 1, batch_size):
        batch = {**params, "low": low, "high": low + batch_size}
        step("stats", (upsert, batch), (transitions, batch))

    began = time.perf_counter()
    cursor.execute(
        "UPDATE member_stats SET rfm_r = NULL, rfm_f = NULL, rfm_m = NULL, rfm_segment = 'no_purchase' "
        "WHERE rfm_frequency = 0 AND (rfm_r IS NOT NULL OR COALESCE(rfm_segment, '') <> 'no_purchase')"
    )
    cursor.execute("SELECT COUNT(*) FROM member_stats WHERE rfm_frequency > 0")
    (n,) = cursor.fetchone()
    if n:
        scores = []
        for column in ("last_purchase_at", "rfm_frequency", "rfm_monetary_fen"):
            positions = [-(-q * n // 5) for q in range(1, 5)]
            cursor.execute(
                f"SELECT position, value FROM (SELECT {column} value, "
                f"ROW_NUMBER() OVER (ORDER BY {column}) position FROM member_stats WHERE rfm_frequency > 0) "
                f"ordered WHERE position IN ({', '.join(map(str, positions))})"
            )
            value_at = dict(cursor.fetchall())
            bounds = [value_at[position] for position in positions]
            scores.append(("1 + " + " + ".join(f"({column} > %s)" for _ in bounds), bounds))
        cursor.execute(
            f"UPDATE member_stats SET rfm_r = {scores[0][0]}, rfm_f = {scores[1][0]}, rfm_m = {scores[2][0]} "
            "WHERE rfm_frequency > 0",
            [*scores[0][1], *scores[1][1], *scores[2][1]],
        )
        cursor.execute("SELECT SUM(rfm_r), SUM(rfm_f), SUM(rfm_m) FROM member_stats WHERE rfm_frequency > 0")
        r_sum, f_sum, m_sum = (int(value or 0) for value in cursor.fetchone())
        whens = " ".join(
            f"WHEN (rfm_r * %(n)s > %(r)s) = {r} AND (rfm_f * %(n)s > %(f)s) = {f} "
            f"AND (rfm_m * %(n)s > %(m)s) = {m} THEN '{segment}'"
            for (r, f, m), segment in SEGMENTS.items()
        )
        segment = f"CASE {whens} END"
        cursor.execute(
            f"UPDATE member_stats SET rfm_segment = {segment} "
            f"WHERE rfm_frequency > 0 AND COALESCE(rfm_segment, '') <> {segment}",
            {"n": n, "r": r_sum, "f": f_sum, "m": m_sum},
        )
    connection.commit()
    timings["rfm"] = time.perf_counter() - began

    cursor.execute("SELECT id, rule FROM tags WHERE kind = 'system'")
    system_tags = []
    for tag_id, rule in cursor.fetchall():
        column = "s.rfm_segment" if '"rfm_segment"' in rule else "s.lifecycle_stage"
        value = rule.split('"value": "')[1].split('"')[0]
        system_tags.append((tag_id, "system", f"{column} = '{value}'"))
    # The last second of the business day, as the app stamps a run for a given day.
    closing = datetime.strptime(day.start(-1), "%Y-%m-%d %H:%M:%S") - timedelta(seconds=1)
    now = closing.strftime("%Y-%m-%d %H:%M:%S")
    tag_params = {"now": now, "dormant_before": day.start(DORMANT_DAYS - 1)}
    began = time.perf_counter()
    for tag_id, source, condition in system_tags + [(tag_id, "rule", sql) for tag_id, sql in rule_tags]:
        matching = (
            f"SELECT m.id FROM members m LEFT JOIN member_stats s ON s.member_id = m.id WHERE {condition}"
        )
        ended = (
            f"FROM member_tags WHERE tag_id = {tag_id} AND source = '{source}' "
            f"AND member_id NOT IN ({matching})"
        )
        cursor.execute(
            "INSERT INTO member_tag_history (member_id, tag_id, source, since, until) "
            f"SELECT member_id, tag_id, source, since, %(now)s {ended}",
            tag_params,
        )
        cursor.execute(f"DELETE {ended}", tag_params)
        cursor.execute(
            "INSERT INTO member_tags (member_id, tag_id, source, since) "
            f"SELECT m.id, {tag_id}, '{source}', %(now)s "
            "FROM members m LEFT JOIN member_stats s ON s.member_id = m.id "
            f"WHERE ({condition}) AND NOT EXISTS "
            f"(SELECT 1 FROM member_tags t WHERE t.member_id = m.id AND t.tag_id = {tag_id})",
            tag_params,
        )
        connection.commit()
    timings["tags"] = time.perf_counter() - began
    began = time.perf_counter()
    _kpis(cursor, day)
    connection.commit()
    timings["kpis"] = time.perf_counter() - began
    return timings


def _kpis(cursor: Any, day: Day) -> None:
    """The day's mall-wide and per-store KPI rows, each metric one GROUP BY store WITH ROLLUP query."""
    p = {
        "start": day.start(0),
        "end": day.start(-1),
        "w30": day.start(29),
        "w60": day.start(59),
        "w90": day.start(89),
        "today": day.today,
    }
    counted = "p.member_id IS NOT NULL AND p.amount_fen > p.refunded_fen"
    metrics: dict[str, str] = {
        "members_total": "SELECT q.store_id, COUNT(*) FROM members m "
        "JOIN qr_scenes q ON q.id = m.signup_scene_id "
        "WHERE m.joined_at < %(end)s GROUP BY q.store_id",
        "new_members": "SELECT q.store_id, COUNT(*) FROM members m "
        "JOIN qr_scenes q ON q.id = m.signup_scene_id "
        "WHERE m.joined_at >= %(start)s AND m.joined_at < %(end)s GROUP BY q.store_id",
        "member_purchases": f"SELECT store_id, COUNT(*) FROM purchases p WHERE {counted} "
        "AND purchased_at >= %(start)s AND purchased_at < %(end)s GROUP BY store_id WITH ROLLUP",
        "member_sales_fen": "SELECT store_id, SUM(amount_fen - refunded_fen) FROM purchases p "
        f"WHERE {counted} "
        "AND purchased_at >= %(start)s AND purchased_at < %(end)s GROUP BY store_id WITH ROLLUP",
        "non_member_purchases": "SELECT store_id, COUNT(*) FROM purchases p WHERE p.member_id IS NULL "
        "AND amount_fen > refunded_fen AND purchased_at >= %(start)s AND purchased_at < %(end)s "
        "GROUP BY store_id WITH ROLLUP",
        "non_member_sales_fen": "SELECT store_id, SUM(amount_fen - refunded_fen) FROM purchases p "
        "WHERE p.member_id IS NULL AND amount_fen > refunded_fen AND purchased_at >= %(start)s "
        "AND purchased_at < %(end)s GROUP BY store_id WITH ROLLUP",
        "coupons_used": "SELECT store_id, COUNT(*) FROM coupon_redemptions WHERE redeemed_at >= %(start)s "
        "AND redeemed_at < %(end)s AND undone_at IS NULL GROUP BY store_id WITH ROLLUP",
    }
    values: dict[int, dict[str, int]] = {}

    def collect(metric: str, sql: str) -> None:
        cursor.execute(sql, p)
        for store_id, value in cursor.fetchall():
            values.setdefault(0 if store_id is None else store_id, {})[metric] = int(value or 0)

    for metric, sql in metrics.items():
        collect(metric, sql)
    # Mall-wide, every member counts, with or without a sign-up scene.
    collect("members_total", "SELECT NULL, COUNT(*) FROM members WHERE joined_at < %(end)s")
    collect(
        "new_members",
        "SELECT NULL, COUNT(*) FROM members WHERE joined_at >= %(start)s AND joined_at < %(end)s",
    )
    # Buyers of 30/90 days, of the 30 days before, churned and repeat buyers: one pass per (store,
    # member) and one per member over 90 days, their temporary tables held in memory.
    cursor.execute("SET SESSION tmp_table_size = 256 * 1024 * 1024, max_heap_table_size = 256 * 1024 * 1024")
    tallies = (
        "SUM(last_30 > 0), COUNT(*), SUM(previous_30 > 0), SUM(previous_30 > 0 AND last_30 = 0), "
        "SUM(last_90 >= 2)"
    )
    per_buyer = (
        "SUM(purchased_at >= %(w30)s) AS last_30, "
        "SUM(purchased_at >= %(w60)s AND purchased_at < %(w30)s) AS previous_30, COUNT(*) AS last_90 "
        f"FROM purchases p WHERE {counted} AND purchased_at >= %(w90)s AND purchased_at < %(end)s"
    )
    activity = ("active_30d", "active_90d", "previous_active_30d", "churned_30d", "repeat_buyers_90d")
    for sql in (
        f"SELECT store_id, {tallies} FROM (SELECT store_id, member_id, {per_buyer} "
        "GROUP BY store_id, member_id) x GROUP BY store_id",
        f"SELECT 0, {tallies} FROM (SELECT member_id, {per_buyer} GROUP BY member_id) x",
    ):
        cursor.execute(sql, p)
        for store_id, *counts in cursor.fetchall():
            values.setdefault(store_id, {}).update(
                {metric: int(count or 0) for metric, count in zip(activity, counts, strict=True)}
            )
    cursor.execute("SET SESSION tmp_table_size = DEFAULT, max_heap_table_size = DEFAULT")
    collect(
        "coupons_issued",
        "SELECT NULL, COUNT(*) FROM coupons WHERE issued_on = %(today)s",
    )
    cursor.execute(
        "SELECT kind, SUM(delta) FROM points_entries WHERE business_date = %(today)s GROUP BY kind", p
    )
    issued = spent = expired = 0
    for kind, total in cursor.fetchall():
        total = int(total or 0)
        if kind == "expiry":
            expired -= total
        elif kind == "redemption":
            spent -= total
        elif total > 0 and kind not in ("refund", "adjustment"):
            issued += total
    values.setdefault(0, {}).update(points_issued=issued, points_spent=spent, points_expired=expired)
    cursor.execute("SELECT id FROM stores")
    store_ids = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT t.code, COUNT(m.id) FROM tiers t LEFT JOIN members m ON m.tier_id = t.id GROUP BY t.code"
    )
    tiers = json.dumps({code: count for code, count in cursor.fetchall()})
    cursor.execute(
        "SELECT rfm_segment, COUNT(*) FROM member_stats WHERE rfm_segment IS NOT NULL GROUP BY rfm_segment"
    )
    segments = json.dumps({segment: count for segment, count in cursor.fetchall()})
    cursor.execute("DELETE FROM kpi_daily WHERE business_date = %(today)s", p)
    columns = list(KPI_COLUMNS)
    rows = []
    for store_id in [0, *store_ids]:
        row = values.get(store_id, {})
        rows.append(
            (day.today, store_id, *(row.get(metric, 0) for metric in columns),
             tiers if store_id == 0 else None, segments if store_id == 0 else None)
        )  # fmt: skip
    names = ", ".join(columns)
    placeholders = ", ".join(["%s"] * (len(columns) + 4))
    cursor.executemany(
        f"INSERT INTO kpi_daily (business_date, store_id, {names}, tier_distribution, segment_distribution, "
        f"computed_at) VALUES ({placeholders}, UTC_TIMESTAMP())",
        rows,
    )

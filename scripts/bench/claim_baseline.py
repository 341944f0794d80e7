"""The floor for a coupon claim: the same stock and limit logic as `coupons.claim`, in raw PyMySQL.

One transaction per claim, at READ COMMITTED like the app (app.db): lock the member row; count the
member's coupons of the template (per-member limit); take one from stock by conditional UPDATE
(`... WHERE id = ? AND remaining_stock > 0`); insert the coupon; COMMIT. No HTTP, no Flask, no ORM, no
token or account lookup, no idempotency-key lookup, and the template's terms are read once up front.
"""

from __future__ import annotations

import json
import queue
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pymysql
from loadgen import CountedRun, run_counted
from sqlalchemy.engine import URL

_RETRYABLE = {1213, 1205}  # deadlock victim, lock wait timeout: what app.db.run_transaction retries
_ATTEMPTS = 3
_TERMS = (
    "kind",
    "name",
    "face_value_fen",
    "min_spend_fen",
    "discount_percent",
    "max_discount_fen",
    "gift_name",
    "parking_minutes",
    "parking_value_fen",
    "store_ids",
    "store_categories",
)


@dataclass(frozen=True)
class Template:
    id: int
    per_member_limit: int
    valid_days_after_issue: int
    terms: tuple[object, ...]


def connect(url: URL) -> pymysql.Connection:
    connection = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        charset="utf8mb4",
        autocommit=False,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return connection


def load_template(url: URL, template_id: int) -> Template:
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT per_member_limit, valid_days_after_issue, {', '.join(_TERMS)}"
                " FROM coupon_templates WHERE id = %s",
                (template_id,),
            )
            row = cursor.fetchone()
    finally:
        connection.close()
    if row is None:
        raise LookupError(f"no coupon template {template_id}")
    return Template(template_id, int(row[0]), int(row[1]), tuple(row[2:]))


class ClaimWorker:
    """One client thread: a random member claims; a pooled connection is held for the transaction."""

    def __init__(
        self,
        pool: queue.Queue[pymysql.Connection],
        template: Template,
        member_ids: range,
        tz: ZoneInfo,
        seed: int,
    ) -> None:
        self._pool = pool
        self._template = template
        self._member_ids = member_ids
        self._tz = tz
        self._rng = random.Random(seed)

    def one(self, key: str) -> str:
        member_id = self._rng.choice(self._member_ids)
        connection = self._pool.get()
        try:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    return self._claim(connection, member_id, key)
                except pymysql.err.OperationalError as exc:
                    connection.rollback()
                    if exc.args[0] not in _RETRYABLE or attempt == _ATTEMPTS:
                        return f"error: MySQL {exc.args[0]}"
            return "error: unreachable"
        except pymysql.err.MySQLError as exc:
            connection.rollback()
            return f"error: MySQL {exc.args[0] if exc.args else '?'}"
        finally:
            self._pool.put(connection)

    def close(self) -> None:
        pass

    def _claim(self, connection: pymysql.Connection, member_id: int, key: str) -> str:
        template = self._template
        now = datetime.now(UTC)
        today = now.astimezone(self._tz).date()
        last_day = today + timedelta(days=template.valid_days_after_issue)
        valid_until = datetime.combine(last_day, time(), self._tz).astimezone(UTC).replace(tzinfo=None)
        naive_now = now.replace(tzinfo=None)
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM members WHERE id = %s FOR UPDATE", (member_id,))
            if cur.fetchone() is None:
                connection.rollback()
                return "error: no member"
            if template.per_member_limit:
                cur.execute(
                    "SELECT COUNT(*) FROM coupons WHERE template_id = %s AND member_id = %s",
                    (template.id, member_id),
                )
                (held,) = cur.fetchone()
                if held >= template.per_member_limit:
                    connection.rollback()
                    return "limit"
            taken = cur.execute(
                "UPDATE coupon_templates SET remaining_stock = remaining_stock - 1"
                " WHERE id = %s AND remaining_stock > 0",
                (template.id,),
            )
            if taken != 1:
                connection.rollback()
                return "sold_out"
            terms = [json.dumps(value) if isinstance(value, list) else value for value in template.terms]
            cur.execute(
                "INSERT INTO coupons (template_id, member_id, status, source, idempotency_key, points_paid,"
                " refund_points_on_expiry, valid_from, valid_until, issued_at, issued_on, "
                f"{', '.join(_TERMS)}) VALUES ({', '.join(['%s'] * (11 + len(_TERMS)))})",
                (
                    template.id,
                    member_id,
                    "available",
                    "claim",
                    f"claim:{member_id}:{key}",
                    0,
                    False,
                    naive_now,
                    valid_until,
                    naive_now,
                    today,
                    *terms,
                ),
            )
        connection.commit()
        return "issued"


def run(
    url: URL,
    template_id: int,
    member_ids: range,
    tz: ZoneInfo,
    *,
    clients: int,
    connections: int,
    total: int,
    key_prefix: str,
) -> CountedRun:
    """`clients` threads sharing `connections` connections (a thread takes one per transaction)."""
    template = load_template(url, template_id)
    pool: queue.Queue[pymysql.Connection] = queue.Queue()
    opened = [connect(url) for _ in range(connections)]
    for connection in opened:
        pool.put(connection)
    try:
        return run_counted(
            clients,
            total,
            lambda n: ClaimWorker(pool, template, member_ids, tz, seed=20_000 + n),
            key_prefix=key_prefix,
        )
    finally:
        for connection in opened:
            connection.close()

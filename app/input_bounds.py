"""Bounds of what the API accepts, shared by the request schemas.

Ids, counts and amounts are stored in INT columns (MariaDB: at most 2**31 - 1); a bigger number in a
request is refused at the edge (422), never handed to the database, which would fail on it (SQLite
cannot even bind an integer beyond 64 bits).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from marshmallow import validate

MAX_INT = 2**31 - 1

# Business dates and instants an operator, a POS or a partner may send: far enough either way for any
# real use, and clear of year 1 and 9999, where shifting to UTC or to the next day overflows.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2099, 12, 31)
MIN_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2099, 12, 31, tzinfo=UTC)


def date_range() -> validate.Range:
    return validate.Range(min=MIN_DATE, max=MAX_DATE, error=f"日期应在 {MIN_DATE} 到 {MAX_DATE} 之间")


def instant_range() -> validate.Range:
    return validate.Range(
        min=MIN_INSTANT, max=MAX_INSTANT, error=f"时间应在 {MIN_DATE.year} 年到 {MAX_DATE.year} 年之间"
    )

"""The mall's clock: instants are UTC, business days are in the mall's timezone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.db import utcnow


@dataclass(frozen=True)
class MallTime:
    now: datetime
    tz: ZoneInfo

    @classmethod
    def current(cls, tz: ZoneInfo) -> MallTime:
        return cls(utcnow(), tz)

    @classmethod
    def closing(cls, day: date, tz: ZoneInfo) -> MallTime:
        """The last second of business day `day`: a job run for that day sees it as it ended."""
        return cls(datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz) - timedelta(seconds=1), tz)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def start_of(self, day: date) -> datetime:
        """The UTC instant at which business day `day` begins."""
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(ZoneInfo("UTC"))

    def days_ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

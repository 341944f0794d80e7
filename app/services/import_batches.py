"""What a batch of an import is: its rows, what a loader needs, and what it found (for the job's counts
and its report)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from app.mall_time import MallTime
from app.models import ImportIssue, ImportIssueKind, ImportJob
from app.pii import PhoneVault, mask_phone, normalize_phone

DEFAULT_SOURCE = "legacy"
# A data row: its number as a spreadsheet shows it (the header is row 1) and its cells by field.
Row = tuple[int, dict[str, Any]]
R = TypeVar("R")
P = TypeVar("P")


@dataclass(frozen=True)
class BatchContext:
    """What a batch loader needs besides the session and its rows."""

    job: ImportJob
    vault: PhoneVault
    at: MallTime

    @property
    def source(self) -> str:
        return str(self.job.options.get("source") or DEFAULT_SOURCE)

    @property
    def points_expire_on(self) -> date | None:
        value = self.job.options.get("points_expire_on")
        return date.fromisoformat(value) if value else None


@dataclass
class BatchResult:
    created: int = 0
    merged: int = 0
    unchanged: int = 0
    issues: list[ImportIssue] = field(default_factory=list)

    def reject(self, row: Row, reason: str) -> None:
        self.issues.append(_issue(row, ImportIssueKind.REJECTED, reason))

    def conflict(self, row: Row, reason: str) -> None:
        self.issues.append(_issue(row, ImportIssueKind.CONFLICT, reason))


@dataclass(frozen=True)
class Loader(Generic[R, P]):
    """How one kind of file loads, in three parts:
    - `reference`: what every batch looks things up in (stores, tiers), read once per run;
    - `prepare`: parse and check a batch's rows without the database. The runner calls it in a reader
      thread, one batch ahead, so parsing overlaps the previous batch's round trips;
    - `store`: write a prepared batch in its transaction, adding what it finds to the prepared result.
    """

    reference: Callable[[Session], R]
    prepare: Callable[[list[Row], R, BatchContext], P]
    store: Callable[[Session, P, BatchContext], BatchResult]
    # Rows per transaction unless the caller says: larger batches spread each batch's fixed cost (the
    # checkpoint, the round trips) over more rows, and hold their locks longer.
    batch_size: int = 2000


def _issue(row: Row, kind: ImportIssueKind, reason: str) -> ImportIssue:
    row_no, cells = row
    shown = {name: _shown(name, value) for name, value in cells.items() if value is not None}
    return ImportIssue(row_no=row_no, kind=kind, reason=reason[:500], row=shown)


def _shown(name: str, value: Any) -> Any:
    """A cell as the report keeps it: phones masked (even malformed ones), dates as text."""
    if name == "phone":
        text = str(int(value)) if isinstance(value, int | float) else str(value)
        try:
            return mask_phone(normalize_phone(text))
        except ValueError:
            return f"{text[:3]}****{text[-2:]}" if len(text) > 6 else "****"
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value

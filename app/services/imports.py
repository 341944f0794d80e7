"""Import jobs: one file of members or purchases, loaded in batches, each batch one transaction.

A batch commits its rows, the issues it found and the job's checkpoint (`rows_done`) together, so an
import stopped anywhere resumes after the last committed batch and never loads a row twice. Loading
the same rows again changes nothing either: members match by phone, purchases by (store, receipt),
opening points by (source, member). A run of a file whose job finished therefore reports every row as
unchanged.

The job of a file is found by its content (SHA-256): running a file again while its job is unfinished
resumes that job. A job is claimed with a conditional UPDATE; a running job whose heartbeat stopped
(its process was killed) may be claimed by the next run.
"""

from __future__ import annotations

import csv
import io
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.mall_time import MallTime
from app.models import ImportIssue, ImportIssueKind, ImportJob, ImportKind, ImportStatus
from app.pii import PhoneVault
from app.services.import_batches import DEFAULT_SOURCE, BatchContext, Loader, Row
from app.services.import_files import (
    MEMBER_FIELDS,
    PURCHASE_FIELDS,
    Field,
    ImportFileInvalid,
    file_digest,
    open_rows,
)
from app.services.import_members import MEMBERS_LOADER
from app.services.import_purchases import PURCHASES_LOADER

# A running job not heard from for this long was stopped without saying so (killed, machine lost).
HEARTBEAT_TIMEOUT = timedelta(minutes=2)
UNFINISHED = (ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.INTERRUPTED)
FIELDS: dict[ImportKind, tuple[Field, ...]] = {
    ImportKind.MEMBERS: MEMBER_FIELDS,
    ImportKind.PURCHASES: PURCHASE_FIELDS,
}
LOADERS: dict[ImportKind, Loader[Any, Any]] = {
    ImportKind.MEMBERS: MEMBERS_LOADER,
    ImportKind.PURCHASES: PURCHASES_LOADER,
}
ISSUE_LABELS = {ImportIssueKind.REJECTED: "未导入", ImportIssueKind.CONFLICT: "冲突"}

T = TypeVar("T")


class TransactionRunner(Protocol):
    """Runs `work` in a transaction of its own, again if it loses a race (`app.db.run_transaction`)."""

    def __call__(self, work: Callable[[Session], T], /) -> T: ...


class ImportInProgress(Conflict):
    code, message = "IMPORT_IN_PROGRESS", "该文件正在导入中，请等待其完成"


class ImportJobNotFound(NotFound):
    message = "导入任务不存在"


@dataclass(frozen=True)
class ImportRequest:
    kind: ImportKind
    path: Path
    file_name: str
    mapping: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    # Opening points are credited once per member and source: a second file of the same source does
    # not credit a member twice.
    source: str = DEFAULT_SOURCE
    points_expire_on: date | None = None
    operator_id: int | None = None
    stored_path: str | None = None


def prepare(session: Session, request: ImportRequest, *, now: datetime) -> ImportJob:
    """The job of this file: its unfinished job if there is one (to resume), else a new one."""
    digest, size = file_digest(request.path)
    unfinished = session.scalars(
        select(ImportJob)
        .where(
            ImportJob.kind == request.kind,
            ImportJob.file_sha256 == digest,
            ImportJob.status.in_(UNFINISHED),
        )
        .order_by(ImportJob.id.desc())
        .limit(1)
    ).first()
    if unfinished is not None:
        return unfinished
    job = ImportJob(
        kind=request.kind,
        status=ImportStatus.QUEUED,
        file_name=request.file_name[:255],
        file_sha256=digest,
        file_size=size,
        stored_path=request.stored_path,
        options={
            "mapping": request.mapping,
            "encoding": request.encoding,
            "source": request.source,
            "points_expire_on": request.points_expire_on.isoformat() if request.points_expire_on else None,
        },
        operator_id=request.operator_id,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def claim(session: Session, job_id: int, *, now: datetime) -> bool:
    """Make the job ours to run: a queued or interrupted job, or a running one whose runner went quiet."""
    claimable = ImportJob.status.in_((ImportStatus.QUEUED, ImportStatus.INTERRUPTED)) | (
        (ImportJob.status == ImportStatus.RUNNING) & (ImportJob.heartbeat_at < now - HEARTBEAT_TIMEOUT)
    )
    result = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, claimable)
        .values(
            status=ImportStatus.RUNNING,
            started_at=now,
            rows_at_start=ImportJob.rows_done,
            heartbeat_at=now,
            error=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Progress:
    rows_done: int
    rows_total: int | None
    fraction: float | None  # of the file read, when rows_total is unknown


def run(
    job_id: int,
    path: Path,
    *,
    run_in_transaction: TransactionRunner,
    vault: PhoneVault,
    clock: Callable[[], MallTime],
    batch_size: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> ImportJob:
    """Claim the job and load its file from its checkpoint to the end; returns the finished job.

    Raises ImportInProgress when another runner holds the job, ImportFileInvalid (the job is then
    FAILED) for a file that cannot be read. Anything else, an interrupt included, leaves the job
    INTERRUPTED at its last committed batch, to be resumed by the next run.
    """

    def start(session: Session) -> ImportJob:
        if not claim(session, job_id, now=clock().now):
            if session.get(ImportJob, job_id) is None:
                raise ImportJobNotFound()
            raise ImportInProgress()
        job = session.get(ImportJob, job_id)
        assert job is not None
        session.refresh(job)
        return job

    job = run_in_transaction(start)
    loader = LOADERS[job.kind]
    batch_size = batch_size or loader.batch_size
    reference = run_in_transaction(loader.reference)
    try:
        with (
            open_rows(
                path, FIELDS[job.kind], job.options.get("mapping") or {}, encoding=job.options.get("encoding")
            ) as source,
            ThreadPoolExecutor(1, thread_name_prefix="import-reader") as reader,
            _prompt_handoffs(),
        ):
            if source.total is not None and job.rows_total != source.total:
                job = run_in_transaction(lambda session: _set_total(session, job_id, source.total))
            rows = source.rows
            _skip(rows, job.rows_done)
            if progress:
                progress(Progress(job.rows_done, job.rows_total, source.position()))
            started = job
            rows_done = job.rows_done

            def read_ahead(at: MallTime) -> tuple[int, Any] | None:
                batch = list(islice(rows, batch_size))
                if not batch:
                    return None
                return len(batch), loader.prepare(batch, reference, BatchContext(started, vault, at))

            # The clock is read here, not in the thread: it may need the caller's context (Flask's).
            pending = reader.submit(read_ahead, clock())
            while (ready := pending.result()) is not None:
                pending = reader.submit(read_ahead, clock())
                size, prepared = ready
                run_in_transaction(
                    partial(
                        _load_batch,
                        job=started,
                        size=size,
                        prepared=prepared,
                        loader=loader,
                        vault=vault,
                        clock=clock,
                        fraction_read=source.position(),
                    )
                )
                rows_done += size
                if progress:
                    progress(Progress(rows_done, started.rows_total, source.position()))
    except ImportFileInvalid as exc:
        error = exc.message
        run_in_transaction(lambda session: _stop(session, job_id, ImportStatus.FAILED, error, clock))
        raise
    except ImportInProgress:
        raise  # another runner took the job over: it is theirs to stop
    except BaseException:
        run_in_transaction(lambda session: _stop(session, job_id, ImportStatus.INTERRUPTED, None, clock))
        raise
    return run_in_transaction(lambda session: _stop(session, job_id, ImportStatus.FINISHED, None, clock))


# While the reader thread parses, each of the main thread's dozen database round trips a batch ends
# in a wait for the GIL, by default up to 5 ms (sys.getswitchinterval): on a large import that added up
# to more than the parsing. A shorter interval makes the reader hand over promptly.
READER_SWITCH_INTERVAL = 0.0005
_handoffs_lock = threading.Lock()
_handoffs = {"runs": 0, "interval": 0.0}


@contextmanager
def _prompt_handoffs() -> Iterator[None]:
    """The shorter switch interval while any import runs in this process (it is process-wide)."""
    with _handoffs_lock:
        if _handoffs["runs"] == 0:
            _handoffs["interval"] = sys.getswitchinterval()
            sys.setswitchinterval(min(READER_SWITCH_INTERVAL, _handoffs["interval"]))
        _handoffs["runs"] += 1
    try:
        yield
    finally:
        with _handoffs_lock:
            _handoffs["runs"] -= 1
            if _handoffs["runs"] == 0:
                sys.setswitchinterval(_handoffs["interval"])


def _skip(rows: Iterator[Row], count: int) -> None:
    """Past the rows a previous run committed (read again, not loaded)."""
    for _ in islice(rows, count):
        pass


def _set_total(session: Session, job_id: int, total: int | None) -> ImportJob:
    job = _locked_job(session, job_id)
    job.rows_total = total
    return job


def _locked_job(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise ImportJobNotFound()
    return job


def _load_batch(
    session: Session,
    job: ImportJob,
    size: int,
    prepared: Any,
    loader: Loader[Any, Any],
    vault: PhoneVault,
    clock: Callable[[], MallTime],
    fraction_read: float,
) -> None:
    """Store the batch and move the job's checkpoint past it, in the caller's transaction. `job` is the
    run's (detached): what the loader reads of it (options, size) does not change while it runs."""
    at = clock()
    result = loader.store(session, prepared, BatchContext(job, vault, at))
    for issue in result.issues:
        issue.job_id = job.id
    session.add_all(result.issues)
    counts = {
        "rows_done": size,
        "created": result.created,
        "merged": result.merged,
        "unchanged": result.unchanged,
        "rejected": sum(issue.kind is ImportIssueKind.REJECTED for issue in result.issues),
        "conflicts": sum(issue.kind is ImportIssueKind.CONFLICT for issue in result.issues),
    }
    # One conditional UPDATE, not the row read FOR UPDATE and written back: a round trip and the ORM's
    # flush less per batch. It locks the job row until the commit, as the read did.
    checkpoint = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job.id, ImportJob.status == ImportStatus.RUNNING)
        .values(
            {name: getattr(ImportJob, name) + count for name, count in counts.items()}
            | {"heartbeat_at": at.now, "bytes_done": int(job.file_size * fraction_read)}
        )
        .execution_options(synchronize_session=False)
    )
    if not checkpoint.rowcount:  # type: ignore[attr-defined]
        raise ImportInProgress()  # stopped, or taken over by another runner after our heartbeat went stale


def _stop(
    session: Session, job_id: int, status: ImportStatus, error: str | None, clock: Callable[[], MallTime]
) -> ImportJob:
    job = _locked_job(session, job_id)
    job.status = status
    job.error = error
    if status is ImportStatus.FINISHED:
        job.finished_at = clock().now
    session.flush()
    return job


@dataclass(frozen=True)
class Speed:
    rows_per_second: int
    seconds_left: int | None  # None until there is something to go by


def speed(job: ImportJob) -> Speed | None:
    """How fast the job's current run loads, and the time it has left; None before its first batch."""
    if job.started_at is None or job.heartbeat_at is None or job.heartbeat_at <= job.started_at:
        return None
    seconds = (job.heartbeat_at - job.started_at).total_seconds()
    rows = job.rows_done - job.rows_at_start
    if rows <= 0:
        return None
    rate = rows / seconds
    if job.rows_total:
        left = max(job.rows_total - job.rows_done, 0) / rate
    elif job.bytes_done > 0 and job.rows_done > 0:  # a CSV: the rows left, from the bytes left
        bytes_per_row = job.bytes_done / job.rows_done
        left = max(job.file_size - job.bytes_done, 0) / bytes_per_row / rate
    else:
        return Speed(round(rate), None)
    return Speed(round(rate), round(left))


def job_by_id(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None:
        raise ImportJobNotFound()
    return job


def recent_jobs(session: Session, *, limit: int = 50) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def resumable_jobs(session: Session, *, now: datetime) -> list[ImportJob]:
    """Jobs a background runner should (re)start: uploaded, interrupted, or running with a stale heartbeat."""
    stale = now - HEARTBEAT_TIMEOUT
    return list(
        session.scalars(
            select(ImportJob)
            .where(
                ImportJob.stored_path.is_not(None),
                ImportJob.status.in_((ImportStatus.QUEUED, ImportStatus.INTERRUPTED))
                | ((ImportJob.status == ImportStatus.RUNNING) & (ImportJob.heartbeat_at < stale)),
            )
            .order_by(ImportJob.id)
        )
    )


def report_csv(session: Session, job: ImportJob) -> Iterator[str]:
    """The job's rejected and conflicting rows as CSV text (UTF-8 with a BOM, so Excel shows Chinese),
    streamed in row order: row number, what happened, why, then the row's cells (phones masked)."""
    fields = FIELDS[job.kind]
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    buffer.write("\ufeff")
    writer.writerow(["行号", "结果", "原因", *(f.label for f in fields)])
    yield flush()
    issues = session.scalars(
        select(ImportIssue)
        .where(ImportIssue.job_id == job.id)
        .order_by(ImportIssue.row_no, ImportIssue.id)
        .execution_options(yield_per=1000)
    )
    for issue in issues:
        writer.writerow(
            [
                issue.row_no,
                ISSUE_LABELS[issue.kind],
                issue.reason,
                *(issue.row.get(f.name, "") for f in fields),
            ]
        )
        yield flush()

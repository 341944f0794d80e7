"""Imports of members and purchases from a POS or an old CRM (数据导入): one job per file, the row it
has reached (so an interrupted import resumes there), and the rows it rejected or merged with a conflict."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base, str_enum, utcnow


class ImportKind(enum.StrEnum):
    MEMBERS = "members"
    PURCHASES = "purchases"


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"  # uploaded in the console, not started yet
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped part-way; the next run of the same file resumes it
    FINISHED = "finished"
    FAILED = "failed"  # the file itself is unusable (format, missing columns)


class ImportIssueKind(enum.StrEnum):
    REJECTED = "rejected"  # the row was not loaded
    CONFLICT = "conflict"  # the row was merged into an existing record that disagrees with it


class ImportJob(Base):
    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_kind_file_sha256", "kind", "file_sha256"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ImportKind] = mapped_column(str_enum(ImportKind))
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    # The same file (by content) resumes its unfinished job instead of starting another.
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)
    # Where the uploaded file is kept until the job finishes (console uploads); None for the CLI.
    stored_path: Mapped[str | None] = mapped_column(String(500))
    # field → column header, encoding, opening-points source and expiry: what the run was asked to do.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # Data rows (after the header) committed so far: the checkpoint a resumed run skips to.
    rows_done: Mapped[int] = mapped_column(default=0)
    rows_total: Mapped[int | None]  # known up front for Excel files; CSV files are read once only
    created: Mapped[int] = mapped_column(default=0)
    merged: Mapped[int] = mapped_column(default=0)  # matched an existing record and updated it
    unchanged: Mapped[int] = mapped_column(default=0)  # already imported: a re-import, a duplicate row
    rejected: Mapped[int] = mapped_column(default=0)
    conflicts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the current run claimed the job, and how far the job was then: with the heartbeat, the
    # run's speed, hence its time left.
    started_at: Mapped[datetime | None]
    rows_at_start: Mapped[int] = mapped_column(default=0)
    # How far into the file the committed rows reach, for the time left of a CSV (rows unknown up front).
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    # Renewed by every committed batch: a running job whose heartbeat is old was killed.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ImportIssue(Base):
    """A row of an import that was rejected or merged with a conflict: the report operators download."""

    __tablename__ = "import_issues"
    __table_args__ = (Index("ix_import_issues_job_id_row_no", "job_id", "row_no"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id"))
    row_no: Mapped[int]  # as a spreadsheet numbers it: the header is row 1
    kind: Mapped[ImportIssueKind] = mapped_column(str_enum(ImportIssueKind))
    reason: Mapped[str] = mapped_column(String(500))
    # The row as read, field by field, with the phone masked: enough to find and fix it in the file.
    row: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

"""Console page: data import (数据导入) — upload a POS or CRM export of members or purchases; the
`run-imports` job loads it (resuming after any stop) while the list shows its progress by htmx; the
report of rejected and conflicting rows downloads as CSV. The same engine as `flask import`."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

from flask import Response, redirect, render_template, request, stream_with_context, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse

from app.console.forms import format_mall_datetime
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.db import transaction, utcnow
from app.errors import DomainError, ValidationFailed
from app.extensions import extensions
from app.models import ImportJob, ImportKind, ImportStatus, OperatorRole
from app.request_limits import allows_large_upload
from app.services import imports
from app.services.import_files import ImportFileInvalid, open_rows

VIEW_ROLES = (OperatorRole.ADMIN, OperatorRole.AUDITOR)
UPLOAD_ROLES = (OperatorRole.ADMIN,)
KIND_LABELS = {ImportKind.MEMBERS: "会员", ImportKind.PURCHASES: "历史消费"}
STATUS_LABELS = {
    ImportStatus.QUEUED: "排队中",
    ImportStatus.RUNNING: "导入中",
    ImportStatus.INTERRUPTED: "已中断，待继续",
    ImportStatus.FINISHED: "已完成",
    ImportStatus.FAILED: "失败",
}
SOURCE_MAX_LENGTH = 32


@bp.get("/imports")
@console_page(*VIEW_ROLES)
def imports_list() -> str:
    return _render_list(error=None, values={})


@bp.post("/imports")
@console_page(*UPLOAD_ROLES)
@allows_large_upload
def import_upload() -> BaseResponse | tuple[str, int]:
    try:
        request_ = _import_request(request.form, request.files.get("file"))
        with transaction() as session:
            job = imports.prepare(session, request_, now=utcnow())
            if job.stored_path != request_.stored_path:  # the same file's unfinished job: resume that one
                Path(request_.stored_path or "").unlink(missing_ok=True)
            detail = {"kind": job.kind.value, "file_name": job.file_name, "file_sha256": job.file_sha256}
            audit_console_action(session, "import.create", "import_job", job.id, detail)
    except DomainError as error:
        return _render_list(error=error, values=request.form), 422
    return redirect(url_for("console.imports_list", created=job.id))


@bp.get("/imports/<int:job_id>/progress")
@console_page(*VIEW_ROLES)
def import_progress(job_id: int) -> str:
    """One job's row alone, for htmx to swap in while it is queued or running."""
    with transaction() as session:
        job = imports.job_by_id(session, job_id)
    return render_template("console/_import_row.html", job=_line(job))


@bp.get("/imports/<int:job_id>/report.csv")
@console_page(*VIEW_ROLES)
def import_report(job_id: int) -> Response:
    with transaction() as session:
        job = imports.job_by_id(session, job_id)
        audit_console_action(session, "import.download_report", "import_job", job.id, {})

    def rows() -> Any:
        with transaction() as session:
            yield from imports.report_csv(session, job)

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="import-{job.id}-report.csv"'
    return response


def _import_request(form: Any, upload: FileStorage | None) -> imports.ImportRequest:
    kind = form.get("kind", "")
    if kind not in {k.value for k in ImportKind}:
        raise ValidationFailed("请选择导入类型")
    if upload is None or not upload.filename:
        raise ValidationFailed("请选择要导入的文件（CSV 或 Excel .xlsx）")
    source = (form.get("source") or imports.DEFAULT_SOURCE).strip()
    if len(source) > SOURCE_MAX_LENGTH:
        raise ValidationFailed(f"数据来源最多 {SOURCE_MAX_LENGTH} 个字符")
    expire_on = None
    if raw_expiry := (form.get("points_expire_on") or "").strip():
        try:
            expire_on = date.fromisoformat(raw_expiry)
        except ValueError:
            raise ValidationFailed("积分到期日格式错误（如 2027-12-31）") from None
    mapping = _mapping(form.get("mapping") or "")
    encoding = (form.get("encoding") or "").strip() or None
    folder = Path(extensions().config.IMPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"{uuid.uuid4().hex}-{secure_filename(upload.filename) or 'upload'}"
    upload.save(stored)
    try:  # a file that cannot be read, or lacks a column, is refused now rather than by the job
        with open_rows(stored, imports.FIELDS[ImportKind(kind)], mapping, encoding=encoding):
            pass
    except ImportFileInvalid:
        stored.unlink(missing_ok=True)
        raise
    return imports.ImportRequest(
        kind=ImportKind(kind),
        path=stored,
        file_name=upload.filename,
        mapping=mapping,
        encoding=encoding,
        source=source,
        points_expire_on=expire_on,
        operator_id=console_operator().id,
        stored_path=str(stored),
    )


def _mapping(text: str) -> dict[str, str]:
    """`字段=列名` lines, e.g. `phone=手机号码`."""
    mapping = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        field, sep, column = line.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise ImportFileInvalid(f"列映射第 {number} 行应为「字段=列名」，如 phone=手机号码")
        mapping[field.strip()] = column.strip()
    return mapping


def _render_list(error: DomainError | None, values: Any) -> str:
    with transaction() as session:
        jobs = imports.recent_jobs(session)
    return render_template(
        "console/imports.html",
        jobs=[_line(job) for job in jobs],
        error=error.message if error else None,
        values=values,
        created=request.args.get("created", type=int),
        kinds=KIND_LABELS,
        fields={kind.value: imports.FIELDS[kind] for kind in ImportKind},
        can_upload=console_operator().role in UPLOAD_ROLES,
    )


def _line(job: ImportJob) -> dict[str, Any]:
    unfinished = job.status in imports.UNFINISHED
    return {
        "id": job.id,
        "kind": KIND_LABELS[job.kind],
        "file_name": job.file_name,
        "status": STATUS_LABELS[job.status],
        "status_key": job.status.value,
        "unfinished": unfinished,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "counts": {
            "新增": job.created,
            "合并": job.merged,
            "未变": job.unchanged,
            "未导入": job.rejected,
            "冲突": job.conflicts,
        },
        "speed": _speed_text(job) if job.status is ImportStatus.RUNNING else "",
        "has_report": bool(job.rejected or job.conflicts),
        "error": job.error,
        "created_at": format_mall_datetime(job.created_at),
        "finished_at": format_mall_datetime(job.finished_at) if job.finished_at else "",
    }


def _speed_text(job: ImportJob) -> str:
    """ "8,000 行/秒，预计剩余 2 分钟" while a job runs."""
    speed = imports.speed(job)
    if speed is None:
        return ""
    text = f"{speed.rows_per_second:,} 行/秒"
    if speed.seconds_left is not None:
        minutes, seconds = divmod(speed.seconds_left, 60)
        text += f"，预计剩余 {minutes} 分 {seconds} 秒" if minutes else f"，预计剩余 {seconds} 秒"
    return text

"""Console page: the scheduler's recent job runs (定时任务), newest first, by job; with who holds the
scheduler's lease. Admins and auditors only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import render_template, request

from app.console.forms import FormInvalid, load_form
from app.console.job_schemas import JobRunListArgs
from app.console.pages import bp, console_page
from app.db import transaction, utcnow
from app.extensions import mall_time
from app.jobs import JOBS
from app.models import JobRun, OperatorRole
from app.services import scheduling

PER_PAGE = 30


@dataclass(frozen=True)
class RunLine:
    id: int
    job: str
    runner: str
    started_at: datetime
    finished_at: datetime | None
    duration: str
    outcome: str
    counts: str
    error: str | None


@bp.get("/jobs")
@console_page(OperatorRole.ADMIN, OperatorRole.AUDITOR)
def job_runs() -> str | tuple[str, int]:
    raw = {key: value for key, value in request.args.items() if value.strip()}
    try:
        args = load_form(
            JobRunListArgs(), {"per_page": PER_PAGE, **raw}, labels={"job": "任务", "page": "页码"}
        )
    except FormInvalid as error:
        page = render_template("console/jobs.html", runs=[], jobs=sorted(JOBS), error=error.message, total=0)
        return page, error.status
    tz = mall_time().tz
    with transaction() as session:
        runs, total = scheduling.run_page(
            session, args["job"], offset=(args["page"] - 1) * PER_PAGE, limit=PER_PAGE
        )
        leader = scheduling.lease_holder(session, scheduling.LEADER_LEASE, utcnow())
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "console/jobs.html",
        runs=[_line(run, tz) for run in runs],
        jobs=sorted(JOBS),
        chosen_job=args["job"],
        page=args["page"],
        pages=pages,
        total=total,
        leader=leader,
        error=None,
    )


def _line(run: JobRun, tz: ZoneInfo) -> RunLine:
    finished = run.finished_at
    return RunLine(
        id=run.id,
        job=run.job,
        runner=run.runner,
        started_at=run.started_at.astimezone(tz),
        finished_at=finished.astimezone(tz) if finished else None,
        duration=_duration((finished - run.started_at).total_seconds()) if finished else "运行中",
        outcome=run.outcome or ("失败" if run.error else "—"),
        counts="，".join(f"{key} {value}" for key, value in (run.counts or {}).items()) or "—",
        error=run.error,
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "不到 1 秒"
    if seconds < 60:
        return f"{int(seconds)} 秒"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} 分 {rest} 秒"

"""The scheduler's job runs, for operators: what ran when, what it did, what failed."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, operator_required
from app.console.job_schemas import JobRunListArgs, JobRunPageOut
from app.db import transaction, utcnow
from app.services import scheduling

blp = Blueprint("admin_job_views", __name__, url_prefix="/api/admin/v1", description="运营后台：定时任务")


@blp.route("/job-runs", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(JobRunListArgs(), location="query")
@blp.response(200, JobRunPageOut)
def list_job_runs(args: dict[str, Any]) -> dict[str, Any]:
    """定时任务运行记录（新的在前）：开始、结束、结果与计数、错误；可按任务筛选"""
    with transaction() as session:
        runs, total = scheduling.run_page(
            session, args["job"], offset=(args["page"] - 1) * args["per_page"], limit=args["per_page"]
        )
        leader = scheduling.lease_holder(session, scheduling.LEADER_LEASE, utcnow())
    return {
        "items": runs,
        "total": total,
        "page": args["page"],
        "per_page": args["per_page"],
        "leader": leader,
    }

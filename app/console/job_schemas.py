"""Request and response shapes of the scheduler's job runs."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.console.schemas import PageArgs
from app.jobs import JOBS


class JobRunListArgs(PageArgs):
    job = ma.fields.String(
        load_default=None, validate=validate.OneOf(sorted(JOBS)), metadata={"description": "只看这个任务"}
    )


class JobRunOut(ma.Schema):
    id = ma.fields.Integer()
    job = ma.fields.String(metadata={"description": "任务名，如 generate-tasks、push-digests"})
    runner = ma.fields.String(
        metadata={"description": "运行它的调度进程（主机:进程号:编号），手动运行为 cli"}
    )
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "为空：仍在运行（或进程中断）"}
    )
    outcome = ma.fields.String(allow_none=True, metadata={"description": "运行结果摘要"})
    counts = ma.fields.Dict(allow_none=True, metadata={"description": "计数，如 sent、retrying、dead"})
    error = ma.fields.String(allow_none=True, metadata={"description": "失败时的错误"})


class JobRunPageOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(JobRunOut))
    total = ma.fields.Integer()
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    leader = ma.fields.String(
        allow_none=True, metadata={"description": "当前持有调度主锁的进程；为空表示没有调度进程在运行"}
    )

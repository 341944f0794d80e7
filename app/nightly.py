"""The nightly refresh (a job, like those of app.jobs): member statistics with lifecycle stages, RFM,
system and rule tags, KPIs, in that order.

Each step works on ranges of member ids, one transaction per range, so memory stays flat and an
interrupted run loses at most the ranges under way; every step gives the same result when run again, so
the remedy for an interruption is to run the whole refresh again (`flask tags refresh`).

The statistics and tags steps run `connections` ranges at once (NIGHTLY_CONNECTIONS, default 2): the
work is MySQL's, and one statement at a time leaves all but one of its cores idle. Ranges are disjoint
sets of members, so their transactions touch different rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from typing import TypeVar

from flask import Flask
from sqlalchemy.orm import Session

from app.db import concurrent_writers, transaction
from app.mall_time import MallTime
from app.services import kpis, segmentation, tags
from app.services.tag_rules import RuleContext
from app.steps import StepReport, timed

DEFAULT_BATCH_SIZE = 20_000

STEPS = ("stats", "rfm", "tags", "kpis")

# (step, done, total): called after each unit of work of a step.
Progress = Callable[[str, int, int], None]
Result = TypeVar("Result")


@dataclass
class RefreshReport:
    as_of: date
    steps: list[StepReport] = field(default_factory=list)
    # The statistics step recomputed only the queued members (else everyone).
    incremental: bool = False
    queued: int = 0
    transitions: int = 0
    tags_added: int = 0
    tags_removed: int = 0

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)


def refresh(
    app: Flask,
    at: MallTime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    connections: int | None = None,
    steps: tuple[str, ...] = STEPS,
    progress: Progress | None = None,
) -> RefreshReport:
    """Run the nightly steps for business day `at.today`, `connections` ranges of members at a time
    (default NIGHTLY_CONNECTIONS)."""
    report = RefreshReport(as_of=at.today)
    notify = progress or (lambda _step, _done, _total: None)
    with transaction(app) as session:
        limits = segmentation.thresholds(session, at)
        batches = segmentation.member_id_batches(session, batch_size)
        tags.ensure_system_tags(session)

    connections = concurrent_writers(
        connections or app.extensions["mallmember"].config.NIGHTLY_CONNECTIONS, app
    )

    def per_batch(
        name: str, work: Callable[[Session, int, int], Result], tally: Callable[[Result], int]
    ) -> None:
        """`work` on every range, in its own transaction and thread; `tally` adds a range's result to
        the report, in this thread, and returns its rows."""

        def one_range(bounds: tuple[int, int]) -> Result:
            with app.app_context(), transaction(app) as session:
                return work(session, *bounds)

        # At most `connections` ranges are under way: a range starts when an earlier one has finished
        # and been reported, so an interruption (or a failure) leaves no more than that many begun.
        ranges = iter(batches)
        with timed(report.steps, name) as step, ThreadPoolExecutor(connections) as pool:
            under_way = deque(pool.submit(one_range, bounds) for bounds in islice(ranges, connections))
            done = 0
            while under_way:
                step.rows += tally(under_way.popleft().result())
                done += 1
                notify(name, done, len(batches))
                following = next(ranges, None)
                if following is not None:
                    under_way.append(pool.submit(one_range, following))

    if "stats" in steps:
        with transaction(app) as session:
            plan = segmentation.plan_stats(session, limits)
            if plan.incremental:
                report.queued = segmentation.queue_changed_members(session, plan, limits)
        report.incremental = plan.incremental

        def stats_and_stages(session: Session, low: int, high: int) -> segmentation.StatsWritten:
            return segmentation.refresh_stats(session, low, high, limits, queued_only=plan.incremental)

        def count_stats(written: segmentation.StatsWritten) -> int:
            report.transitions += written.transitions
            return written.rows

        per_batch("stats", stats_and_stages, count_stats)
        with transaction(app) as session:
            segmentation.finish_stats(session, plan, limits)
    if "rfm" in steps:
        with timed(report.steps, "rfm") as step, transaction(app) as session:
            step.rows = segmentation.score_rfm(session, at.today).scored
            notify("rfm", 1, 1)
    if "tags" in steps:
        with transaction(app) as session:
            rule_tags = tags.rule_tags(session)
            context = RuleContext.load(session, at)
            changed_since = segmentation.untagged_since(session, at.today)
            session.expunge_all()

        def refresh_tags(session: Session, low: int, high: int) -> tags.RefreshCounts:
            counts = tags.refresh_system_tags(session, low, high, at, changed_since=changed_since)
            for tag in rule_tags:
                counts += tags.refresh_tag(session, tag, low, high, context)
            return counts

        def count_tags(counts: tags.RefreshCounts) -> int:
            report.tags_added += counts.added
            report.tags_removed += counts.removed
            return counts.added + counts.removed

        per_batch("tags", refresh_tags, count_tags)
        with transaction(app) as session:
            segmentation.finish_tags(session, at)
    if "kpis" in steps:
        with timed(report.steps, "kpis") as step, transaction(app) as session:
            step.rows = kpis.compute_day(session, at.today, at)
            notify("kpis", 1, 1)
    return report

"""Advisor tasks (导购任务): the daily generation from task rules, and what advisors do with tasks.

Generating business day D is set-based SQL, never a Python loop per member:

1. expire: open tasks more than `expire_after_overdue_days` past their due date become expired;
2. candidates: per range of member ids, one INSERT … SELECT into the scratch table
   `advisor_task_candidates`: the members each active rule's trigger hits (UNION ALL over the rules),
   less those with a task of the rule's type within its cool-down (NOT EXISTS; a task of that type
   today always counts), each given to their bound advisor or else to their store's pool (members with
   neither are skipped), one row per member and task type (ROW_NUMBER: the most urgent rule wins),
   at most a cap's worth per advisor or pool and range (ROW_NUMBER again);
3. assign: one INSERT … SELECT into `advisor_tasks` keeping, per advisor and per store pool, the most
   urgent candidates (ROW_NUMBER by priority, due date, member) up to the daily cap less the tasks it
   already got on D; then the scratch rows go.

A member's store is the store of their sign-up scene; an advisor's task carries it too (or, failing
that, the advisor's own store). Members bound to an advisor who is no longer active go to that store's
pool until an operator reassigns them. Running a day again adds nothing: what was generated is excluded by
the cool-down and the unique key (member, task type, business day), and the cap counts it. Segment
rules read the tags of the last nightly refresh, as segments do everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.errors import Conflict, Forbidden, NotFound
from app.mall_time import MallTime
from app.models import (
    LifecycleTransition,
    Member,
    MemberTag,
    QrScene,
    Segment,
    Staff,
    StaffRole,
    Store,
    Tag,
    Tier,
)
from app.models.task import (
    AdvisorTask,
    TaskCandidate,
    TaskOutcome,
    TaskRule,
    TaskSettings,
    TaskStatus,
    TaskTrigger,
)
from app.services import segmentation, task_rules
from app.services.tag_rules import RuleContext, compile_rule, members_matching
from app.steps import StepReport, timed

DEFAULT_BATCH_SIZE = 100_000
STEPS = ("expire", "candidates", "assign")

# (step, done, total): called after each unit of work of a step.
Progress = Callable[[str, int, int], None]
UnitOfWork = Callable[[], AbstractContextManager[Session]]


class TaskAlreadyDone(Conflict):
    code, message = "TASK_ALREADY_DONE", "任务已完成"


class TaskExpired(Conflict):
    code, message = "TASK_EXPIRED", "任务已过期，不能再完成"


# --- generation -------------------------------------------------------------------------------------


# What a candidate carries into its task.
TASK_COLUMNS = (
    "member_id",
    "advisor_id",
    "store_id",
    "rule_id",
    "task_type",
    "priority",
    "trigger_kind",
    "trigger_value",
    "due_date",
)


@dataclass
class GenerationReport:
    business_date: date
    rules: int = 0
    steps: list[StepReport] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def rows(self, step: str) -> int:
        return sum(report.rows for report in self.steps if report.name == step)

    @property
    def generated(self) -> int:
        return self.rows("assign")


def generate_day(
    unit_of_work: UnitOfWork,
    business_date: date,
    at: MallTime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> GenerationReport:
    """Generate the tasks of `business_date`: each step (and each member range of the candidates
    step) in its own unit of work, e.g. `lambda: transaction(app)`. Safe to interrupt and run again."""
    report = GenerationReport(business_date)
    notify = progress or (lambda _step, _done, _total: None)
    with unit_of_work() as session:
        settings = task_rules.settings_of(session)
        rules = task_rules.active_rules(session, business_date)
        context = RuleContext.load(session, at)
        segments = {
            segment.id: segment
            for segment in session.scalars(
                select(Segment).where(Segment.id.in_([rule.segment_id for rule in rules if rule.segment_id]))
            )
        }
        tag_codes = dict(
            session.execute(
                select(Tag.id, Tag.code).where(Tag.id.in_([rule.tag_id for rule in rules if rule.tag_id]))
            ).all()
        )
        batches = segmentation.member_id_batches(session, batch_size)
        session.expunge_all()
    report.rules = len(rules)
    triggers = [RuleTrigger.of(rule, business_date, context, segments, tag_codes) for rule in rules]

    with timed(report.steps, "expire") as step, unit_of_work() as session:
        step.rows = expire_overdue(session, business_date, settings)
        notify("expire", 1, 1)
    with timed(report.steps, "candidates") as step:
        with unit_of_work() as session:
            clear_candidates(session)
        for done, (low, high) in enumerate(batches, start=1):
            if triggers:
                with unit_of_work() as session:
                    step.rows += stage_candidates(session, triggers, business_date, low, high, settings)
            notify("candidates", done, len(batches))
    with timed(report.steps, "assign") as step, unit_of_work() as session:
        step.rows = assign_capped(session, business_date, settings, at.now)
        clear_candidates(session)
        notify("assign", 1, 1)
    return report


@dataclass(frozen=True)
class RuleTrigger:
    """A rule as the generation SQL needs it: what it records and how to find its members."""

    rule_id: int
    task_type: str
    priority: int
    trigger_kind: TaskTrigger
    trigger_value: str
    due_date: date
    # A task of the same type on or after this day blocks a new one (the cool-down, today included).
    blocked_since: date
    tag_id: int | None
    segment_condition: Any
    from_stage: str | None
    to_stage: str | None

    @classmethod
    def of(
        cls,
        rule: TaskRule,
        day: date,
        context: RuleContext,
        segments: dict[int, Segment],
        tag_codes: dict[int, str],
    ) -> RuleTrigger:
        condition = None
        if rule.trigger_kind is TaskTrigger.TAG:
            value = tag_codes.get(rule.tag_id or 0, str(rule.tag_id))
        elif rule.trigger_kind is TaskTrigger.SEGMENT:
            segment = segments[rule.segment_id or 0]
            value = f"{segment.id}:{segment.name}"
            condition = compile_rule(segment.rule, context)
        else:
            value = f"{rule.from_stage.value if rule.from_stage else '*'}>{rule.to_stage}"
        return cls(
            rule_id=rule.id,
            task_type=rule.task_type.value,
            priority=rule.priority,
            trigger_kind=rule.trigger_kind,
            trigger_value=value[:100],
            due_date=day + timedelta(days=rule.due_in_days),
            blocked_since=day - timedelta(days=max(rule.cool_down_days - 1, 0)),
            tag_id=rule.tag_id,
            segment_condition=condition,
            from_stage=rule.from_stage.value if rule.from_stage else None,
            to_stage=rule.to_stage.value if rule.to_stage else None,
        )

    def members(self, day: date, low: int, high: int) -> Select[Any]:
        """SELECT member_id of the members in [low, high) the trigger hits on `day`."""
        if self.trigger_kind is TaskTrigger.TAG:
            return select(MemberTag.member_id.label("member_id")).where(
                MemberTag.tag_id == self.tag_id, MemberTag.member_id >= low, MemberTag.member_id < high
            )
        if self.trigger_kind is TaskTrigger.SEGMENT:
            return (
                members_matching(self.segment_condition)
                .where(Member.id >= low, Member.id < high)
                .with_only_columns(Member.id.label("member_id"))
            )
        moves = select(LifecycleTransition.member_id.label("member_id")).where(
            LifecycleTransition.business_date == day,
            LifecycleTransition.to_stage == self.to_stage,
            LifecycleTransition.member_id >= low,
            LifecycleTransition.member_id < high,
        )
        if self.from_stage is not None:
            moves = moves.where(LifecycleTransition.from_stage == self.from_stage)
        return moves.distinct()

    def candidates(self, day: date, low: int, high: int) -> Select[Any]:
        """The trigger's members outside the cool-down, with what their task records."""
        hit = self.members(day, low, high).subquery()
        recent = exists().where(
            AdvisorTask.member_id == hit.c.member_id,
            AdvisorTask.task_type == self.task_type,
            AdvisorTask.business_date >= self.blocked_since,
        )
        return select(
            hit.c.member_id,
            literal(self.rule_id, Integer).label("rule_id"),
            literal(self.task_type, String).label("task_type"),
            literal(self.priority, Integer).label("priority"),
            literal(self.trigger_kind.value, String).label("trigger_kind"),
            literal(self.trigger_value, String).label("trigger_value"),
            literal(self.due_date, Date).label("due_date"),
        ).where(~recent)


def expire_overdue(session: Session, day: date, settings: TaskSettings) -> int:
    """Open tasks more than `expire_after_overdue_days` past their due date become expired."""
    last_due = day - timedelta(days=settings.expire_after_overdue_days + 1)
    return session.execute(  # type: ignore[attr-defined]
        update(AdvisorTask)
        .where(AdvisorTask.status == TaskStatus.OPEN, AdvisorTask.due_date <= last_due)
        .values(status=TaskStatus.EXPIRED)
    ).rowcount


def clear_candidates(session: Session) -> None:
    """Empty the scratch table (what an interrupted run left, or this run's rows once assigned)."""
    session.execute(delete(TaskCandidate))


def stage_candidates(
    session: Session, triggers: list[RuleTrigger], day: date, low: int, high: int, settings: TaskSettings
) -> int:
    """Write the day's candidates among members with ids in [low, high): one statement for all rules.

    Only each assignee's `cap` most urgent candidates of the range are written: the day's most urgent
    `cap` overall are among them, in the order `assign_capped` uses, so nothing it would keep is lost."""
    hits = union_all(*(trigger.candidates(day, low, high) for trigger in triggers)).subquery("hits")
    scene_store = QrScene.store_id
    advisor = aliased(Staff)
    # A member still bound to an advisor who left is their store's until an operator reassigns them.
    working_advisor = case((advisor.is_active.is_(True), advisor.id))
    store_id = func.coalesce(scene_store, advisor.store_id)
    ranked = (
        select(
            hits.c.member_id,
            working_advisor.label("advisor_id"),
            store_id.label("store_id"),
            hits.c.rule_id,
            hits.c.task_type,
            hits.c.priority,
            hits.c.trigger_kind,
            hits.c.trigger_value,
            hits.c.due_date,
            func.row_number()
            .over(
                partition_by=[hits.c.member_id, hits.c.task_type],
                order_by=[hits.c.priority, hits.c.rule_id],
            )
            .label("pick"),
        )
        .select_from(hits)
        .join(Member, Member.id == hits.c.member_id)
        .outerjoin(QrScene, QrScene.id == Member.signup_scene_id)
        .outerjoin(advisor, advisor.id == Member.advisor_id)
        # A merged member is history: its survivor is the one to contact; a deleted one nobody contacts.
        .where(
            or_(working_advisor.is_not(None), store_id.is_not(None)),
            Member.merged_into_member_id.is_(None),
            Member.deleted_at.is_(None),
        )
        .subquery("ranked")
    )
    columns = TASK_COLUMNS
    picked = select(*(ranked.c[name] for name in columns)).where(ranked.c.pick == 1).subquery("picked")
    placed = select(
        picked,
        func.row_number().over(partition_by=_assignee(picked), order_by=_urgency(picked)).label("place"),
    ).subquery("placed")
    kept = select(literal(day, Date), *(placed.c[name] for name in columns)).where(
        placed.c.place <= _cap(placed, settings)
    )
    return session.execute(  # type: ignore[attr-defined]
        insert(TaskCandidate).from_select(["business_date", *columns], kept)
    ).rowcount


def _assignee(table: Any) -> Any:
    """One key per advisor and per store pool: the advisor's id, or minus the pool's store id."""
    return case((table.c.advisor_id.is_not(None), table.c.advisor_id), else_=-table.c.store_id)


def _urgency(table: Any) -> list[Any]:
    """The order in which an assignee's candidates are kept under the cap."""
    return [table.c.priority, table.c.due_date, table.c.member_id, table.c.task_type]


def _cap(table: Any, settings: TaskSettings) -> Any:
    return case(
        (table.c.advisor_id.is_not(None), settings.daily_cap_per_advisor),
        else_=settings.daily_cap_per_store_pool,
    )


def assign_capped(session: Session, day: date, settings: TaskSettings, now: datetime) -> int:
    """Turn the staged candidates into tasks, the most urgent first, up to each advisor's and each
    store pool's daily cap less what it already got today."""
    candidates = TaskCandidate.__table__
    tasks = AdvisorTask.__table__
    given = (
        select(_assignee(tasks).label("assignee"), func.count().label("tasks"))
        .where(tasks.c.business_date == day)
        .group_by(_assignee(tasks))
        .subquery("given")
    )
    ranked = (
        select(
            candidates,
            func.row_number()
            .over(partition_by=_assignee(candidates), order_by=_urgency(candidates))
            .label("place"),
            (_cap(candidates, settings) - func.coalesce(given.c.tasks, 0)).label("room"),
        )
        .select_from(candidates)
        .outerjoin(given, given.c.assignee == _assignee(candidates))
        .where(candidates.c.business_date == day)
        .subquery("ranked")
    )
    columns = ["business_date", *TASK_COLUMNS]
    kept = select(
        *(ranked.c[name] for name in columns),
        literal(TaskStatus.OPEN.value, String),
        literal(now, AdvisorTask.created_at.type),
    ).where(ranked.c.place <= ranked.c.room)
    return session.execute(  # type: ignore[attr-defined]
        insert(AdvisorTask).from_select([*columns, "status", "created_at"], kept)
    ).rowcount


# --- advisors' tasks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskItem:
    """A task as an advisor's list shows it."""

    task: AdvisorTask
    member_nickname: str | None
    member_phone_masked: str
    overdue: bool


def is_overdue(task: AdvisorTask, day: date) -> bool:
    return task.status is TaskStatus.OPEN and task.due_date < day


def advisor_daily_tasks(session: Session, staff_id: int, day: date) -> list[TaskItem]:
    """An advisor's list for business day `day`: the tasks generated that day (whatever their
    status) and every earlier one still open; overdue first, then by priority, due date, id."""
    return _task_list(session, AdvisorTask.advisor_id == staff_id, day)


def store_pool_tasks(session: Session, store_id: int, day: date) -> list[TaskItem]:
    """The store pool's list for `day` (tasks of members without an advisor), ordered as above."""
    return _task_list(session, and_(AdvisorTask.advisor_id.is_(None), AdvisorTask.store_id == store_id), day)


def _task_list(session: Session, whose: Any, day: date) -> list[TaskItem]:
    overdue = and_(AdvisorTask.status == TaskStatus.OPEN, AdvisorTask.due_date < day)
    rows = session.execute(
        select(AdvisorTask, Member.nickname, Member.phone_masked)
        .join(Member, Member.id == AdvisorTask.member_id)
        .where(
            whose,
            or_(
                AdvisorTask.business_date == day,
                and_(AdvisorTask.status == TaskStatus.OPEN, AdvisorTask.business_date < day),
            ),
        )
        .order_by(case((overdue, 0), else_=1), AdvisorTask.priority, AdvisorTask.due_date, AdvisorTask.id)
    ).all()
    return [TaskItem(task, nickname, phone, is_overdue(task, day)) for task, nickname, phone in rows]


@dataclass(frozen=True)
class TaskCounts:
    """One advisor's (or, with `advisor_id` None, one store pool's) tasks for a day's digest."""

    advisor_id: int | None
    store_id: int | None
    new_today: int
    open: int
    overdue: int


def daily_counts(session: Session, day: date) -> list[TaskCounts]:
    """Per advisor and per store pool holding open tasks or tasks generated on `day`: how many are new
    that day, open, and overdue (what a morning digest says). One GROUP BY; advisors first, by id."""
    pool_store = case((AdvisorTask.advisor_id.is_(None), AdvisorTask.store_id))
    open_ = AdvisorTask.status == TaskStatus.OPEN
    rows = session.execute(
        select(
            AdvisorTask.advisor_id,
            pool_store.label("store_id"),
            func.sum(case((AdvisorTask.business_date == day, 1), else_=0)),
            func.sum(case((open_, 1), else_=0)),
            func.sum(case((and_(open_, AdvisorTask.due_date < day), 1), else_=0)),
        )
        .where(or_(AdvisorTask.business_date == day, and_(open_, AdvisorTask.business_date < day)))
        .group_by(AdvisorTask.advisor_id, pool_store)
        .order_by(AdvisorTask.advisor_id.is_(None), AdvisorTask.advisor_id, pool_store)
    ).all()
    return [
        TaskCounts(advisor_id, store_id, int(new), int(open_count), int(overdue))
        for advisor_id, store_id, new, open_count, overdue in rows
    ]


def get_task(session: Session, task_id: int) -> AdvisorTask:
    task = session.get(AdvisorTask, task_id)
    if task is None:
        raise NotFound("任务不存在")
    return task


def may_complete(task: AdvisorTask, staff: Staff) -> bool:
    """The assigned advisor; for a pool task, any active advisor of the task's store."""
    if not staff.is_active:
        return False
    if task.advisor_id is not None:
        return task.advisor_id == staff.id
    return staff.role is StaffRole.ADVISOR and staff.store_id is not None and staff.store_id == task.store_id


def complete_task(
    session: Session,
    task_id: int,
    *,
    staff_id: int,
    outcome: TaskOutcome,
    note: str | None,
    at: MallTime,
) -> AdvisorTask:
    """Record that the task was done, with its outcome. Idempotent: completing it again with the same
    outcome and note returns it unchanged; a different outcome after it is done is a 409."""
    task = get_task(session, task_id)
    staff = session.get(Staff, staff_id)
    if staff is None or not may_complete(task, staff):
        raise Forbidden("只能完成分配给自己的任务或本店公共池的任务")
    finished = session.execute(
        update(AdvisorTask)
        .where(AdvisorTask.id == task_id, AdvisorTask.status == TaskStatus.OPEN)
        .values(
            status=TaskStatus.DONE,
            outcome=outcome,
            note=note,
            completed_at=at.now,
            completed_by_staff_id=staff_id,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(task)
    if finished:
        return task
    if task.status is TaskStatus.EXPIRED:
        raise TaskExpired()
    if task.outcome is outcome and task.note == note:
        return task  # a retry of the same completion
    raise TaskAlreadyDone(details={"outcome": task.outcome.value if task.outcome else None})


def move_open_tasks(session: Session, from_staff_id: int, to_staff_id: int | None) -> int:
    """Give an advisor's open tasks to another advisor, or (None) to their stores' pools, e.g. when
    the advisor leaves. Done and expired tasks stay with whoever had them. Returns how many moved."""
    return session.execute(  # type: ignore[attr-defined]
        update(AdvisorTask)
        .where(AdvisorTask.advisor_id == from_staff_id, AdvisorTask.status == TaskStatus.OPEN)
        .values(advisor_id=to_staff_id)
        .execution_options(synchronize_session=False)
    ).rowcount


def render_message(session: Session, task_id: int) -> str:
    """The task's message for its member, from its rule's current template."""
    task = get_task(session, task_id)
    rule = session.get_one(TaskRule, task.rule_id)
    member, tier_name = session.execute(
        select(Member, Tier.name).join(Tier, Tier.id == Member.tier_id).where(Member.id == task.member_id)
    ).one()
    advisor_name = (
        session.scalar(select(Staff.name).where(Staff.id == task.advisor_id)) if task.advisor_id else None
    )
    store_name = (
        session.scalar(select(Store.name).where(Store.id == task.store_id)) if task.store_id else None
    )
    values = {
        "会员昵称": member.nickname or "会员",
        "等级": tier_name,
        "积分": str(member.points_balance),
        "顾问": advisor_name or "您的专属顾问",
        "门店": store_name or "",
        "生日": f"{member.birthday.month}月{member.birthday.day}日" if member.birthday else "",
        "到期日": f"{task.due_date.month}月{task.due_date.day}日",
    }
    return render_template(rule.message_template, values)


def render_template(template: str, values: dict[str, str]) -> str:
    """Replace each known {placeholder}; the template was checked on save, so none is unknown."""
    for name, value in values.items():
        template = template.replace(f"{{{name}}}", value)
    return template


# --- operators' view --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilter:
    business_date: date | None = None
    advisor_id: int | None = None
    store_id: int | None = None
    status: TaskStatus | None = None
    overdue_on: date | None = None  # only open tasks due before this day


def task_page(session: Session, filters: TaskFilter, *, offset: int, limit: int) -> tuple[list[Any], int]:
    """Tasks matching the filters (newest day first, then by priority), and how many match in all."""
    conditions = []
    if filters.business_date is not None:
        conditions.append(AdvisorTask.business_date == filters.business_date)
    if filters.advisor_id is not None:
        conditions.append(AdvisorTask.advisor_id == filters.advisor_id)
    if filters.store_id is not None:
        conditions.append(AdvisorTask.store_id == filters.store_id)
    if filters.status is not None:
        conditions.append(AdvisorTask.status == filters.status)
    if filters.overdue_on is not None:
        conditions.append(
            and_(AdvisorTask.status == TaskStatus.OPEN, AdvisorTask.due_date < filters.overdue_on)
        )
    total = session.scalar(select(func.count()).select_from(AdvisorTask).where(*conditions)) or 0
    rows = session.execute(
        select(AdvisorTask, Member.nickname, Member.phone_masked, Staff.name.label("advisor_name"))
        .join(Member, Member.id == AdvisorTask.member_id)
        .outerjoin(Staff, Staff.id == AdvisorTask.advisor_id)
        .where(*conditions)
        .order_by(AdvisorTask.business_date.desc(), AdvisorTask.priority, AdvisorTask.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), total

"""Daily task generation on small hand-built malls with known answers (cool-down, cap by priority,
store pools, active dates, triggers), and what advisors do with tasks (complete, move, render)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import nightly
from app.db import run_transaction, transaction
from app.errors import Forbidden
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import (
    AdvisorTask,
    LifecycleStage,
    Member,
    MemberTag,
    QrScene,
    SceneKind,
    Segment,
    Staff,
    StaffRole,
    Tag,
    TagKind,
    TagSource,
    TaskOutcome,
    TaskRule,
    TaskSettings,
    TaskStatus,
    TaskTrigger,
    TaskType,
)
from app.services import task_rules, tasks
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 15)


def at_day(day: date) -> MallTime:
    """07:30 (mall time) on business day `day`, when the job runs."""
    return MallTime(datetime(day.year, day.month, day.day, 7, 30, tzinfo=SHANGHAI).astimezone(UTC), SHANGHAI)


def generate(app: Flask, day: date = DAY, batch_size: int = 2) -> tasks.GenerationReport:
    return tasks.generate_day(lambda: transaction(app), day, at_day(day), batch_size=batch_size)


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    """Two stores with a sign-up scene each; advisors Ann and Ben in store 1, Cid in store 2."""
    tiers = factories.create_tiers(session)
    store1 = factories.create_store(session, name="优衣库")
    store2 = factories.create_store(session, name="喜茶")
    scenes = {}
    for store in (store1, store2):
        scene = QrScene(kind=SceneKind.STORE, name=store.name, scene=f"store-{store.id}", store_id=store.id)
        session.add(scene)
        session.flush()
        scenes[store.id] = scene
    return {
        "tier": tiers[0],
        "store1": store1,
        "store2": store2,
        "scenes": scenes,
        "ann": factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安", store_id=store1.id),
        "ben": factories.create_staff(session, "ben", StaffRole.ADVISOR, name="本", store_id=store1.id),
        "cid": factories.create_staff(session, "cid", StaffRole.ADVISOR, name="西", store_id=store2.id),
    }


@pytest.fixture
def new_member(app: Flask, session: Session, mall: dict) -> Callable[..., Member]:
    """A member; `advisor` binds them, `store` signs them up through that store's scene."""
    with app.app_context():
        vault = extensions().phone_vault
    phones = iter(range(13100000000, 13199999999))

    def create(advisor: Staff | None = None, store: Any = None, **overrides: Any) -> Member:
        return factories.create_member(
            session,
            vault,
            str(next(phones)),
            mall["tier"],
            advisor_id=advisor.id if advisor else None,
            signup_scene_id=mall["scenes"][store.id].id if store else None,
            **overrides,
        )

    return create


@pytest.fixture
def tag(session: Session) -> Callable[[str, list[Member]], Tag]:
    """A manual tag held by the given members."""

    def create(code: str, holders: list[Member]) -> Tag:
        created = Tag(code=code, name=code, kind=TagKind.MANUAL)
        session.add(created)
        session.flush()
        for member in holders:
            session.add(MemberTag(member_id=member.id, tag_id=created.id, source=TagSource.MANUAL))
        session.flush()
        return created

    return create


def add_rule(app: Flask, **fields: Any) -> TaskRule:
    values: dict[str, Any] = {
        "name": f"规则{fields.get('priority', 10)}-{fields.get('task_type', TaskType.VIP_INVITATION)}",
        "task_type": TaskType.VIP_INVITATION,
        "message_template": "{会员昵称}您好，我是{顾问}",
        "priority": 10,
        "cool_down_days": 30,
        "due_in_days": 3,
        **fields,
    }
    if "tag" in values:
        values["trigger_kind"], values["tag_id"] = TaskTrigger.TAG, values.pop("tag").id
    return run_transaction(
        lambda session: task_rules.create_rule(session, task_rules.RuleValues(**values), operator_id=None),
        app=app,
    )


def tasks_of(session: Session) -> list[tuple[Any, ...]]:
    """(member, advisor, store, type, business date) of every task, by member and type."""
    return [
        tuple(row)
        for row in session.execute(
            select(
                AdvisorTask.member_id,
                AdvisorTask.advisor_id,
                AdvisorTask.store_id,
                AdvisorTask.task_type,
                AdvisorTask.business_date,
            ).order_by(AdvisorTask.member_id, AdvisorTask.task_type, AdvisorTask.business_date)
        )
    ]


def set_caps(session: Session, per_advisor: int, per_pool: int = 30) -> None:
    session.merge(
        TaskSettings(
            id=1,
            daily_cap_per_advisor=per_advisor,
            daily_cap_per_store_pool=per_pool,
            expire_after_overdue_days=7,
        )
    )
    session.flush()


def test_tagged_members_get_tasks_for_their_advisor_or_their_store_pool(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    bound = new_member(advisor=mall["ann"], store=mall["store2"])
    pooled = new_member(store=mall["store1"])
    nobody = new_member()  # no advisor, no sign-up store: nobody to give it to
    untagged = new_member(advisor=mall["ann"])
    leaver = factories.create_staff(
        session, "gone", StaffRole.ADVISOR, store_id=mall["store2"].id, is_active=False
    )
    left_behind = new_member(advisor=leaver)  # their advisor left: the advisor's store's pool
    vip = tag("vip", [bound, pooled, nobody, left_behind])
    rule = add_rule(app, tag=vip, due_in_days=2)

    report = generate(app)

    assert tasks_of(session) == [
        (bound.id, mall["ann"].id, mall["store2"].id, TaskType.VIP_INVITATION, DAY),
        (pooled.id, None, mall["store1"].id, TaskType.VIP_INVITATION, DAY),
        (left_behind.id, None, mall["store2"].id, TaskType.VIP_INVITATION, DAY),
    ]
    task = session.scalars(select(AdvisorTask).where(AdvisorTask.member_id == bound.id)).one()
    assert (task.rule_id, task.trigger_kind, task.trigger_value) == (rule.id, TaskTrigger.TAG, "vip")
    assert (task.status, task.due_date, task.priority) == (TaskStatus.OPEN, DAY + timedelta(days=2), 10)
    assert report.generated == 3 and report.rules == 1
    assert [step.name for step in report.steps] == list(tasks.STEPS)
    assert untagged.id not in {row[0] for row in tasks_of(session)}


def test_generating_the_same_day_again_adds_nothing(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    members = [new_member(advisor=mall["ann"]) for _ in range(3)]
    add_rule(app, tag=tag("vip", members), cool_down_days=0)
    first = generate(app)

    again = generate(app, batch_size=1000)

    assert (first.generated, again.generated) == (3, 0)
    assert len(tasks_of(session)) == 3


def test_the_cool_down_blocks_the_same_task_type_for_that_many_days(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    member = new_member(advisor=mall["ann"])
    vip = tag("vip", [member])
    add_rule(app, tag=vip, cool_down_days=7)
    # Another type for the same member is not held back by it.
    add_rule(app, tag=vip, cool_down_days=7, task_type=TaskType.BIRTHDAY_GREETING, name="生日")

    counts = [generate(app, DAY + timedelta(days=offset)).generated for offset in (0, 1, 6, 7)]

    assert counts == [2, 0, 0, 2]


def test_the_daily_cap_keeps_the_most_urgent_tasks_per_advisor(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    set_caps(session, per_advisor=3)
    ann_members = [new_member(advisor=mall["ann"]) for _ in range(3)]
    ben_member = new_member(advisor=mall["ben"])
    everyone = [*ann_members, ben_member]
    add_rule(app, tag=tag("low", everyone), priority=5, task_type=TaskType.WIN_BACK_DORMANT, name="低")
    add_rule(app, tag=tag("high", ann_members[1:]), priority=1, task_type=TaskType.VIP_INVITATION, name="高")

    generate(app)

    ann_tasks = [
        (member, kind) for member, advisor, _, kind, _ in tasks_of(session) if advisor == mall["ann"].id
    ]
    assert sorted(ann_tasks) == sorted(
        [
            (ann_members[1].id, TaskType.VIP_INVITATION),
            (ann_members[2].id, TaskType.VIP_INVITATION),
            (ann_members[0].id, TaskType.WIN_BACK_DORMANT),  # the lowest member id among the rest
        ]
    )
    assert [
        (member, kind) for member, advisor, _, kind, _ in tasks_of(session) if advisor == mall["ben"].id
    ] == [(ben_member.id, TaskType.WIN_BACK_DORMANT)]

    # The cap counts what the day already has: a rerun adds nothing, a higher cap tops it up.
    assert generate(app).generated == 0
    set_caps(session, per_advisor=4)
    assert generate(app).generated == 1


def test_member_ranges_do_not_change_which_tasks_are_kept(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    set_caps(session, per_advisor=2, per_pool=2)
    members = [
        new_member(advisor=[mall["ann"], mall["ben"], None][index % 3], store=mall["store1"])
        for index in range(12)
    ]
    add_rule(app, tag=tag("low", members), priority=7, task_type=TaskType.WIN_BACK_DORMANT, name="低")
    add_rule(app, tag=tag("high", members[5:]), priority=3, name="高")
    results = []
    for batch_size in (1, 5, 1000):
        session.execute(AdvisorTask.__table__.delete())
        generate(app, batch_size=batch_size)
        results.append(tasks_of(session))

    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 6  # two each for Ann, Ben and the pool
    assert {kind for *_, kind, _ in results[0]} == {TaskType.VIP_INVITATION}


def test_store_pools_have_their_own_cap(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    set_caps(session, per_advisor=30, per_pool=2)
    pool1 = [new_member(store=mall["store1"]) for _ in range(3)]
    pool2 = [new_member(store=mall["store2"])]
    add_rule(app, tag=tag("vip", [*pool1, *pool2]))

    generate(app)

    assert [(member, store) for member, _, store, *_ in tasks_of(session)] == [
        (pool1[0].id, mall["store1"].id),
        (pool1[1].id, mall["store1"].id),
        (pool2[0].id, mall["store2"].id),
    ]


def test_two_rules_of_one_type_give_one_task_from_the_more_urgent_rule(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    member = new_member(advisor=mall["ann"])
    add_rule(app, tag=tag("a", [member]), priority=8, name="甲")
    urgent = add_rule(app, tag=tag("b", [member]), priority=2, name="乙")

    generate(app)

    (task,) = session.scalars(select(AdvisorTask)).all()
    assert (task.rule_id, task.priority, task.trigger_value) == (urgent.id, 2, "b")


@pytest.mark.parametrize(
    ("active_from", "active_until", "active", "generated"),
    [
        (None, None, True, 1),
        (DAY, DAY, True, 1),
        (DAY + timedelta(days=1), None, True, 0),
        (None, DAY - timedelta(days=1), True, 0),
        (None, None, False, 0),
    ],
)
def test_only_active_rules_within_their_dates_generate(
    app: Flask,
    mall: dict,
    new_member: Callable[..., Member],
    tag: Callable,
    active_from: date | None,
    active_until: date | None,
    active: bool,
    generated: int,
) -> None:
    member = new_member(advisor=mall["ann"])
    add_rule(app, tag=tag("vip", [member]), active_from=active_from, active_until=active_until, active=active)

    assert generate(app).generated == generated


def test_a_lifecycle_transition_of_the_day_triggers_its_rule(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    day_before = DAY - timedelta(days=1)
    going_dormant = new_member(advisor=mall["ann"], joined_at=at_day(day_before).now - timedelta(days=400))
    staying = new_member(advisor=mall["ann"], joined_at=at_day(day_before).now - timedelta(days=400))
    # Bought 89 business days before the day before: active then, dormant on DAY.
    factories.create_purchase(
        session, mall["store1"], 10_000, at_day(day_before - timedelta(days=89)).now, going_dormant
    )
    factories.create_purchase(session, mall["store1"], 10_000, at_day(day_before).now, staying)
    nightly.refresh(app, at_day(day_before), steps=("stats",))
    nightly.refresh(app, at_day(DAY), steps=("stats",))
    rule = add_rule(
        app,
        trigger_kind=TaskTrigger.LIFECYCLE,
        from_stage=LifecycleStage.ACTIVE,
        to_stage=LifecycleStage.DORMANT,
        task_type=TaskType.WIN_BACK_DORMANT,
    )
    add_rule(  # no member went from new to dormant
        app,
        name="新转沉睡",
        trigger_kind=TaskTrigger.LIFECYCLE,
        from_stage=LifecycleStage.NEW,
        to_stage=LifecycleStage.DORMANT,
        task_type=TaskType.WIN_BACK_DORMANT,
        priority=1,
    )

    generate(app)
    next_day = generate(app, DAY + timedelta(days=1)).generated  # the transition was on DAY only

    (task,) = session.scalars(select(AdvisorTask)).all()
    assert (task.member_id, task.rule_id, task.trigger_value) == (going_dormant.id, rule.id, "active>dormant")
    assert next_day == 0


def test_a_segment_rule_gives_tasks_to_the_segments_members(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    rich = new_member(advisor=mall["cid"], points_balance=5_000)
    rich_vip = new_member(advisor=mall["cid"], points_balance=9_000)
    new_member(advisor=mall["cid"], points_balance=10)
    tag("vip", [rich_vip])
    segment = Segment(
        name="高积分非VIP",
        rule={
            "all": [
                {"field": "points_balance", "op": ">=", "value": 1_000},
                {"field": "tag", "op": "!=", "value": "vip"},
            ]
        },
    )
    session.add(segment)
    session.flush()
    add_rule(app, trigger_kind=TaskTrigger.SEGMENT, segment_id=segment.id)

    generate(app)

    (task,) = session.scalars(select(AdvisorTask)).all()
    assert (task.member_id, task.advisor_id) == (rich.id, mall["cid"].id)
    assert (task.trigger_kind, task.trigger_value) == (TaskTrigger.SEGMENT, f"{segment.id}:高积分非VIP")


def test_open_tasks_long_past_due_expire_at_the_next_generation(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    member = new_member(advisor=mall["ann"])
    add_rule(app, tag=tag("vip", [member]), due_in_days=1, cool_down_days=60)
    generate(app)  # due DAY + 1; expires once more than 7 days overdue

    statuses = []
    for offset in (8, 9):
        generate(app, DAY + timedelta(days=offset))
        statuses.append(session.scalars(select(AdvisorTask.status)).one())

    assert statuses == [TaskStatus.OPEN, TaskStatus.EXPIRED]


@pytest.fixture
def generated(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> dict[str, AdvisorTask]:
    """Ann's task, a store-1 pool task, and Ann's task of another member, all of DAY."""
    ann_member = new_member(advisor=mall["ann"], nickname="小红", birthday=date(1990, 3, 8))
    pooled = new_member(store=mall["store1"])
    other = new_member(advisor=mall["ann"])
    add_rule(
        app,
        tag=tag("vip", [ann_member, pooled, other]),
        message_template="{会员昵称}（{等级}，{积分}分），生日{生日}，{顾问}请在{到期日}前联系",
    )
    generate(app)
    by_member = {task.member_id: task for task in session.scalars(select(AdvisorTask))}
    return {"ann": by_member[ann_member.id], "pool": by_member[pooled.id], "other": by_member[other.id]}


def complete(
    app: Flask, task: AdvisorTask, staff: Staff, outcome: TaskOutcome, note: str | None = None
) -> Any:
    return run_transaction(
        lambda session: tasks.complete_task(
            session, task.id, staff_id=staff.id, outcome=outcome, note=note, at=at_day(DAY)
        ),
        app=app,
    )


def test_completing_a_task_records_the_outcome_once(app: Flask, mall: dict, generated: dict) -> None:
    done = complete(app, generated["ann"], mall["ann"], TaskOutcome.BOOKED_VISIT, "周六来店")
    again = complete(app, generated["ann"], mall["ann"], TaskOutcome.BOOKED_VISIT, "周六来店")

    assert (done.status, done.outcome, done.note) == (TaskStatus.DONE, TaskOutcome.BOOKED_VISIT, "周六来店")
    assert (done.completed_by_staff_id, done.completed_at) == (mall["ann"].id, at_day(DAY).now)
    assert again.completed_at == done.completed_at
    with pytest.raises(tasks.TaskAlreadyDone):
        complete(app, generated["ann"], mall["ann"], TaskOutcome.NO_ANSWER)


def test_only_the_assigned_advisor_or_a_store_advisor_for_a_pool_task_may_complete_it(
    app: Flask, mall: dict, generated: dict
) -> None:
    with pytest.raises(Forbidden):
        complete(app, generated["ann"], mall["ben"], TaskOutcome.CONTACTED)
    with pytest.raises(Forbidden):
        complete(app, generated["pool"], mall["cid"], TaskOutcome.CONTACTED)  # another store's advisor

    pool_done = complete(app, generated["pool"], mall["ben"], TaskOutcome.CONTACTED)

    assert pool_done.completed_by_staff_id == mall["ben"].id


def test_an_expired_task_can_no_longer_be_completed(
    app: Flask, session: Session, mall: dict, generated: dict
) -> None:
    session.execute(
        AdvisorTask.__table__.update()
        .where(AdvisorTask.id == generated["ann"].id)
        .values(status=TaskStatus.EXPIRED.value)
    )

    with pytest.raises(tasks.TaskExpired):
        complete(app, generated["ann"], mall["ann"], TaskOutcome.CONTACTED)


def test_moving_open_tasks_leaves_finished_ones_with_their_advisor(
    app: Flask, session: Session, mall: dict, generated: dict
) -> None:
    complete(app, generated["other"], mall["ann"], TaskOutcome.NO_ANSWER)

    moved = run_transaction(lambda s: tasks.move_open_tasks(s, mall["ann"].id, mall["ben"].id), app=app)
    to_pool = run_transaction(lambda s: tasks.move_open_tasks(s, mall["ben"].id, None), app=app)

    advisors = dict(session.execute(select(AdvisorTask.id, AdvisorTask.advisor_id)).all())
    assert (moved, to_pool) == (1, 1)
    assert advisors[generated["ann"].id] is None
    assert advisors[generated["other"].id] == mall["ann"].id


def test_an_advisors_list_puts_overdue_tasks_first_then_priority(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    early, urgent, relaxed = (new_member(advisor=mall["ann"]) for _ in range(3))
    add_rule(app, tag=tag("early", [early]), priority=9, due_in_days=0, name="早")
    generate(app, DAY - timedelta(days=2))  # still open, due two days ago
    add_rule(app, tag=tag("urgent", [urgent]), priority=1, task_type=TaskType.BIRTHDAY_GREETING, name="急")
    add_rule(app, tag=tag("relaxed", [relaxed]), priority=5, task_type=TaskType.NEW_MEMBER_WELCOME, name="缓")
    generate(app)

    with transaction(app) as s:
        items = tasks.advisor_daily_tasks(s, mall["ann"].id, DAY)
        pool = tasks.store_pool_tasks(s, mall["store1"].id, DAY)

    assert [(item.task.member_id, item.overdue) for item in items] == [
        (early.id, True),
        (urgent.id, False),
        (relaxed.id, False),
    ]
    assert items[1].member_phone_masked.startswith("131****")
    assert pool == []


def test_daily_counts_tell_each_advisor_and_pool_whats_new_open_and_overdue(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member], tag: Callable
) -> None:
    old, fresh, pooled = (
        new_member(advisor=mall["ann"]),
        new_member(advisor=mall["ann"]),
        new_member(store=mall["store2"]),
    )
    add_rule(app, tag=tag("old", [old]), due_in_days=0, name="旧")
    generate(app, DAY - timedelta(days=1))  # open and due yesterday
    add_rule(app, tag=tag("fresh", [fresh, pooled]), task_type=TaskType.BIRTHDAY_GREETING, name="新")
    generate(app)
    done_id = session.scalars(select(AdvisorTask.id).where(AdvisorTask.member_id == fresh.id)).one()
    run_transaction(
        lambda s: tasks.complete_task(
            s, done_id, staff_id=mall["ann"].id, outcome=TaskOutcome.CONTACTED, note=None, at=at_day(DAY)
        ),
        app=app,
    )

    with transaction(app) as s:
        counts = tasks.daily_counts(s, DAY)

    assert counts == [
        tasks.TaskCounts(mall["ann"].id, None, new_today=1, open=1, overdue=1),
        tasks.TaskCounts(None, mall["store2"].id, new_today=1, open=1, overdue=0),
    ]


def test_a_tasks_message_fills_the_placeholders(app: Flask, mall: dict, generated: dict) -> None:
    with transaction(app) as session:
        text = tasks.render_message(session, generated["ann"].id)
        pool_text = tasks.render_message(session, generated["pool"].id)

    due = DAY + timedelta(days=3)
    assert text == f"小红（普卡，0分），生日3月8日，安请在{due.month}月{due.day}日前联系"
    assert "您的专属顾问" in pool_text and "生日，" in pool_text


@pytest.mark.parametrize(
    ("template", "problem"),
    [("你好{昵称}", "{昵称}"), ("{会员昵称}{points}", "{points}"), ("你好{会员昵称", "花括号")],
)
def test_a_template_with_an_unknown_placeholder_or_stray_brace_is_refused(
    template: str, problem: str
) -> None:
    with pytest.raises(task_rules.InvalidTaskRule) as refused:
        task_rules.check_template(template)

    assert problem in refused.value.message

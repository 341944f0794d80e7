"""Advisors' daily digests and managers' store summaries through the WeCom outbox, against the sandbox:
sent once per recipient per day through rate limits, stale tokens, server errors and timeouts; unknown
users recorded and not retried; two concurrent senders never send a row twice (MariaDB)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app, jobs
from app.config import Config
from app.db import bound_database, run_transaction, transaction
from app.extensions import extensions, mall_time
from app.integrations.wecom_client import WeComClient
from app.models import (
    AdvisorTask,
    JobRun,
    OutboxKind,
    OutboxStatus,
    Staff,
    StaffRole,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
    WeComOutboxMessage,
)
from app.sandbox import SandboxProcess
from app.services import push
from tests import factories

SEND = "/cgi-bin/message/send"
T0 = datetime(2030, 1, 1, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


@pytest.fixture
def today(app: Flask) -> date:
    with app.app_context():
        return mall_time().today


@pytest.fixture
def mall(app: Flask, session: Session, today: date) -> dict[str, Any]:
    """Store 1: advisors ann (3 open tasks, one overdue from earlier) and ben (2, and one done yesterday),
    the pool (one today, one left open yesterday), managers mia and max. Store 2: cid, without tasks."""
    with app.app_context():
        vault = extensions().phone_vault
    tier = factories.create_tiers(session)[0]
    store = factories.create_store(session, name="优衣库")
    other = factories.create_store(session, name="喜茶")
    staff = {
        "ann": factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安", store_id=store.id),
        "ben": factories.create_staff(session, "ben", StaffRole.ADVISOR, name="本", store_id=store.id),
        "cid": factories.create_staff(session, "cid", StaffRole.ADVISOR, name="西", store_id=other.id),
        "mia": factories.create_staff(session, "mia", StaffRole.MANAGER, name="米", store_id=store.id),
        "max": factories.create_staff(session, "max", StaffRole.MANAGER, name="马", store_id=store.id),
    }
    rule = TaskRule(
        name="VIP 邀约",
        trigger_kind=TaskTrigger.TAG,
        task_type=TaskType.VIP_INVITATION,
        message_template="您好",
        priority=1,
        cool_down_days=7,
        due_in_days=3,
        active_from=None,
        active_until=None,
    )
    session.add(rule)
    session.flush()
    phones = iter(range(13500000000, 13599999999))

    def task(
        advisor: Staff | None, day: date, due: date, nickname: str, status: TaskStatus = TaskStatus.OPEN
    ) -> None:
        member = factories.create_member(session, vault, str(next(phones)), tier, nickname=nickname)
        session.add(
            AdvisorTask(
                business_date=day,
                member_id=member.id,
                advisor_id=advisor.id if advisor else None,
                store_id=store.id,
                rule_id=rule.id,
                task_type=TaskType.VIP_INVITATION,
                priority=1,
                trigger_kind=TaskTrigger.TAG,
                trigger_value="vip",
                due_date=due,
                status=status,
            )
        )

    earlier = today - timedelta(days=5)
    task(staff["ann"], earlier, earlier + timedelta(days=1), "逾期客")
    task(staff["ann"], today, today + timedelta(days=3), "小红")
    task(staff["ann"], today, today + timedelta(days=3), "小绿")
    task(staff["ben"], today, today + timedelta(days=3), "小蓝")
    task(staff["ben"], today, today + timedelta(days=3), "小紫")
    task(None, today, today + timedelta(days=3), "池中客")
    yesterday = today - timedelta(days=1)
    task(staff["ben"], yesterday, today, "昨日客", TaskStatus.DONE)
    task(None, yesterday, today, "昨日池中客")
    session.flush()
    return {"store": store, "add_task": task, **staff}


def enqueue(app: Flask, day: date, now: datetime = T0) -> dict[str, int]:
    with app.app_context():
        return run_transaction(
            lambda session: push.enqueue_day(session, day, now, "https://mall.example.com")
        )


def send(app: Flask, clock: Callable[[], datetime], **options: Any) -> push.SendReport:
    with app.app_context():
        return push.send_due(lambda: transaction(app), extensions().wecom, clock, **options)


def recipients(sandbox: SandboxProcess) -> list[str]:
    return sorted(message["touser"] for message in sandbox.messages("wecom"))


def outbox(session: Session) -> dict[str, WeComOutboxMessage]:
    session.expire_all()
    return {row.touser: row for row in session.scalars(select(WeComOutboxMessage))}


def test_the_digest_job_sends_each_advisor_one_card_and_managers_a_summary_once_a_day(
    app: Flask, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    runner = app.test_cli_runner()

    first = runner.invoke(args=["jobs", "run", "push-digests"])
    again = runner.invoke(args=["jobs", "run", "push-digests"])

    assert first.exit_code == 0, first.output
    assert "enqueued 2 digests and 1 store summaries" in first.output
    assert "enqueued 0 digests and 0 store summaries" in again.output
    messages = {message["touser"]: message for message in sandbox.messages("wecom")}
    assert sorted(messages) == ["ann", "ben", "mia|max"]
    ann = messages["ann"]["textcard"]
    assert messages["ann"]["msgtype"] == "textcard"
    assert ann["url"] == "http://127.0.0.1:5000/wecom/advisor/"
    assert ann["title"] == "今日导购任务：3 条"
    assert "今日新增 2 条" in ann["description"] and "已逾期 1 条" in ann["description"]
    # Overdue first, then by priority.
    assert ann["description"].index("逾期客") < ann["description"].index("小红")
    summary = messages["mia|max"]["textcard"]["description"]
    assert "安：待办 3 条" in summary and "本：待办 2 条" in summary and "待认领 2 条" in summary
    assert "昨日任务完成 1/2 条" in summary
    runs = session.scalars(select(JobRun).where(JobRun.job == "push-digests").order_by(JobRun.id)).all()
    assert [run.counts["sent"] for run in runs if run.counts] == [3, 0]
    assert all(run.finished_at and run.error is None for run in runs)


def test_a_digest_lists_the_three_most_urgent_of_the_advisors_own_tasks(
    app: Flask, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    for nickname in ("晚到期甲", "晚到期乙"):
        mall["add_task"](mall["ann"], today, today + timedelta(days=10), nickname)
    session.flush()

    enqueue(app, today)
    send(app, Clock(T0))

    cards = {message["touser"]: message["textcard"] for message in sandbox.messages("wecom")}
    assert cards["ann"]["title"] == "今日导购任务：5 条"
    listed = [line for line in cards["ann"]["description"].split("</div>") if " · " in line]
    assert [line.rsplit(" · ", 1)[1] for line in listed] == ["逾期客", "小红", "小绿"]
    assert [
        line.rsplit(" · ", 1)[1] for line in cards["ben"]["description"].split("</div>") if " · " in line
    ] == [
        "小蓝",
        "小紫",
    ]


def test_push_cli_enqueues_a_given_day_and_send_sends_what_is_due(
    app: Flask, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    runner = app.test_cli_runner()
    sandbox.inject_fault("wecom", SEND, 45009, times=1)

    digests = runner.invoke(args=["push", "digests", "--date", today.isoformat()])
    sent = runner.invoke(args=["push", "send"])

    assert "enqueued 2 digests, 1 store summaries" in digests.output
    assert "rate limited" in digests.output
    # Paused for a minute: nothing is due yet.
    assert "sent 0" in sent.output
    assert recipients(sandbox) == []
    assert {row.status for row in outbox(session).values()} == {OutboxStatus.FAILED}


def test_rate_limit_stale_token_server_error_and_timeout_still_deliver_each_message_once(
    config: Config, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    app = create_app(config.with_overrides(HTTP_TIMEOUT_SECONDS=1))
    clock = Clock(T0)
    try:
        assert enqueue(app, today) == {"digests": 2, "store_summaries": 1}
        sandbox.inject_fault("wecom", SEND, 45009)

        paused = send(app, clock)

        assert paused.rate_limited and paused.sent == 0
        assert {row.attempts for row in outbox(session).values()} == {0}
        assert {row.last_error for row in outbox(session).values()} == {"WeChatRateLimited: errcode 45009"}
        clock.advance(push.RATE_LIMIT_PAUSE - timedelta(seconds=1))
        assert send(app, clock).sent == 0  # still paused
        # ann: a stale token (refreshed, retried at once), then a server error; ben: a timeout.
        sandbox.inject_fault("wecom", SEND, 40001)
        sandbox.inject_fault("wecom", SEND, -1, http_status=502)
        sandbox.inject_fault("wecom", SEND, -1, delay_seconds=2)
        clock.advance(timedelta(seconds=1))

        report = send(app, clock)

        assert (report.sent, report.retrying, report.dead) == (1, 2, 0)
        assert recipients(sandbox) == ["mia|max"]
        rows = outbox(session)
        assert rows["ann"].status is OutboxStatus.FAILED and rows["ann"].attempts == 1
        assert rows["ann"].last_error == "WeComUnavailable: HTTP 502"
        assert rows["ben"].last_error == "WeComUnavailable: ReadTimeout"
        assert rows["ann"].next_attempt_at == clock.at.replace(microsecond=0) + push.RETRY_BACKOFF
        clock.advance(push.RETRY_BACKOFF)

        assert send(app, clock).sent == 2
        clock.advance(timedelta(hours=2))
        assert send(app, clock).sent == 0
        assert enqueue(app, today) == {"digests": 0, "store_summaries": 0}
    finally:
        bound_database(app).engine.dispose()

    assert recipients(sandbox) == ["ann", "ben", "mia|max"]
    rows = outbox(session)
    assert {row.status for row in rows.values()} == {OutboxStatus.SENT}
    assert all(row.msgid and row.sent_at and row.claim_token is None for row in rows.values())
    assert rows["ann"].dedupe_key == push.digest_key(mall["ann"].id, today)
    assert rows["mia|max"].kind is OutboxKind.STORE_SUMMARY
    token_requests = [entry for entry in sandbox.requests("wecom") if entry["path"] == "/cgi-bin/gettoken"]
    assert len(token_requests) == 2  # the first token, and one refresh after 40001


def test_unknown_users_are_recorded_marked_unreachable_and_not_retried(
    app: Flask, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    # WeCom knows ann and mia; ben and max have left the corp.
    sandbox.add_wecom_users({"ann": "安", "mia": "米"})
    clock = Clock(T0)
    enqueue(app, today)

    report = send(app, clock)
    clock.advance(timedelta(days=1))
    later = send(app, clock)

    assert (report.sent, report.dead, sorted(report.invalid_users)) == (2, 1, ["ben", "max"])
    assert later.sent + later.dead + later.retrying == 0
    assert recipients(sandbox) == ["ann", "mia"]
    rows = outbox(session)
    # A partial failure (errcode 0, invaliduser "max"): sent to mia, max recorded.
    assert rows["mia|max"].status is OutboxStatus.SENT and rows["mia|max"].invaliduser == "max"
    # Nobody left to deliver to: dead at once.
    assert rows["ben"].status is OutboxStatus.DEAD and rows["ben"].invaliduser == "ben"
    assert rows["ben"].attempts == 1
    unreachable = session.scalars(
        select(Staff.wecom_userid)
        .where(Staff.wecom_unreachable_since.is_not(None))
        .order_by(Staff.wecom_userid)
    ).all()
    assert unreachable == ["ben", "max"]


def test_a_message_failing_every_time_is_given_up_after_the_maximum_attempts(
    app: Flask, session: Session, sandbox: SandboxProcess, mall: dict, today: date
) -> None:
    sandbox.add_wecom_users({"ann": "安"})
    with app.app_context():
        run_transaction(
            lambda s: push.enqueue(
                s,
                [
                    push.OutboxItem(
                        "digest:ann",
                        OutboxKind.DIGEST,
                        ["ann"],
                        {"msgtype": "text", "text": {"content": "x"}},
                    )
                ],
                today,
                T0,
            )
        )
    sandbox.inject_fault("wecom", SEND, -1, times=push.MAX_ATTEMPTS, http_status=500)
    clock = Clock(T0)

    for _ in range(push.MAX_ATTEMPTS):
        send(app, clock)
        clock.advance(push.MAX_RETRY_BACKOFF)
    send(app, clock)

    row = outbox(session)["ann"]
    assert row.status is OutboxStatus.DEAD and row.attempts == push.MAX_ATTEMPTS
    assert recipients(sandbox) == []


def enqueue_texts(app: Flask, userids: list[str], day: date, now: datetime = T0) -> None:
    items = [
        push.OutboxItem(
            f"digest:{userid}", OutboxKind.DIGEST, [userid], {"msgtype": "text", "text": {"content": userid}}
        )
        for userid in userids
    ]
    with app.app_context():
        run_transaction(lambda s: push.enqueue(s, items, day, now))


class MeetingSenders:
    """Sends through `send`, each sending thread waiting on its first message until `count` of them are
    sending at once (a broken barrier fails the send: they were not sending together)."""

    def __init__(self, send: Callable[[list[str], dict[str, Any]], dict[str, Any]], count: int) -> None:
        self.send = send
        self.meeting = threading.Barrier(count, timeout=10)
        self.first_send = threading.local()
        self.threads: set[str] = set()

    def send_message(self, userids: list[str], message: dict[str, Any]) -> dict[str, Any]:
        if not getattr(self.first_send, "done", False):
            self.first_send.done = True
            self.threads.add(threading.current_thread().name)
            self.meeting.wait()
        return self.send(userids, message)


@pytest.mark.mariadb
def test_several_senders_send_at_once_and_every_row_exactly_once(
    app: Flask, session: Session, sandbox: SandboxProcess, today: date
) -> None:
    userids = [f"advisor{n:03d}" for n in range(45)]
    enqueue_texts(app, userids, today)
    with app.app_context():
        wecom = MeetingSenders(extensions().wecom.send_message, 4)
        report = push.send_due(lambda: transaction(app), wecom, Clock(T0), senders=4)  # type: ignore[arg-type]

    assert len(wecom.threads) == 4
    assert report.sent == len(userids)
    assert recipients(sandbox) == sorted(userids)
    assert {row.status for row in outbox(session).values()} == {OutboxStatus.SENT}


def test_the_push_job_sends_from_one_thread_on_sqlite_and_from_the_configured_senders_elsewhere(
    config: Config, session: Session, sandbox: SandboxProcess, today: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(config.with_overrides(WECOM_PUSH_SENDERS=3))
    userids = [f"advisor{n:03d}" for n in range(25)]
    enqueue_texts(app, userids, today, datetime.now(UTC) - timedelta(seconds=1))
    sqlite = bound_database(app).engine.dialect.name == "sqlite"
    with app.app_context():
        wecom = MeetingSenders(partial(WeComClient.send_message, extensions().wecom), 1 if sqlite else 3)
    monkeypatch.setattr(WeComClient, "send_message", lambda _client, *message: wecom.send_message(*message))
    try:
        with app.app_context():
            report = jobs.send_due_messages(app)
    finally:
        bound_database(app).engine.dispose()

    assert report.sent == len(userids)
    assert recipients(sandbox) == sorted(userids)
    if sqlite:
        assert wecom.threads == {threading.current_thread().name}
    else:
        assert len(wecom.threads) == 3 and threading.current_thread().name not in wecom.threads


@pytest.mark.mariadb
def test_two_concurrent_senders_send_every_row_exactly_once(
    app: Flask, session: Session, sandbox: SandboxProcess, today: date
) -> None:
    userids = [f"advisor{n:03d}" for n in range(60)]
    with app.app_context():
        run_transaction(
            lambda s: push.enqueue(
                s,
                [
                    push.OutboxItem(
                        f"digest:{userid}",
                        OutboxKind.DIGEST,
                        [userid],
                        {"msgtype": "text", "text": {"content": userid}},
                    )
                    for userid in userids
                ],
                today,
                T0,
            )
        )
    start = threading.Barrier(2)
    reports: list[push.SendReport] = []

    def sender() -> None:
        start.wait()
        reports.append(send(app, Clock(T0), batch_size=5))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.sent for report in reports) == len(userids)
    assert recipients(sandbox) == sorted(userids)
    assert {row.status for row in outbox(session).values()} == {OutboxStatus.SENT}


def test_lost_answers_timeouts_and_rate_limits_deliver_every_message_exactly_once(
    app: Flask, session: Session, sandbox: SandboxProcess, today: date
) -> None:
    items = [
        push.OutboxItem(
            f"digest:u{n:02d}",
            OutboxKind.DIGEST,
            [f"u{n:02d}"],
            {"msgtype": "text", "text": {"content": f"#{n}"}},
        )
        for n in range(12)
    ]
    with app.app_context():
        run_transaction(lambda s: push.enqueue(s, items, today, T0))
    # WeCom carries out three sends whose answers are lost, rate-limits one and fails one.
    sandbox.inject_fault("wecom", SEND, kind="lost_answer", times=3)
    sandbox.inject_fault("wecom", SEND, 45009)
    sandbox.inject_fault("wecom", SEND, -1, http_status=502)
    sandbox.inject_fault("wecom", SEND, kind="lost_answer")
    clock = Clock(T0)

    for _ in range(10):
        send(app, clock)
        clock.advance(push.RETRY_BACKOFF * 4)

    delivered = [message["text"]["content"] for message in sandbox.messages("wecom")]
    assert sorted(delivered) == sorted(f"#{n}" for n in range(12))  # none lost, none twice
    # The four sends whose answers were lost were sent again, and WeCom's duplicate check held them back.
    assert len(sandbox.wecom_duplicates()) == 4
    rows = outbox(session)
    assert {row.status for row in rows.values()} == {OutboxStatus.SENT}
    assert sum(row.attempts for row in rows.values()) == 12 + 4 + 1

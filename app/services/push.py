"""Advisors' daily digests and store managers' summaries, through the WeCom outbox.

Enqueueing writes one outbox row per message under a unique dedupe key, so a digest is enqueued once per
advisor per day however often the job runs and however many schedulers run it. Senders claim due rows
with a conditional UPDATE (two senders never hold the same row), send them outside any transaction, and
record each outcome only if they still hold the claim. A sender that dies holding rows gives them back
when its lease runs out. A message sent again (after a timeout, a lost answer, or a sender that died
after sending it) is not delivered twice: every send asks for WeCom's duplicate check, which answers a
repeat of the same message within 4 hours as sent, and the retries of a row all fall within that.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from html import escape
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import insert_row
from app.integrations.wechat_client import WeChatRateLimited, WeChatUnavailable
from app.integrations.wecom_client import WeComClient
from app.models import (
    AdvisorTask,
    Member,
    OutboxKind,
    OutboxStatus,
    Staff,
    StaffRole,
    Store,
    TaskStatus,
    WeComOutboxMessage,
)
from app.services.task_rules import TASK_TYPE_NAMES
from app.services.tasks import daily_counts

ADVISOR_TASKS_PATH = "/wecom/advisor/"
MAX_ATTEMPTS = 6
# Doubled after every failed attempt: 1, 2, 4, 8, 16 minutes, then dead.
RETRY_BACKOFF = timedelta(minutes=1)
MAX_RETRY_BACKOFF = timedelta(hours=1)
# WeCom's quotas are per minute (45011) or per day (45009): pause the whole batch, not one row.
RATE_LIMIT_PAUSE = timedelta(minutes=1)
# Longer than a batch takes to send; a crashed sender's rows are due again after it.
CLAIM_LEASE = timedelta(minutes=5)
DEFAULT_BATCH_SIZE = 100
# A batch per claim when several senders share the outbox.
SENDER_BATCH_SIZE = 10
TOP_PRIORITIES = 3
# A text card's description holds 512 bytes: the busiest advisors only.
SUMMARY_ADVISORS = 6
# WeCom: no such user (all recipients invalid).
_ALL_RECIPIENTS_INVALID = 81013
_DUE = (OutboxStatus.PENDING, OutboxStatus.FAILED)


@dataclass(frozen=True)
class OutboxItem:
    dedupe_key: str
    kind: OutboxKind
    userids: list[str]
    message: dict[str, Any]


# --- enqueueing ------------------------------------------------------------------------------------


def digest_key(staff_id: int, day: date) -> str:
    return f"digest:{staff_id}:{day.isoformat()}"


def store_summary_key(store_id: int, day: date) -> str:
    return f"store-summary:{store_id}:{day.isoformat()}"


def enqueue(session: Session, items: list[OutboxItem], day: date, now: datetime) -> int:
    """Add the items whose dedupe key is new; returns how many were added. Safe against a concurrent
    enqueuer: a key it inserted first is skipped, not an error."""
    keys = [item.dedupe_key for item in items]
    existing = set(
        session.scalars(select(WeComOutboxMessage.dedupe_key).where(WeComOutboxMessage.dedupe_key.in_(keys)))
    )
    added = 0
    for item in items:
        if item.dedupe_key in existing:
            continue
        row = WeComOutboxMessage(
            dedupe_key=item.dedupe_key,
            kind=item.kind,
            business_date=day,
            touser="|".join(item.userids),
            payload=item.message,
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        try:
            with session.begin_nested():
                insert_row(session, row)
        except IntegrityError:
            continue
        added += 1
    return added


def daily_digests(session: Session, day: date, public_base_url: str) -> list[OutboxItem]:
    """One text card per active advisor with open tasks on `day` (generated then or still open): how many,
    how many overdue, the most urgent few, and a link to their task page."""
    counts = {
        count.advisor_id: count for count in daily_counts(session, day) if count.advisor_id and count.open
    }
    if not counts:
        return []
    advisors = session.scalars(
        select(Staff)
        .where(Staff.id.in_(counts), Staff.is_active.is_(True), Staff.role == StaffRole.ADVISOR)
        .order_by(Staff.id)
    ).all()
    url = f"{public_base_url.rstrip('/')}{ADVISOR_TASKS_PATH}"
    top_tasks = _top_tasks(session, [advisor.id for advisor in advisors], day)
    items = []
    for advisor in advisors:
        count = counts[advisor.id]
        lines = [
            f'<div class="gray">{day.month}月{day.day}日</div>',
            f'<div class="normal">待办任务 {count.open} 条（今日新增 {count.new_today} 条）</div>',
        ]
        if count.overdue:
            lines.append(f'<div class="highlight">已逾期 {count.overdue} 条，请优先处理</div>')
        for index, (task_type, nickname) in enumerate(top_tasks.get(advisor.id, []), start=1):
            who = escape(nickname or "会员")
            lines.append(f'<div class="normal">{index}. {TASK_TYPE_NAMES[task_type]} · {who}</div>')
        items.append(
            OutboxItem(
                dedupe_key=digest_key(advisor.id, day),
                kind=OutboxKind.DIGEST,
                userids=[advisor.wecom_userid],
                message=_text_card(f"今日导购任务：{count.open} 条", "".join(lines), url),
            )
        )
    return items


def _top_tasks(session: Session, staff_ids: list[int], day: date) -> dict[int, list[tuple[Any, str | None]]]:
    """Each advisor's most urgent open tasks (overdue first, then by priority and due date), in one
    query for all of them: a query per advisor made 500 round trips of a 500-advisor mall's push."""
    overdue = AdvisorTask.due_date < day
    urgency = func.row_number().over(
        partition_by=AdvisorTask.advisor_id,
        order_by=(case((overdue, 0), else_=1), AdvisorTask.priority, AdvisorTask.due_date, AdvisorTask.id),
    )
    ranked = (
        select(AdvisorTask.advisor_id, AdvisorTask.task_type, Member.nickname, urgency.label("urgency"))
        .join(Member, Member.id == AdvisorTask.member_id)
        .where(
            AdvisorTask.advisor_id.in_(staff_ids),
            AdvisorTask.status == TaskStatus.OPEN,
            AdvisorTask.business_date <= day,
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.advisor_id, ranked.c.task_type, ranked.c.nickname)
        .where(ranked.c.urgency <= TOP_PRIORITIES)
        .order_by(ranked.c.advisor_id, ranked.c.urgency)
    )
    top: dict[int, list[tuple[Any, str | None]]] = {}
    for advisor_id, task_type, nickname in rows:
        top.setdefault(advisor_id, []).append((task_type, nickname))
    return top


def store_summaries(session: Session, day: date, public_base_url: str) -> list[OutboxItem]:
    """One text card per store with active managers, to all of them: open tasks per advisor, the store
    pool's open tasks, and how many of yesterday's tasks are done."""
    managers: dict[int, list[str]] = {}
    for store_id, userid in session.execute(
        select(func.coalesce(Staff.store_id, 0), Staff.wecom_userid)
        .where(Staff.role == StaffRole.MANAGER, Staff.is_active.is_(True), Staff.store_id.is_not(None))
        .order_by(Staff.store_id, Staff.id)
    ):
        managers.setdefault(store_id, []).append(userid)
    if not managers:
        return []
    counts = daily_counts(session, day)
    advisors = session.execute(
        select(Staff.id, Staff.name, Staff.store_id).where(
            Staff.store_id.in_(managers), Staff.role == StaffRole.ADVISOR, Staff.is_active.is_(True)
        )
    ).all()
    yesterday = _completion(session, day - timedelta(days=1), list(managers))
    names = {
        store_id: name
        for store_id, name in session.execute(select(Store.id, Store.name).where(Store.id.in_(managers)))
    }
    url = f"{public_base_url.rstrip('/')}{ADVISOR_TASKS_PATH}"
    open_by_advisor = {count.advisor_id: count.open for count in counts if count.advisor_id}
    items = []
    for store_id, userids in managers.items():
        pool = sum(count.open for count in counts if count.advisor_id is None and count.store_id == store_id)
        done, total = yesterday.get(store_id, (0, 0))
        lines = [f'<div class="gray">{day.month}月{day.day}日 · {escape(names.get(store_id, ""))}</div>']
        store_advisors = sorted(
            ((open_by_advisor.get(staff_id, 0), name) for staff_id, name, at in advisors if at == store_id),
            key=lambda advisor: -advisor[0],
        )
        lines += [
            f'<div class="normal">{escape(name)}：待办 {open_count} 条</div>'
            for open_count, name in store_advisors[:SUMMARY_ADVISORS]
        ]
        if len(store_advisors) > SUMMARY_ADVISORS:
            lines.append(f'<div class="normal">另有 {len(store_advisors) - SUMMARY_ADVISORS} 位顾问</div>')
        lines.append(f'<div class="normal">门店公共池：待认领 {pool} 条</div>')
        lines.append(f'<div class="highlight">昨日任务完成 {done}/{total} 条</div>')
        items.append(
            OutboxItem(
                dedupe_key=store_summary_key(store_id, day),
                kind=OutboxKind.STORE_SUMMARY,
                userids=userids,
                message=_text_card("门店导购任务日报", "".join(lines), url),
            )
        )
    return items


def _completion(session: Session, day: date, store_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per store: (done, generated) of the tasks generated on `day` for its advisors and its pool."""
    store = func.coalesce(Staff.store_id, AdvisorTask.store_id)
    rows = session.execute(
        select(store, func.sum(case((AdvisorTask.status == TaskStatus.DONE, 1), else_=0)), func.count())
        .select_from(AdvisorTask)
        .outerjoin(Staff, Staff.id == AdvisorTask.advisor_id)
        .where(AdvisorTask.business_date == day, store.in_(store_ids))
        .group_by(store)
    ).all()
    return {store_id: (int(done), int(total)) for store_id, done, total in rows}


def _text_card(title: str, description: str, url: str) -> dict[str, Any]:
    return {
        "msgtype": "textcard",
        "textcard": {"title": title, "description": description, "url": url, "btntxt": "查看任务"},
    }


def enqueue_day(session: Session, day: date, now: datetime, public_base_url: str) -> dict[str, int]:
    """Enqueue the day's advisor digests and store summaries; what was new."""
    digests = daily_digests(session, day, public_base_url)
    summaries = store_summaries(session, day, public_base_url)
    return {
        "digests": enqueue(session, digests, day, now),
        "store_summaries": enqueue(session, summaries, day, now),
    }


# --- sending ---------------------------------------------------------------------------------------


def claim_due(
    session: Session, now: datetime, *, limit: int, token: str, lease: timedelta = CLAIM_LEASE
) -> list[WeComOutboxMessage] | None:
    """Claim up to `limit` due rows for the sender holding `token`: no other sender gets them until the
    lease runs out. None when nothing is due. The UPDATE re-checks the condition on the latest rows, so
    of two senders that picked the same ids, the second finds them no longer due and gets an empty list:
    it should try again in a new transaction, whose snapshot shows the first one's claim."""
    due_ids = session.scalars(
        select(WeComOutboxMessage.id)
        .where(WeComOutboxMessage.status.in_(_DUE), WeComOutboxMessage.next_attempt_at <= now)
        .order_by(WeComOutboxMessage.next_attempt_at, WeComOutboxMessage.id)
        .limit(limit)
    ).all()
    if not due_ids:
        return None
    session.execute(
        update(WeComOutboxMessage)
        .where(
            WeComOutboxMessage.id.in_(due_ids),
            WeComOutboxMessage.status.in_(_DUE),
            WeComOutboxMessage.next_attempt_at <= now,
        )
        .values(claim_token=token, next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(WeComOutboxMessage)
            .where(WeComOutboxMessage.id.in_(due_ids), WeComOutboxMessage.claim_token == token)
            .order_by(WeComOutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    rate_limited: bool = False
    invalid_users: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retrying": self.retrying,
            "dead": self.dead,
            "rate_limited": self.rate_limited,
            "invalid_users": len(self.invalid_users),
        }

    def __add__(self, other: SendReport) -> SendReport:
        return SendReport(
            self.sent + other.sent,
            self.retrying + other.retrying,
            self.dead + other.dead,
            self.rate_limited or other.rate_limited,
            self.invalid_users + other.invalid_users,
        )


@dataclass(frozen=True)
class _Claimed:
    id: int
    userids: list[str]
    message: dict[str, Any]
    attempts: int


def send_due(
    transactions: Callable[[], AbstractContextManager[Session]],
    wecom: WeComClient,
    now: Callable[[], datetime],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    senders: int = 1,
) -> SendReport:
    """Send every due outbox row from `senders` threads at once (each claims its own batches, so no row
    is sent by two), recording each batch's outcomes in one transaction. A sender stops early when WeCom
    says we are over a rate limit: the rest of its batch waits `RATE_LIMIT_PAUSE` (the others soon hear
    the same)."""
    if senders <= 1:
        return _send_batches(transactions, wecom, now, batch_size)
    # Small batches, so that the last rows are not all left to one sender.
    per_sender = max(1, min(batch_size, SENDER_BATCH_SIZE))
    with ThreadPoolExecutor(senders, thread_name_prefix="wecom-sender") as pool:
        running = [pool.submit(_send_batches, transactions, wecom, now, per_sender) for _ in range(senders)]
        return sum((sender.result() for sender in running), SendReport())


def _send_batches(
    transactions: Callable[[], AbstractContextManager[Session]],
    wecom: WeComClient,
    now: Callable[[], datetime],
    batch_size: int,
) -> SendReport:
    """One sender: claim a batch under its own token, send it row by row, record the batch's outcomes in
    one transaction, until nothing is due. A sender that dies before recording leaves its rows claimed;
    they are sent again when the lease runs out, and WeCom's duplicate check answers those as sent."""
    report = SendReport()
    token = secrets.token_hex(16)
    while True:
        started = now()
        with transactions() as session:
            rows = claim_due(session, started, limit=batch_size, token=token)
            claimed = [
                _Claimed(row.id, row.touser.split("|"), dict(row.payload), row.attempts) for row in rows or ()
            ]
        if rows is None:
            return report
        outcomes = _send_claimed(claimed, token, wecom, now, report)
        with transactions() as session:
            for record in outcomes.records:
                record(session)
            _mark_reachability(session, outcomes.reached, outcomes.invalid, now())
        if report.rate_limited:
            return report


@dataclass
class _Outcomes:
    """A batch's outcomes, to record in one transaction."""

    records: list[Callable[[Session], None]] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)


def _send_claimed(
    claimed: list[_Claimed], token: str, wecom: WeComClient, now: Callable[[], datetime], report: SendReport
) -> _Outcomes:
    """Send the claimed rows in order; stops at a rate limit, deferring the rest."""
    outcomes = _Outcomes()
    for position, row in enumerate(claimed):
        try:
            answer = wecom.send_message(row.userids, row.message)
        except WeChatRateLimited as error:
            unsent = [item.id for item in claimed[position:]]
            outcomes.records.append(
                partial(_defer, row_ids=unsent, token=token, now=now(), error=_error_text(error))
            )
            report.rate_limited = True
            return outcomes
        except WeChatUnavailable as error:
            at, described = now(), _error_text(error)
            if (error.details or {}).get("errcode") == _ALL_RECIPIENTS_INVALID:
                outcomes.records.append(
                    partial(_record_invalid, row=row, token=token, now=at, error=described)
                )
                outcomes.invalid.update(row.userids)
                report.dead += 1
                report.invalid_users += row.userids
            else:
                outcomes.records.append(
                    partial(_record_failure, row=row, token=token, now=at, error=described)
                )
                if _is_last_attempt(row):
                    report.dead += 1
                else:
                    report.retrying += 1
            continue
        invalid = [userid for userid in str(answer.get("invaliduser") or "").split("|") if userid]
        outcomes.invalid.update(invalid)
        if invalid and set(row.userids) <= set(invalid):
            outcomes.records.append(
                partial(
                    _record_invalid, row=row, token=token, now=now(), error="接收人均无效", invalid=invalid
                )
            )
            report.dead += 1
        else:
            outcomes.records.append(
                partial(_record_sent, row=row, token=token, answer=answer, invalid=invalid, now=now())
            )
            outcomes.reached.update(userid for userid in row.userids if userid not in invalid)
            report.sent += 1
        report.invalid_users += invalid
    return outcomes


def _error_text(error: Exception) -> str:
    """What went wrong, for operators: WeCom's errcode, the HTTP status, or the kind of network failure."""
    cause = error.__cause__
    errcode, response = getattr(cause, "errcode", None), getattr(cause, "response", None)
    if errcode is not None:
        described = f"errcode {errcode}"
    elif response is not None:
        described = f"HTTP {response.status_code}"
    else:
        described = type(cause).__name__
    return f"{type(error).__name__}: {described}"[:500]


def _claimed_row(row_id: int, token: str) -> Any:
    return and_(WeComOutboxMessage.id == row_id, WeComOutboxMessage.claim_token == token)


def _record_sent(
    session: Session, *, row: _Claimed, token: str, answer: dict[str, Any], invalid: list[str], now: datetime
) -> None:
    session.execute(
        update(WeComOutboxMessage)
        .where(_claimed_row(row.id, token))
        .values(
            status=OutboxStatus.SENT,
            attempts=row.attempts + 1,
            sent_at=now,
            msgid=str(answer.get("msgid") or "") or None,
            invaliduser="|".join(invalid) or None,
            claim_token=None,
            last_error=None,
        )
    )


def _record_invalid(
    session: Session,
    *,
    row: _Claimed,
    token: str,
    now: datetime,
    error: str,
    invalid: list[str] | None = None,
) -> None:
    """Nobody to deliver to (`invalid`: all of the recipients, by default): dead at once, as retrying
    cannot help; the recipients are marked unreachable with the rest of the batch."""
    session.execute(
        update(WeComOutboxMessage)
        .where(_claimed_row(row.id, token))
        .values(
            status=OutboxStatus.DEAD,
            attempts=row.attempts + 1,
            invaliduser="|".join(row.userids if invalid is None else invalid),
            last_error=error,
            claim_token=None,
        )
    )


def _is_last_attempt(row: _Claimed) -> bool:
    return row.attempts + 1 >= MAX_ATTEMPTS


def _record_failure(session: Session, *, row: _Claimed, token: str, now: datetime, error: str) -> None:
    """A failed attempt: retried after a doubling backoff, dead after MAX_ATTEMPTS."""
    attempts = row.attempts + 1
    session.execute(
        update(WeComOutboxMessage)
        .where(_claimed_row(row.id, token))
        .values(
            status=OutboxStatus.DEAD if _is_last_attempt(row) else OutboxStatus.FAILED,
            attempts=attempts,
            next_attempt_at=now + min(RETRY_BACKOFF * 2 ** (attempts - 1), MAX_RETRY_BACKOFF),
            last_error=error,
            claim_token=None,
        )
    )


def _defer(session: Session, *, row_ids: list[int], token: str, now: datetime, error: str) -> None:
    """Rate limited: not the messages' fault, so no attempt is counted."""
    session.execute(
        update(WeComOutboxMessage)
        .where(WeComOutboxMessage.id.in_(row_ids), WeComOutboxMessage.claim_token == token)
        .values(
            status=OutboxStatus.FAILED,
            next_attempt_at=now + RATE_LIMIT_PAUSE,
            last_error=error,
            claim_token=None,
        )
    )


def _mark_reachability(session: Session, reached: set[str], invalid: set[str], now: datetime) -> None:
    """Recipients WeCom did not know are unreachable; those it delivered to are reachable again (within
    one batch, a recipient both reached and refused counts as reached)."""
    if invalid:
        session.execute(
            update(Staff)
            .where(Staff.wecom_userid.in_(sorted(invalid)), Staff.wecom_unreachable_since.is_(None))
            .values(wecom_unreachable_since=now)
        )
    if reached:
        session.execute(
            update(Staff)
            .where(Staff.wecom_userid.in_(sorted(reached)), Staff.wecom_unreachable_since.is_not(None))
            .values(wecom_unreachable_since=None)
        )


def outbox_rows(session: Session, day: date | None = None) -> list[WeComOutboxMessage]:
    query = select(WeComOutboxMessage).order_by(WeComOutboxMessage.id)
    if day is not None:
        query = query.where(WeComOutboxMessage.business_date == day)
    return list(session.scalars(query))


def backlog(session: Session) -> int:
    """Messages waiting to go out: never tried, or failed and to be retried (due now or later)."""
    return int(
        session.scalar(
            select(func.count()).select_from(WeComOutboxMessage).where(WeComOutboxMessage.status.in_(_DUE))
        )
        or 0
    )

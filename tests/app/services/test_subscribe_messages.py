"""Subscribe messages against the sandbox: retried on transient errors, else dropped with the reason in
the audit log."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import transaction
from app.extensions import extensions
from app.models import AuditEvent
from app.sandbox import SandboxProcess
from app.services import subscribe_messages
from app.services.subscribe_messages import SubscribeMessage

SEND = "/cgi-bin/message/subscribe/send"
MESSAGE = SubscribeMessage(
    7, "o-member", "tmpl-points", {"thing1": {"value": "积分到账"}}, "pages/points/index"
)


def deliver(app: Flask, pauses: list[float]) -> subscribe_messages.Outcome:
    with app.app_context():
        return subscribe_messages.deliver(
            extensions().wechat, lambda: transaction(app), MESSAGE, pause=pauses.append
        )


def dropped(session: Session) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == subscribe_messages.DROPPED)))


@pytest.mark.parametrize(
    "fault",
    [{"errcode": 45009}, {"errcode": -1, "http_status": 502}, {"errcode": -1}, {"kind": "lost_answer"}],
)
def test_a_transient_failure_is_retried(
    app: Flask, session: Session, sandbox: SandboxProcess, fault: dict[str, object]
) -> None:
    sandbox.inject_fault("wechat", SEND, times=1, **fault)  # type: ignore[arg-type]
    pauses: list[float] = []

    outcome = deliver(app, pauses)

    assert (outcome.sent, outcome.attempts, pauses) == (True, 2, [0.5])
    assert sandbox.messages("wechat")[-1]["touser"] == "o-member"
    assert dropped(session) == []


def test_a_refused_subscription_is_dropped_at_once_with_its_reason(
    app: Flask, session: Session, sandbox: SandboxProcess
) -> None:
    sandbox.inject_fault("wechat", SEND, 43101, "user refuse to accept the msg", times=None)

    outcome = deliver(app, [])

    assert (outcome.sent, outcome.attempts) == (False, 1)
    (event,) = dropped(session)
    assert (event.target_type, event.target_id, event.operator_id) == ("member", "7", None)
    assert event.detail == {
        "template_id": "tmpl-points",
        "attempts": 1,
        "reason": "errcode 43101: 用户未订阅或已拒收该消息",
    }
    assert sandbox.messages("wechat") == []


def test_a_message_failing_every_time_is_dropped_after_the_last_attempt(
    app: Flask, session: Session, sandbox: SandboxProcess
) -> None:
    sandbox.inject_fault("wechat", "*", -1, http_status=503, times=None)
    pauses: list[float] = []

    outcome = deliver(app, pauses)

    assert (outcome.sent, outcome.attempts, pauses) == (False, 3, [0.5, 1.0])
    (event,) = dropped(session)
    assert event.detail["reason"].startswith("3 次发送均失败")
    assert sum(1 for r in sandbox.requests("wechat") if r["path"] == SEND) <= 3

"""WeChat subscribe messages (订阅消息) to shoppers: retried on transient failures, otherwise dropped with
the reason recorded in the audit log, where operators see it.

A shopper's subscription covers one message, and WeChat offers no idempotency key: a message whose
answer was lost may arrive twice if retried, which for a notice is better than never. Nothing here
holds a transaction while WeChat is called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.integrations.wechat_client import MiniProgramClient, WeChatRateLimited, WeChatUnavailable
from app.services import audit

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 3
# Doubled after every failed attempt.
DEFAULT_BACKOFF_SECONDS = 0.5
# Failures retrying cannot mend: the shopper has no subscription left (43101), the openid, template,
# data or page is wrong.
PERMANENT_ERRCODES = {
    43101: "用户未订阅或已拒收该消息",
    40003: "openid 无效",
    40037: "模板 ID 无效",
    47003: "模板参数不正确",
    41030: "跳转页面不存在",
}
DROPPED = "subscribe_message.dropped"


@dataclass(frozen=True)
class SubscribeMessage:
    member_id: int
    openid: str
    template_id: str
    data: dict[str, Any]
    page: str | None = None


@dataclass
class Outcome:
    sent: bool
    attempts: int
    reason: str | None = None
    errors: list[str] = field(default_factory=list)


def deliver(
    wechat: MiniProgramClient,
    transactions: Callable[[], AbstractContextManager[Session]],
    message: SubscribeMessage,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    pause: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send `message`, trying again after transient failures (rate limits, WeChat busy or unreachable)
    up to `attempts` times in all. A message not sent is recorded in the audit log with the reason."""
    outcome = Outcome(sent=False, attempts=0)
    for attempt in range(1, attempts + 1):
        outcome.attempts = attempt
        try:
            wechat.send_subscribe_message(message.openid, message.template_id, message.data, message.page)
        except WeChatRateLimited:
            outcome.errors.append("rate limited")
        except WeChatUnavailable as error:
            errcode = (error.details or {}).get("errcode")
            if errcode in PERMANENT_ERRCODES:
                outcome.reason = f"errcode {errcode}: {PERMANENT_ERRCODES[errcode]}"
                break
            outcome.errors.append(
                f"errcode {errcode}" if errcode is not None else type(error.__cause__).__name__
            )
        else:
            outcome.sent = True
            return outcome
        if attempt < attempts:
            pause(backoff_seconds * 2 ** (attempt - 1))
    outcome.reason = outcome.reason or f"{attempts} 次发送均失败：{'; '.join(outcome.errors)}"
    log.warning(
        "subscribe message %s to member %s dropped: %s",
        message.template_id,
        message.member_id,
        outcome.reason,
    )
    with transactions() as session:
        audit.record(
            session,
            operator_id=None,
            action=DROPPED,
            target_type="member",
            target_id=message.member_id,
            detail={
                "template_id": message.template_id,
                "attempts": outcome.attempts,
                "reason": outcome.reason,
            },
        )
    return outcome

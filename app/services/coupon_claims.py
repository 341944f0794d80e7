"""A shopper's claim of a coupon, and refusing a flash claim (抢券) from memory once the stock is gone.

In a flash claim almost every request arrives after the last coupon went, and each would otherwise
take a database round trip to learn so. A process that has just seen a template sold out remembers
it for a moment (`SOLD_OUT_MEMORY_MS`) and refuses further claims on it without the database, unless
the request's key may already have claimed a coupon: every claim that goes to the database marks its
key in Redis first, so the retry of a claim that succeeded goes to the database again and gets its
coupon back. (Marking before rather than after keeps Redis out of the time the template row is locked.)
Without Redis there is no shortcut.

Overselling is still prevented by the conditional UPDATE on the stock; the shortcut only skips work
whose answer is already known. Stock an operator adds is claimable within `SOLD_OUT_MEMORY_MS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from sqlalchemy.orm import Session

from app.db import run_transaction
from app.mall_time import MallTime
from app.models import Coupon
from app.services import consents, coupons, members

logger = logging.getLogger(__name__)

# Longer than any client keeps retrying a request (payment APIs honour a key for 24 h); one mark
# per claim that reached the database, so a month would be a lot of Redis memory for nothing.
# The database keeps the key for good.
_KEY_MARK_SECONDS = 24 * 3600


class ClaimShortcut:
    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        memory_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis_client if memory_ms > 0 else None
        self._memory_seconds = memory_ms / 1000
        self._clock = clock
        # template id → until when (clock seconds) it counts as sold out. Plain dict operations are
        # atomic under the GIL, which is all the gthread workers need.
        self._sold_out_until: dict[int, float] = {}

    def refuses(self, template_id: int, account_id: int, request_key: str) -> bool:
        """True when the claim is known to end in "sold out": the template was seen sold out a moment
        ago and this request's key never went to the database."""
        if self._redis is None:
            return False
        until = self._sold_out_until.get(template_id)
        if until is None or until <= self._clock():
            return False
        try:
            return not self._redis.exists(self._mark(account_id, request_key))
        except redis.RedisError:
            logger.warning("claim shortcut: Redis unavailable, asking the database")
            return False

    def note_sold_out(self, template_id: int) -> None:
        if self._redis is not None:
            self._sold_out_until[template_id] = self._clock() + self._memory_seconds

    def mark_attempt(self, account_id: int, request_key: str) -> None:
        """Call before the claim's transaction: a mark without a coupon (sold out after all, or the
        transaction failed) only sends a retry to the database, which answers correctly."""
        if self._redis is None:
            return
        try:
            self._redis.set(self._mark(account_id, request_key), 1, ex=_KEY_MARK_SECONDS)
        except redis.RedisError:
            # The claim goes on. Only a retry of this very request, while the template is remembered
            # sold out and Redis is back, would be told "sold out" instead of getting its coupon
            # (which is in the member's coupons all the same).
            logger.warning("claim shortcut: could not mark a claim key in Redis")

    @staticmethod
    def _mark(account_id: int, request_key: str) -> str:
        return f"mallmember:claimed:{account_id}:{request_key}"


def claim_for_shopper(
    account_id: int,
    template_id: int,
    *,
    request_key: str,
    at: MallTime,
    shortcut: ClaimShortcut,
    policy_version: str | None = None,
) -> tuple[Coupon, bool]:
    """`coupons.claim` for the member behind a mini-program account, in its own transaction; with
    `policy_version`, only for a member who consented to it (consents.ConsentRenewalRequired)."""
    if shortcut.refuses(template_id, account_id, request_key):
        raise coupons.SoldOut()
    shortcut.mark_attempt(account_id, request_key)

    def work(session: Session) -> tuple[Coupon, bool]:
        member_id = (
            members.member_id_of_account(session, account_id)
            if policy_version is None
            else consents.member_id_for_action(session, account_id, policy_version)
        )
        return coupons.claim(session, template_id, member_id, request_key=request_key, at=at)

    try:
        return run_transaction(work)
    except coupons.SoldOut:
        shortcut.note_sold_out(template_id)
        raise

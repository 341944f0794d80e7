"""A shopper's claim of a coupon, and refusing a flash claim (抢券) from memory once the stock is gone.

In a flash claim almost every request arrives after the last coupon went, and each would otherwise
take a database round trip to learn so. A process that has just seen a template sold out remembers
it for a moment (`SOLD_OUT_MEMORY_MS`) and refuses further claims on it without the database, unless
the request's key may already have claimed a coupon: every claim that goes to the database marks its
key in Redis first, so the retry of a claim that succeeded goes to the database again and gets its
coupon back. (Marking before rather than after keeps Redis out of the time the template row is locked.)
Without Redis there is no shortcut.

The marks are kept twice: one key per claim (looked up one at a time) and a list per template. When a
process sees a template sold out it copies that list (only what it has not copied yet); while it
remembers the template sold out it then refuses claims from memory alone, without a Redis round trip.
The copy is complete: a claim that got a coupon marked its key before its transaction, so before the
read that found no stock, so before the copy. A template whose list is too long to copy
(`LOCAL_MARKS_LIMIT`, far above a flash claim's stock) is checked key by key in Redis instead.

Overselling is still prevented by the conditional UPDATE on the stock; the shortcut only skips work
whose answer is already known. Stock an operator adds is claimable within `SOLD_OUT_MEMORY_MS`; so is
the retry of a claim that took such stock in another process meanwhile (its first answer stands).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
# Marks of one template copied into each process at most; a flash claim's stock is a few thousand.
LOCAL_MARKS_LIMIT = 20_000


@dataclass
class _SoldOut:
    """What a process knows of a template it saw sold out."""

    until: float = 0.0  # clock seconds; remembered sold out before then
    marks: set[str] | None = field(default_factory=set)  # None: too many to copy, ask Redis
    copied: int = 0  # how much of the template's list `marks` holds


class ClaimShortcut:
    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        memory_ms: int,
        clock: Callable[[], float] = time.monotonic,
        local_marks_limit: int = LOCAL_MARKS_LIMIT,
    ) -> None:
        self._redis = redis_client if memory_ms > 0 else None
        self._memory_seconds = memory_ms / 1000
        self._clock = clock
        self._local_marks_limit = local_marks_limit
        # Replaced, never changed in place, once published: readers in other threads see either the
        # old or the new one. Plain dict operations are atomic under the GIL.
        self._sold_out: dict[int, _SoldOut] = {}
        self._copying = threading.Lock()

    def refuses(self, template_id: int, account_id: int, request_key: str) -> bool:
        """True when the claim is known to end in "sold out": the template was seen sold out a moment
        ago and this request's key never went to the database."""
        if self._redis is None:
            return False
        known = self._sold_out.get(template_id)
        if known is None or known.until <= self._clock():
            return False
        if known.marks is not None:
            return _mark(account_id, request_key) not in known.marks
        try:
            return not self._redis.exists(_key_mark(account_id, request_key))
        except redis.RedisError:
            logger.warning("claim shortcut: Redis unavailable, asking the database")
            return False

    def note_sold_out(self, template_id: int) -> None:
        """Call after a transaction found the template sold out: copies the marks made until then."""
        if self._redis is None:
            return
        with self._copying:
            known = self._sold_out.get(template_id) or _SoldOut()
            try:
                marks, copied = self._copy_marks(template_id, known)
            except redis.RedisError:
                logger.warning("claim shortcut: could not copy a template's claim marks from Redis")
                return
            self._sold_out[template_id] = _SoldOut(self._clock() + self._memory_seconds, marks, copied)

    def _copy_marks(self, template_id: int, known: _SoldOut) -> tuple[set[str] | None, int]:
        assert self._redis is not None
        key = _template_marks(template_id)
        length = int(self._redis.llen(key))
        if length > self._local_marks_limit:
            return None, 0
        marks, copied = known.marks, known.copied
        if marks is None or length < copied:  # nothing copied yet, or the list expired and started again
            marks, copied = set(), 0
        if length == copied:
            return marks, copied
        new = self._redis.lrange(key, copied, length - 1)
        return marks | {mark.decode() if isinstance(mark, bytes) else mark for mark in new}, copied + len(new)

    def mark_attempt(self, template_id: int, account_id: int, request_key: str) -> None:
        """Call before the claim's transaction: a mark without a coupon (sold out after all, or the
        transaction failed) only sends a retry to the database, which answers correctly."""
        if self._redis is None:
            return
        marks = _template_marks(template_id)
        try:
            pipeline = self._redis.pipeline(transaction=False)
            pipeline.set(_key_mark(account_id, request_key), 1, ex=_KEY_MARK_SECONDS)
            pipeline.rpush(marks, _mark(account_id, request_key))
            pipeline.expire(marks, _KEY_MARK_SECONDS)
            pipeline.execute()
        except redis.RedisError:
            # The claim goes on. Only a retry of this very request, while the template is remembered
            # sold out and Redis is back, would be told "sold out" instead of getting its coupon
            # (which is in the member's coupons all the same).
            logger.warning("claim shortcut: could not mark a claim key in Redis")


def _mark(account_id: int, request_key: str) -> str:
    return f"{account_id}:{request_key}"


def _key_mark(account_id: int, request_key: str) -> str:
    return f"mallmember:claimed:{account_id}:{request_key}"


def _template_marks(template_id: int) -> str:
    return f"mallmember:claim-marks:{template_id}"


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
    shortcut.mark_attempt(template_id, account_id, request_key)

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

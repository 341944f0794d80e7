"""Login throttling, request rate limits and the code-verification lockout, in Redis when configured,
in memory otherwise (the `limits` library).

If Redis cannot be reached every limit fails open with a warning: operators can still sign in (their
passwords still checked), shoppers claim and staff verify while Redis is down, rather than every
request being a 500.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis.exceptions import RedisError

# One address may fail for several accounts (a shared office NAT) before it is blocked.
_IP_ALLOWANCE_FACTOR = 4

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _fail_open(action: Callable[[], T], fallback: T, *, what: str = "login throttle") -> T:
    try:
        return action()
    except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
        logger.warning("%s storage unreachable, not throttling: %s", what, type(exc).__name__)
        return fallback


class LoginThrottle:
    """Blocks an account after `max_failures` wrong passwords within `window_seconds`,
    and an address after several times that, whichever account it tries."""

    def __init__(self, storage: Storage, *, namespace: str, max_failures: int, window_seconds: int):
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account = RateLimitItemPerSecond(
            max_failures, window_seconds, namespace=f"{namespace}:account"
        )
        self._per_address = RateLimitItemPerSecond(
            max_failures * _IP_ALLOWANCE_FACTOR, window_seconds, namespace=f"{namespace}:address"
        )

    def is_blocked(self, account: str, address: str) -> bool:
        return not _fail_open(
            lambda: (
                self._limiter.test(self._per_account, account)
                and self._limiter.test(self._per_address, address)
            ),
            True,
        )

    def record_failure(self, account: str, address: str) -> None:
        def hit_both() -> None:
            self._limiter.hit(self._per_account, account)
            self._limiter.hit(self._per_address, address)

        _fail_open(hit_both, None)

    def record_success(self, account: str) -> None:
        # The address keeps its count: one known password must not unlock guessing at others.
        _fail_open(lambda: self._limiter.clear(self._per_account, account), None)


def limit_storage(redis_url: str | None) -> Storage:
    """Where every limit of one app counts: Redis (shared by the workers) or this process's memory."""
    storage = storage_from_string(redis_url or "memory://")
    assert isinstance(storage, Storage)  # the synchronous kind, for these URL schemes
    return storage


class LimitKind(enum.StrEnum):
    LOGIN = "login"
    CLAIM = "claim"
    VERIFY = "verify"
    CHECKIN = "checkin"


@dataclass(frozen=True)
class Refusal:
    retry_after: float  # seconds


class RequestLimits:
    """Per-account and per-address request rates, one limit for each kind of action.

    Fixed windows: one INCR per key and request, cheap enough for a flash claim's burst.
    """

    def __init__(self, storage: Storage, limits: dict[LimitKind, str], *, address_factor: int) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self._per_account: dict[LimitKind, RateLimitItem] = {}
        self._per_address: dict[LimitKind, RateLimitItem] = {}
        for kind, spec in limits.items():
            item = parse(spec)
            namespace = f"mallmember:rate:{kind}"
            self._per_account[kind] = type(item)(
                item.amount, item.multiples, namespace=f"{namespace}:account"
            )
            self._per_address[kind] = type(item)(
                item.amount * address_factor, item.multiples, namespace=f"{namespace}:address"
            )

    def hit(self, kind: LimitKind, account: str | None, address: str | None) -> Refusal | None:
        """Counts one request; a Refusal (with when to retry) if the account or address is over its limit.
        An account with nothing to key by (a login) is limited by its address alone."""
        checks = [(self._per_account[kind], account), (self._per_address[kind], address)]
        return _fail_open(lambda: self._hit_all(checks), None, what="rate limit")

    def _hit_all(self, checks: list[tuple[RateLimitItem, str | None]]) -> Refusal | None:
        for item, key in checks:
            if key is None:
                continue
            if not self._limiter.hit(item, key):
                reset_at = self._limiter.get_window_stats(item, key).reset_time
                return Refusal(retry_after=reset_at - time.time())
        return None


class CodeVerifyLockout:
    """Locks a staff account out of verifying codes for `lockout_seconds` once it has submitted
    `max_failures` invalid codes within `window_seconds`.

    Member and coupon codes carry a 64-bit HMAC tag (see app.services.member_codes): guessing one
    takes about 2^63 tries, and this caps a stolen staff token at `max_failures` per lockout.
    """

    def __init__(
        self, storage: Storage, *, max_failures: int, window_seconds: int, lockout_seconds: int
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._enabled = max_failures > 0
        self._failures = RateLimitItemPerSecond(
            max(max_failures, 1), window_seconds, namespace="mallmember:code-verify:failures"
        )
        self._lock = RateLimitItemPerSecond(1, lockout_seconds, namespace="mallmember:code-verify:lock")

    def locked_for(self, account: str) -> float | None:
        """Seconds until the account may verify again, or None if it is not locked."""
        if not self._enabled:
            return None

        def remaining() -> float | None:
            if self._limiter.test(self._lock, account):
                return None
            return self._limiter.get_window_stats(self._lock, account).reset_time - time.time()

        return _fail_open(remaining, None, what="code verification lockout")

    def record_failure(self, account: str) -> None:
        if not self._enabled:
            return

        def count() -> None:
            self._limiter.hit(self._failures, account)
            if not self._limiter.test(self._failures, account):
                self._limiter.hit(self._lock, account)
                # Counting starts afresh after the lockout, rather than locking again on one more miss.
                self._limiter.clear(self._failures, account)

        _fail_open(count, None, what="code verification lockout")

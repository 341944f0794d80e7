"""Login throttling, in Redis when configured, in memory otherwise (the `limits` library).

If Redis cannot be reached the throttle fails open with a warning: operators can still sign in (their
passwords still checked) while Redis is down, rather than every login being a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

# One address may fail for several accounts (a shared office NAT) before it is blocked.
_IP_ALLOWANCE_FACTOR = 4

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _fail_open(action: Callable[[], T], fallback: T) -> T:
    try:
        return action()
    except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
        logger.warning("login throttle storage unreachable, not throttling: %s", type(exc).__name__)
        return fallback


class LoginThrottle:
    """Blocks an account after `max_failures` wrong passwords within `window_seconds`,
    and an address after several times that, whichever account it tries."""

    def __init__(self, storage_url: str, *, namespace: str, max_failures: int, window_seconds: int):
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
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

"""Login throttling, in Redis when configured, in memory otherwise (the `limits` library)."""

from __future__ import annotations

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# One address may fail for several accounts (a shared office NAT) before it is blocked.
_IP_ALLOWANCE_FACTOR = 4


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
        return not (
            self._limiter.test(self._per_account, account) and self._limiter.test(self._per_address, address)
        )

    def record_failure(self, account: str, address: str) -> None:
        self._limiter.hit(self._per_account, account)
        self._limiter.hit(self._per_address, address)

    def record_success(self, account: str) -> None:
        # The address keeps its count: one known password must not unlock guessing at others.
        self._limiter.clear(self._per_account, account)

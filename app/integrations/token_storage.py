"""Where the WeChat and WeCom access tokens live: Redis, shared by every worker, when configured.

If Redis cannot be reached, each worker keeps its tokens in memory meanwhile (with a warning) rather
than failing every call that needs one: WeChat tolerates a few tokens in use at once (stable_token
hands back the valid one), so a worker fetching its own costs one extra call, not an outage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from wechatpy.session import SessionStorage
from wechatpy.session.memorystorage import MemoryStorage
from wechatpy.session.redisstorage import RedisStorage

log = logging.getLogger(__name__)

# One warning per this many seconds while Redis stays down, not one per call.
_WARN_EVERY_SECONDS = 60.0


class RedisWithMemoryFallback(SessionStorage):
    def __init__(self, redis_storage: RedisStorage) -> None:
        self._redis = redis_storage
        self._memory = MemoryStorage()
        self._warned_at = float("-inf")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._redis.get(key, default)
        except (RedisError, OSError) as error:
            self._warn(error)
            return self._memory.get(key, default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        # Memory too: the value to fall back on if Redis goes away before the token expires.
        self._memory.set(key, value, ttl)
        try:
            self._redis.set(key, value, ttl)
        except (RedisError, OSError) as error:
            self._warn(error)

    def delete(self, key: str) -> None:
        self._memory.delete(key)
        try:
            self._redis.delete(key)
        except (RedisError, OSError) as error:
            self._warn(error)

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "token storage Redis unreachable, keeping tokens per worker: %s", type(error).__name__
            )

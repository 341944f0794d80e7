"""Thread-safe in-memory state of one sandbox server (WeChat or WeCom).

Each server owns its own instance, so tokens issued by one are unknown to the other.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

JsonObject = dict[str, Any]

TOKEN_TTL_SECONDS = 7200


class TokenStatus(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float

    def expires_in(self) -> int:
        # Rounded up so a freshly issued token reports the full TTL, as the real APIs do.
        return max(0, math.ceil(self.expires_at - time.time()))


@dataclass
class Fault:
    """A canned error the next `remaining` requests to a path receive instead of a real answer."""

    errcode: int
    errmsg: str
    remaining: int


class SandboxState:
    def __init__(self, *, token_ttl: int = TOKEN_TTL_SECONDS) -> None:
        self._token_ttl = token_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._outbox: list[JsonObject] = []
        self._request_log: list[JsonObject] = []

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._faults.clear()
            self._outbox.clear()
            self._request_log.clear()

    # Access tokens

    def issue_token(self, *, reuse_valid: bool = False) -> AccessToken:
        """Mint a token; with `reuse_valid`, hand back the newest still-valid one if any."""
        with self._lock:
            now = time.time()
            if reuse_valid:
                valid = [token for token in self._tokens.values() if token.expires_at > now]
                if valid:
                    return max(valid, key=lambda token: token.expires_at)
            token = AccessToken(secrets.token_urlsafe(96), now + self._token_ttl)
            self._tokens[token.value] = token
            return token

    def token_status(self, value: str) -> TokenStatus:
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            return TokenStatus.UNKNOWN
        return TokenStatus.VALID if token.expires_at > time.time() else TokenStatus.EXPIRED

    def expire_tokens(self) -> None:
        """Make every token issued so far expired; tokens issued afterwards work normally."""
        with self._lock:
            now = time.time()
            self._tokens = {
                value: dataclasses.replace(token, expires_at=min(token.expires_at, now))
                for value, token in self._tokens.items()
            }

    # Injected faults

    def add_fault(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._faults[path].append(fault)

    def take_fault(self, path: str) -> Fault | None:
        """Consume one use of the oldest fault queued for `path`, if there is one."""
        with self._lock:
            queue = self._faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return dataclasses.replace(fault)

    # Outbox and request log

    def record_message(self, message: JsonObject) -> None:
        with self._lock:
            self._outbox.append(message)

    def messages(self) -> list[JsonObject]:
        with self._lock:
            return list(self._outbox)

    def log_request(self, entry: JsonObject) -> None:
        with self._lock:
            self._request_log.append(entry)

    def request_log(self) -> list[JsonObject]:
        with self._lock:
            return list(self._request_log)

"""Injected faults, shared by the three sandbox servers: which requests fail, how, and how often.

A fault is queued for one path, or for every API path with "*". It fires on the next `times`
requests it matches, or on every one until it is cleared (`times=None`). Path-specific faults fire
before "*" ones, the oldest first. The kinds:

- an error answer (an errcode, or the car park's business code), with HTTP 200 as the real servers do;
- `http_error`: a bare HTTP error page (5xx from a gateway);
- `timeout`: the answer comes after `delay_seconds` (beyond the client's timeout); the request is not
  carried out, unless the fault says `process`;
- `lost_answer`: the request is carried out, then the answer is lost: after `delay_seconds` a gateway's
  504 page comes back instead (with a delay beyond the client's timeout: a timeout).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

ALL_PATHS = "*"
KINDS = ("error", "http_error", "timeout", "lost_answer")


@dataclass
class Fault:
    kind: str
    # None: until cleared.
    remaining: int | None = 1
    errcode: int = -1
    errmsg: str = "system error"
    http_status: int = 503
    delay_seconds: float = 0.0
    # Whether the request is carried out before the failure (always for a lost answer).
    process: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "times": self.remaining,
            "errcode": self.errcode,
            "errmsg": self.errmsg,
            "http_status": self.http_status,
            "delay_seconds": self.delay_seconds,
            "process": self.process,
        }


@dataclass
class FaultBook:
    """The faults queued on one server, and how many fired, by path. Thread-safe."""

    _queues: dict[str, deque[Fault]] = field(default_factory=dict)
    _fired: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, fault: Fault) -> None:
        key = path if path == ALL_PATHS else "/" + path.lstrip("/")
        with self._lock:
            self._queues.setdefault(key, deque()).append(fault)

    def take(self, path: str) -> Fault | None:
        """The fault the request to `path` meets, one use of it consumed; None if there is none."""
        with self._lock:
            for key in (path, ALL_PATHS):
                queue = self._queues.get(key)
                if not queue:
                    continue
                fault = queue[0]
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        queue.popleft()
                self._fired[fault.kind] = self._fired.get(fault.kind, 0) + 1
                return replace(fault)
        return None

    def clear(self, path: str | None = None) -> int:
        """Drop the faults queued for `path` ("*" included), or all of them; how many were dropped."""
        with self._lock:
            if path is None:
                dropped = sum(len(queue) for queue in self._queues.values())
                self._queues.clear()
                return dropped
            key = path if path == ALL_PATHS else "/" + path.lstrip("/")
            return len(self._queues.pop(key, ()))

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._fired.clear()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": {
                    path: [fault.to_json() for fault in queue] for path, queue in self._queues.items()
                },
                "fired": dict(self._fired),
            }


def parse_fault(body: Any, *, default_errcode: int, default_errmsg: str) -> Fault | str:
    """A fault from a control request's JSON body, or what is wrong with it.

    `{"kind"?, "times"? | "until_cleared"?, "errcode"?, "errmsg"?, "http_status"?, "delay_seconds"?,
    "process"?}`. Without a kind: `http_status` alone gives an HTTP error, a delay with no errcode (or
    -1) a timeout, anything else an error answer.
    """
    if not isinstance(body, dict):
        return "body must be a JSON object"
    kind, errcode, errmsg = body.get("kind"), body.get("errcode"), body.get("errmsg")
    http_status, delay = body.get("http_status"), body.get("delay_seconds", 0)
    times, until_cleared = body.get("times", 1), body.get("until_cleared", False)
    if http_status is not None and not (_is_int(http_status) and 400 <= http_status <= 599):
        return "http_status must be an HTTP error status"
    if not (isinstance(delay, int | float) and not isinstance(delay, bool) and 0 <= delay <= 60):
        return "delay_seconds must be a number of seconds up to 60"
    if errcode is not None and not _is_int(errcode):
        return "errcode must be an integer"
    if errmsg is not None and not isinstance(errmsg, str):
        return "errmsg must be a string"
    if not isinstance(until_cleared, bool):
        return "until_cleared must be a boolean"
    if not until_cleared and (not _is_int(times) or times < 1):
        return "times must be a positive integer"
    if kind is None:
        if http_status is not None and not delay:
            kind = "http_error"
        elif delay and errcode in (None, -1):
            # A delay alone: the client times out; the late answer is a server error.
            kind = "timeout"
        else:
            kind = "error"
    if kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    if kind == "error" and errcode is None:
        errcode = default_errcode
    return Fault(
        kind=kind,
        remaining=None if until_cleared else times,
        errcode=errcode if errcode is not None else -1,
        errmsg=errmsg or default_errmsg,
        http_status=http_status or (504 if kind == "lost_answer" else 503),
        delay_seconds=float(delay),
        process=kind == "lost_answer" or (kind == "timeout" and body.get("process") is True),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""A request id for each unit of work (an HTTP request, a scheduled job's run), in log lines and on
every call it makes to WeChat, WeCom and the car park, so that one id follows a request end to end.

An incoming `X-Request-Id` is kept when it looks like an id (a load balancer's or the mini-program's);
anything else is replaced by a new one, so a client cannot inject text into our log lines.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
from requests.adapters import HTTPAdapter

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # 32 hex digits, like a UUID's, from the process's PRNG: an id must be unique, not unguessable, and
    # os.urandom (uuid4) is a system call on every request. `random` reseeds in each forked worker.
    return f"{random.getrandbits(128):032x}"


def accepted_request_id(incoming: str | None) -> str:
    """`incoming` if it is a sane id (letters, digits, `._:-`, at most 128 characters), else a new one."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    return _current.get()


@contextmanager
def request_id_scope(request_id: str) -> Iterator[str]:
    """The id of the work done inside the block (and in the calls it makes)."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


def bind_request_id(request_id: str) -> Any:
    """Set the current id until `unbind_request_id(token)`: for hooks that cannot wrap a block."""
    return _current.set(request_id)


def unbind_request_id(token: Any) -> None:
    _current.reset(token)


class _RequestIdAdapter(HTTPAdapter):
    """Adds the current request id to every request sent through the session it is mounted on."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        request_id = _current.get()
        if request_id and HEADER not in request.headers:
            request.headers[HEADER] = request_id
        return super().send(request, *args, **kwargs)


def propagate_request_id(session: requests.Session) -> requests.Session:
    """Make `session` (wechatpy's, the car park client's) send the current request id on each call."""
    adapter = _RequestIdAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session

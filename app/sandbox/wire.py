"""Request-side helpers shared by the WeChat and WeCom sandbox servers."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from .state import JsonObject, SandboxState, TokenStatus

EXTENSION_KEY = "sandbox"


class WireError(Exception):
    """An API failure, answered as `{"errcode", "errmsg"}` with HTTP 200 like the real servers."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class Dialect:
    """The ways the two server families word the same failures differently."""

    # Appended to every errmsg, e.g. ", rid: ..." on WeChat.
    error_suffix: Callable[[int], str]
    # Answer to an access_token the server never issued.
    unknown_token: tuple[int, str]


@dataclass(frozen=True)
class ServerContext:
    state: SandboxState
    dialect: Dialect


def wechat_error_suffix(errcode: int) -> str:
    rid = "-".join(secrets.token_hex(4) for _ in range(3))
    return f", rid: {rid}"


def wecom_error_suffix(errcode: int) -> str:
    hint = f"{int(time.time())}_{secrets.randbelow(100)}_{secrets.token_hex(16)}"
    return (
        f", hint: [{hint}], from ip: {request.remote_addr}, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )


def server_context() -> ServerContext:
    context: ServerContext = current_app.extensions[EXTENSION_KEY]
    return context


def sandbox_state() -> SandboxState:
    return server_context().state


def parse_json(data: bytes) -> Any | None:
    try:
        return json.loads(data)
    except ValueError:
        return None


def json_body() -> JsonObject:
    # Parsed whatever the Content-Type says: wechatpy posts JSON without one, and so may others.
    body = parse_json(request.get_data())
    if not isinstance(body, dict):
        raise WireError(47001, "data format error")
    return body


def text_field(source: JsonObject, key: str) -> str:
    """`source[key]` if it is a string, else "" (absent and mistyped fields fail alike)."""
    value = source.get(key)
    return value if isinstance(value, str) else ""


def require_access_token() -> None:
    """`before_request` hook for blueprints whose endpoints need `?access_token=`."""
    token = request.args.get("access_token", "")
    if not token:
        raise WireError(41001, "access_token missing")
    context = server_context()
    status = context.state.token_status(token)
    if status is TokenStatus.UNKNOWN:
        raise WireError(*context.dialect.unknown_token)
    if status is TokenStatus.EXPIRED:
        raise WireError(42001, "access_token expired")

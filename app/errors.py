"""Domain errors: a stable code, an HTTP status and a message shoppers and staff can read.

Every error response, including 404/405/422 from the framework, is rendered as
`{"code": ..., "message": ..., "details"?: ...}` by `register_error_handlers`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class DomainError(Exception):
    code: ClassVar[str] = "ERROR"
    status: ClassVar[int] = 400
    message: ClassVar[str] = "请求失败"

    def __init__(
        self, message: str | None = None, *, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.message = message or type(self).message  # type: ignore[misc]
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class NotFound(DomainError):
    code, status, message = "NOT_FOUND", 404, "资源不存在"


class ValidationFailed(DomainError):
    code, status, message = "VALIDATION_ERROR", 422, "请求参数有误"


class Conflict(DomainError):
    code, status, message = "CONFLICT", 409, "请求与当前状态冲突"


class AuthRequired(DomainError):
    code, status, message = "AUTH_REQUIRED", 401, "请先登录"


class AuthInvalid(DomainError):
    code, status, message = "AUTH_INVALID", 401, "登录状态无效，请重新登录"


class AuthExpired(DomainError):
    code, status, message = "AUTH_EXPIRED", 401, "登录已过期，请重新登录"


class Forbidden(DomainError):
    code, status, message = "FORBIDDEN", 403, "没有权限执行此操作"


class RateLimited(DomainError):
    code, status, message = "RATE_LIMITED", 429, "操作过于频繁，请稍后再试"


class CodeVerifyLocked(DomainError):
    code, status, message = "CODE_VERIFY_LOCKED", 423, "无效码提交次数过多，扫码核验已暂时锁定，请稍后再试"


def retry_after(error: type[DomainError], seconds: float) -> DomainError:
    """`error` with a Retry-After header of at least one whole second."""
    return error(headers={"Retry-After": str(max(1, math.ceil(seconds)))})


class UpstreamUnavailable(DomainError):
    code, status, message = "UPSTREAM_UNAVAILABLE", 503, "外部服务暂时不可用，请稍后再试"


class DependencyUnavailable(DomainError):
    """An outside system the request needs (WeChat, WeCom, the car park) failed or cannot be reached.

    Each names itself in `details["dependency"]`, so clients can tell them apart by the one code."""

    code, status, message = "DEPENDENCY_UNAVAILABLE", 503, "外部服务暂时不可用，请稍后再试"
    dependency: ClassVar[str] = "unknown"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"dependency": self.dependency, **(details or {})})


def declare_raises(view: F, *errors: type[DomainError]) -> F:
    """Records on `view` the domain errors it may answer with, after those of the views it wraps
    (functools.wraps copies them outwards): app.api documents each as a response of its operation."""
    view.raises = (*getattr(view, "raises", ()), *errors)  # type: ignore[attr-defined]
    return view


def raises(*errors: type[DomainError]) -> Callable[[F], F]:
    """Documents the domain errors a view answers with (beyond those of its auth and limit decorators)."""

    def decorator(view: F) -> F:
        return declare_raises(view, *errors)

    return decorator


# Framework errors, by HTTP status, in the same shape as domain errors.
_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "请求格式错误"),
    401: ("AUTH_REQUIRED", "请先登录"),
    403: ("FORBIDDEN", "没有权限执行此操作"),
    404: ("NOT_FOUND", "请求的地址不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    409: ("CONFLICT", "请求与当前状态冲突"),
    413: ("PAYLOAD_TOO_LARGE", "请求内容过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "请使用 JSON 格式提交"),
    422: ("VALIDATION_ERROR", "请求参数有误"),
    429: ("RATE_LIMITED", "操作过于频繁，请稍后再试"),
}


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    code, message = _HTTP_ERRORS.get(status, ("HTTP_ERROR", "请求失败"))
    body: dict[str, Any] = {"code": code, "message": message}
    # webargs (via flask-smorest) attaches per-field messages to 400/422 errors.
    messages = getattr(error, "data", {}).get("messages")
    if messages:
        body["details"] = in_chinese(_flatten_locations(messages))
    # Keep what the exception says about itself, e.g. `Allow` on 405.
    headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
    return jsonify(body), status, headers


def _flatten_locations(messages: dict[str, Any]) -> Any:
    """webargs nests errors by location (`json`, `query`); clients only need the fields."""
    if len(messages) == 1:
        (only,) = messages.values()
        return only
    return messages


# marshmallow/webargs messages, as shoppers and staff should read them.
_FIELD_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Missing data for required field\.$"), "必填"),
    (re.compile(r"^Field may not be null\.$"), "不能为空"),
    (re.compile(r"^Unknown field\.$"), "不支持的字段"),
    (re.compile(r"^Not a valid string\.$"), "应为字符串"),
    (re.compile(r"^Not a valid integer\.$"), "应为整数"),
    (re.compile(r"^Not a valid number\.$"), "应为数字"),
    (re.compile(r"^Not a valid list\.$"), "应为列表"),
    (re.compile(r"^Not a valid boolean\.$"), "应为布尔值"),
    (re.compile(r"^Not a valid date\.$"), "日期格式应为 YYYY-MM-DD"),
    (re.compile(r"^Not a valid datetime\.$"), "时间格式无效"),
    (re.compile(r"^Invalid input type\.$"), "格式无效"),
    (re.compile(r"^Invalid JSON body\.$"), "请求体不是合法的 JSON"),
    (re.compile(r"^Must be one of: (.*)\.$"), r"可选值：\1"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), r"长度应在 \1 到 \2 之间"),
    (re.compile(r"^Shorter than minimum length (\d+)\.$"), r"长度不能少于 \1"),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), r"长度不能超过 \1"),
    (re.compile(r"^Must be greater than or equal to (\d+)\.$"), r"不能小于 \1"),
    (re.compile(r"^Must be less than or equal to (\d+)\.$"), r"不能大于 \1"),
    (
        re.compile(r"^Must be greater than or equal to (\d+) and less than or equal to (\d+)\.$"),
        r"应在 \1 到 \2 之间",
    ),
]


def in_chinese(details: Any) -> Any:
    """marshmallow's field messages (a message, or lists and dicts of them) as operators and shoppers
    should read them; messages already in Chinese pass through."""
    if isinstance(details, dict):
        return {key: in_chinese(value) for key, value in details.items()}
    if isinstance(details, list):
        return [in_chinese(value) for value in details]
    if isinstance(details, str):
        for pattern, replacement in _FIELD_MESSAGES:
            if pattern.match(details):
                return pattern.sub(replacement, details)
    return details


def _domain_error(error: DomainError) -> ResponseReturnValue:
    return jsonify(error.to_dict()), error.status, error.headers


def _unexpected_error(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error")
    return jsonify({"code": "INTERNAL_ERROR", "message": "系统繁忙，请稍后再试"}), 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)

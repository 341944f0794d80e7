"""Domain errors: a stable code, an HTTP status and a message shoppers and staff can read.

Every error response, including 404/405/422 from the framework, is rendered as
`{"code": ..., "message": ..., "details"?: ...}` by `register_error_handlers`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    code: ClassVar[str] = "ERROR"
    status: ClassVar[int] = 400
    message: ClassVar[str] = "请求失败"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or type(self).message  # type: ignore[misc]
        self.details = details
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


class UpstreamUnavailable(DomainError):
    code, status, message = "UPSTREAM_UNAVAILABLE", 503, "外部服务暂时不可用，请稍后再试"


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
        body["details"] = _flatten_locations(messages)
    return jsonify(body), status


def _flatten_locations(messages: dict[str, Any]) -> Any:
    """webargs nests errors by location (`json`, `query`); clients only need the fields."""
    if len(messages) == 1:
        (only,) = messages.values()
        return only
    return messages


def _domain_error(error: DomainError) -> ResponseReturnValue:
    return jsonify(error.to_dict()), error.status


def _unexpected_error(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error")
    return jsonify({"code": "INTERNAL_ERROR", "message": "系统繁忙，请稍后再试"}), 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)

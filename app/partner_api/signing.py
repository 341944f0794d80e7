"""HMAC request signatures for partners, and the decorator that demands them.

A partner signs each request with its secret:

    X-Signature = hex(HMAC-SHA256(secret, f"{X-Timestamp}\\n{METHOD}\\n{path}\\n" + raw body bytes))

The signature is checked over the raw body before anything parses it, and only
requests signed within `MAX_CLOCK_SKEW_SECONDS` of our clock are accepted. A replay
inside that window is harmless: every event id is credited once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from app.db import transaction
from app.errors import DomainError
from app.models import Partner
from app.services import partners

F = TypeVar("F", bound=Callable[..., Any])

MAX_CLOCK_SKEW_SECONDS = 300
PARTNER_CODE_HEADER = "X-Partner-Code"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class SignatureRequired(DomainError):
    code, status, message = (
        "SIGNATURE_REQUIRED",
        401,
        "缺少签名请求头（X-Partner-Code、X-Timestamp、X-Signature）",
    )


class SignatureInvalid(DomainError):
    code, status, message = "SIGNATURE_INVALID", 401, "签名无效或合作方不可用"


class SignatureExpired(DomainError):
    code, status, message = "SIGNATURE_EXPIRED", 401, "签名时间戳与服务器时间相差超过 5 分钟"


def signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The lowercase hex signature of a request."""
    message = f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def partner_signature_required(view: F) -> F:
    """Partner endpoints: verifies the signature over the raw body, then sets the calling partner."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.current_partner = _verified_partner()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def current_partner() -> Partner:
    return cast(Partner, g.current_partner)


def _verified_partner() -> Partner:
    code = request.headers.get(PARTNER_CODE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    provided = request.headers.get(SIGNATURE_HEADER, "")
    if not (code and timestamp and provided):
        raise SignatureRequired()
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureInvalid()
    with transaction() as session:
        partner = partners.active_partner(session, code)
    if partner is None:
        raise SignatureInvalid()
    # Cached, so that the JSON parser later reads the very bytes that were verified.
    body = request.get_data(cache=True)
    expected = signature(partner.secret, timestamp, request.method, request.path, body)
    # Bytes, not str: compare_digest refuses non-ASCII strings, and headers may carry anything.
    if not hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
        raise SignatureInvalid()
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureExpired()
    return partner

"""HMAC request signatures for partners and POS terminals, and the decorators that demand them.

A partner signs each request with its secret:

    X-Signature = hex(HMAC-SHA256(secret, f"{X-Timestamp}\\n{METHOD}\\n{path}\\n" + raw body bytes))

A POS terminal also signs a nonce, which it never reuses:

    X-Signature = hex(HMAC-SHA256(secret, f"{X-Timestamp}\\n{X-Nonce}\\n{METHOD}\\n{path}\\n" + raw body))

The signature is checked over the raw body before anything parses it, and only
requests signed within `MAX_CLOCK_SKEW_SECONDS` of our clock are accepted. A partner's
replay inside that window is harmless (every event id is credited once); a POS request's
nonce is remembered, and a replayed one refused.
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
from flask_smorest import Blueprint

from app import idempotency
from app.db import transaction
from app.errors import DomainError, declare_raises
from app.extensions import extensions, mall_time
from app.models import Partner, PosTerminal
from app.services import partners, pos

F = TypeVar("F", bound=Callable[..., Any])

MAX_CLOCK_SKEW_SECONDS = 300
PARTNER_CODE_HEADER = "X-Partner-Code"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
POS_KEY_ID_HEADER = "X-Pos-Key-Id"
NONCE_HEADER = "X-Nonce"

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
NONCE_PATTERN = r"[A-Za-z0-9_-]{16,64}"
_NONCE = re.compile(NONCE_PATTERN)


class SignatureRequired(DomainError):
    code, status, message = (
        "SIGNATURE_REQUIRED",
        401,
        "缺少签名请求头（X-Partner-Code、X-Timestamp、X-Signature）",
    )


class SignatureInvalid(DomainError):
    code, status, message = "SIGNATURE_INVALID", 401, "签名无效或合作方不可用"


class PosSignatureRequired(DomainError):
    code, status, message = (
        "SIGNATURE_REQUIRED",
        401,
        "缺少签名请求头（X-Pos-Key-Id、X-Timestamp、X-Nonce、X-Signature）",
    )


class PosSignatureInvalid(DomainError):
    code, status, message = "SIGNATURE_INVALID", 401, "签名无效，或终端密钥不存在、已更换或已停用"


class SignatureExpired(DomainError):
    code, status, message = "SIGNATURE_EXPIRED", 401, "签名时间戳与服务器时间相差超过 5 分钟"


def signature(
    secret: str, timestamp: str, method: str, path: str, body: bytes, *, nonce: str | None = None
) -> str:
    """The lowercase hex signature of a request (with the nonce line for POS terminals)."""
    nonce_line = "" if nonce is None else f"{nonce}\n"
    message = f"{timestamp}\n{nonce_line}{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _signed_by(secret: str, timestamp: str, provided: str, *, nonce: str | None = None) -> bool:
    """Whether the current request's raw body, method and path carry this signature."""
    # Cached, so that the JSON parser later reads the very bytes that were verified.
    body = request.get_data(cache=True)
    expected = signature(secret, timestamp, request.method, request.path, body, nonce=nonce)
    # Bytes, not str: compare_digest refuses non-ASCII strings, and headers may carry anything.
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace"))


def _check_fresh(timestamp: str) -> None:
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureExpired()


def partner_signature_required(view: F) -> F:
    """Partner endpoints: verifies the signature over the raw body, then sets the calling partner."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.current_partner = _verified_partner()
        return view(*args, **kwargs)

    return declare_raises(cast(F, wrapper), SignatureRequired, SignatureInvalid, SignatureExpired)


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
    if not _signed_by(partner.secret, timestamp, provided):
        raise SignatureInvalid()
    _check_fresh(timestamp)
    return partner


def pos_signature_required(view: F) -> F:
    """POS endpoints: verifies the signature and spends the nonce, then sets the calling terminal."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.current_pos_terminal = _verified_terminal()
        replayed = idempotency.authenticated(f"pos:{g.current_pos_terminal.id}")
        return replayed if replayed is not None else view(*args, **kwargs)

    return declare_raises(
        cast(F, wrapper), PosSignatureRequired, PosSignatureInvalid, SignatureExpired, pos.NonceReused
    )


def current_pos_terminal() -> PosTerminal:
    return cast(PosTerminal, g.current_pos_terminal)


def _verified_terminal() -> PosTerminal:
    key_id = request.headers.get(POS_KEY_ID_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    nonce = request.headers.get(NONCE_HEADER, "")
    provided = request.headers.get(SIGNATURE_HEADER, "")
    if not (key_id and timestamp and nonce and provided):
        raise PosSignatureRequired()
    if not (_UNIX_SECONDS.fullmatch(timestamp) and _NONCE.fullmatch(nonce)):
        raise PosSignatureInvalid()
    with transaction() as session:
        terminal = pos.active_terminal(session, key_id)
    if terminal is None:
        raise PosSignatureInvalid()
    if not _signed_by(extensions().pos_keyring.secret_for(terminal.key_id), timestamp, provided, nonce=nonce):
        raise PosSignatureInvalid()
    _check_fresh(timestamp)
    # Committed on its own: a request that fails later still spent its nonce, so a retry
    # signs a new one (the receipt number keeps the retry idempotent).
    with transaction() as session:
        pos.use_nonce(session, terminal.id, nonce, at=mall_time().now)
    return terminal


def header_parameters(
    key_header: str, key_description: str, scheme_name: str, *, with_nonce: bool
) -> list[dict[str, Any]]:
    """The OpenAPI header parameters of a signed request: the caller's key, the timestamp, the nonce
    (where the scheme has one) and the signature."""

    def header(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
        schema = {"type": "string"} | ({"pattern": pattern} if pattern else {})
        return {"in": "header", "name": name, "required": True, "schema": schema, "description": description}

    timestamp = f"签名时间（Unix 秒），与服务器时间相差不得超过 {MAX_CLOCK_SKEW_SECONDS} 秒"
    nonce = "请求随机数，16–64 位字母、数字、_ 或 -；同一终端不得重复使用"
    signature = f"小写十六进制 HMAC-SHA256 签名，见安全方案 {scheme_name}"
    return [
        header(key_header, key_description),
        header(TIMESTAMP_HEADER, timestamp, "^[0-9]+$"),
        *([header(NONCE_HEADER, nonce, f"^{NONCE_PATTERN}$")] if with_nonce else []),
        header(SIGNATURE_HEADER, signature, "^[0-9a-f]{64}$"),
    ]


class SignedBlueprint(Blueprint):
    """A blueprint of HMAC-signed endpoints: declares its signature scheme in the spec of whichever API
    registers it (flask-smorest has no per-blueprint security schemes)."""

    def __init__(self, *args: Any, scheme_name: str, scheme: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scheme_name, self._scheme = scheme_name, scheme

    def register_views_in_doc(self, api: Any, app: Any, spec: Any, *, name: Any, parameters: Any) -> Any:
        if self._scheme_name not in spec.components.security_schemes:
            spec.components.security_scheme(self._scheme_name, self._scheme)
        return super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)

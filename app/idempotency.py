"""The Idempotency-Key header on state-changing requests, for the blueprints that opt in with `enable`.

A client sends a key it generated (e.g. a UUID) with a POST, PUT, PATCH or DELETE and the same key
when it retries. Once the caller is authenticated (the auth decorators call `authenticated`), the key
is claimed for (caller, key); the response is kept when the request ends, and a repeat of the same
request (method, path and body) gets it back with `Idempotent-Replayed: true` without the handler
running again. The same key on another request is a 409 IDEMPOTENCY_KEY_REUSED, and a repeat while
the first is still running a 409 IDEMPOTENCY_KEY_IN_PROGRESS.

Kept: 2xx and 4xx answers, except 202 (an outcome still unknown: the retry asks again), 409 (a
conflict with the current state, which may pass) and 423/429 (try-later refusals). 5xx are not kept,
so a retry can succeed. Requests without an identity (logins) ignore the header.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from app.db import transaction, utcnow
from app.errors import ValidationFailed
from app.extensions import settings
from app.services import idempotency
from app.services.idempotency import StoredResponse

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY = re.compile(r"[\x21-\x7e]{8,128}")  # visible ASCII: a UUID, a ULID, "order-123-retry"...
_NOT_KEPT = frozenset({202, 409, 423, 429})
_KEPT_HEADERS = ("Content-Type", "Location")
_PARAMETER = "IdempotencyKey"


def enable(blp: Blueprint) -> None:
    """Honour Idempotency-Key on the blueprint's state-changing endpoints, and document it there."""
    blp.before_request(_mark_enabled)
    blp._prepare_doc_cbks.append(_document_header)


def refuse_first(check: Callable[..., None]) -> Callable[[F], F]:
    """Runs `check(**view_args)` once the caller is known, before the key is claimed: for refusals that
    are cheaper than the claim's database round trip and never kept (a flash claim's sold-out shortcut).
    Goes right below the route decorator."""

    def decorator(view: F) -> F:
        view.idempotency_precheck = check  # type: ignore[attr-defined]
        return view

    return decorator


def init_app(app: Flask) -> None:
    app.after_request(_keep_response)
    app.teardown_request(_release_unfinished)


def _mark_enabled() -> None:
    g.idempotency_enabled = True


def authenticated(actor: str) -> Response | None:
    """Called once the caller is known: claims the request's key, if it sent one to an endpoint that
    honours it. Returns the kept response of an earlier identical request, to answer with instead."""
    g.actor = actor
    key = request.headers.get(HEADER)
    if key is None or request.method not in _STATE_CHANGING or not g.get("idempotency_enabled"):
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    precheck = getattr(view, "idempotency_precheck", None)
    if precheck is not None:
        precheck(**(request.view_args or {}))
    if not _KEY.fullmatch(key):
        raise ValidationFailed(details={HEADER: ["应为 8 到 128 位可见 ASCII 字符，如 UUID"]})
    digest = hashlib.sha256(f"{request.method}\n{request.path}\n".encode())
    # Cached: the JSON parser (and the POS signature check, before) read the same bytes.
    digest.update(request.get_data(cache=True))
    at = utcnow()
    ttl = timedelta(hours=settings().IDEMPOTENCY_KEY_TTL_HOURS)
    with transaction() as session:
        claimed = idempotency.claim(session, actor, key, digest.hexdigest(), at=at, ttl=ttl)
    if isinstance(claimed, StoredResponse):
        response = Response(claimed.body, status=claimed.status, headers=claimed.headers)
        response.headers[REPLAYED_HEADER] = "true"
        return response
    g.idempotency_record_id = claimed
    return None


def _keep_response(response: Response) -> Response:
    record_id: int | None = g.pop("idempotency_record_id", None)
    if record_id is None:
        return response
    status = response.status_code
    keep = (200 <= status < 300 or 400 <= status < 500) and status not in _NOT_KEPT
    try:
        with transaction() as session:
            if keep and not response.is_streamed:
                headers = [
                    (name, response.headers[name]) for name in _KEPT_HEADERS if name in response.headers
                ]
                idempotency.complete(session, record_id, StoredResponse(status, headers, response.get_data()))
            else:
                idempotency.release(session, record_id)
    except SQLAlchemyError:
        # The answer stands; the key stays in progress until ABANDONED_AFTER, then a retry re-runs.
        log.exception("could not keep the response of an idempotent request")
    return response


def _release_unfinished(_error: BaseException | None) -> None:
    """A request that ended without a response (an error past every handler) frees its key."""
    record_id: int | None = g.pop("idempotency_record_id", None)
    if record_id is None:
        return
    try:
        with transaction() as session:
            idempotency.release(session, record_id)
    except SQLAlchemyError:
        log.exception("could not release an idempotency key")


def _document_header(
    doc: dict[str, Any], doc_info: dict[str, Any], *, spec: Any, method: str, **_: Any
) -> dict[str, Any]:
    """The shared header parameter on each authenticated state-changing operation (flask-smorest's
    per-blueprint doc hook); operations that already declare the header keep their own."""
    if method.upper() not in _STATE_CHANGING or not doc_info.get("manual_doc", {}).get("security"):
        return doc
    # Parameters given to `blp.doc` replace the generated ones: the header goes where it will stay.
    manual_doc = doc_info.get("manual_doc", {})
    parameters = manual_doc["parameters"] if "parameters" in manual_doc else doc.setdefault("parameters", [])
    if any(_declares_header(parameter) for parameter in parameters):
        return doc
    if _PARAMETER not in spec.components.parameters:
        spec.components.parameter(
            _PARAMETER,
            "header",
            {
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{8,128}$"},
                "description": (
                    "客户端生成的唯一请求编号（如 UUID），重试时保持不变：同一请求（方法、路径、请求体相同）"
                    "返回首次的响应并带 Idempotent-Replayed: true，不会重复执行；"
                    "同一编号用于不同请求返回 409 IDEMPOTENCY_KEY_REUSED，"
                    "首次请求仍在处理时返回 409 IDEMPOTENCY_KEY_IN_PROGRESS。"
                    "保留 IDEMPOTENCY_KEY_TTL_HOURS（默认 24）小时；"
                    "5xx、202、409、423、429 不保留，可直接重试"
                ),
            },
        )
    parameters.append(_PARAMETER)  # apispec turns a component name into its $ref
    return doc


def _declares_header(parameter: Any) -> bool:
    if not isinstance(parameter, dict) or parameter.get("in") != "header":
        return False
    schema = parameter.get("schema")
    fields = getattr(schema, "fields", {})
    return parameter.get("name") == HEADER or any(f.data_key == HEADER for f in fields.values())

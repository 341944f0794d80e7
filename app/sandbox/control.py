"""Control API mounted on both sandbox servers under /sandbox/ to steer and inspect them."""

from __future__ import annotations

from typing import Any, TypeGuard

from flask import Blueprint, Response, jsonify, request

from .faults import parse_fault
from .wire import sandbox_state

CONTROL_PREFIX = "/sandbox"

DEFAULT_FAULT_MESSAGES = {
    40001: "invalid credential, access_token is invalid or not latest",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
}

control = Blueprint("sandbox_control", __name__)


@control.post("/reset")
def reset() -> Response:
    sandbox_state().reset()
    return _ok()


@control.post("/faults")
def add_fault() -> Response | tuple[Response, int]:
    """Queue a fault for `path` (or "*": every API path); see app.sandbox.faults.parse_fault."""
    body: Any = request.get_json(force=True, silent=True)
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.strip("/"):
        return _bad_request("path must be a non-empty string")
    errcode = body.get("errcode")
    default_message = (
        DEFAULT_FAULT_MESSAGES.get(errcode, "sandbox injected error") if _is_int(errcode) else ""
    )
    fault = parse_fault(body, default_errcode=-1, default_errmsg=default_message or "sandbox injected error")
    if isinstance(fault, str):
        return _bad_request(fault)
    sandbox_state().add_fault(path, fault)
    return _ok()


@control.get("/faults")
def list_faults() -> Response:
    """The faults still queued, by path, and how many fired, by kind."""
    return jsonify(sandbox_state().faults.to_json())


@control.delete("/faults")
def clear_faults() -> Response:
    """Clear the faults queued for `?path=` ("*" included), or every fault."""
    dropped = sandbox_state().faults.clear(request.args.get("path") or None)
    return jsonify({"ok": True, "cleared": dropped})


@control.post("/expire-tokens")
def expire_tokens() -> Response:
    sandbox_state().expire_tokens()
    return _ok()


@control.get("/messages")
def messages() -> Response:
    return jsonify({"messages": sandbox_state().messages()})


@control.get("/requests")
def requests() -> Response:
    return jsonify({"requests": sandbox_state().request_log()})


def _ok() -> Response:
    return jsonify({"ok": True})


def _bad_request(error: str) -> tuple[Response, int]:
    return jsonify({"ok": False, "error": error}), 400


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)

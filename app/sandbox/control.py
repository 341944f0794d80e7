"""Control API mounted on both sandbox servers under /sandbox/ to steer and inspect them."""

from __future__ import annotations

from typing import Any, TypeGuard

from flask import Blueprint, Response, jsonify, request

from .state import Fault
from .wire import sandbox_state

CONTROL_PREFIX = "/sandbox"

DEFAULT_FAULT_MESSAGES = {
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
    body: Any = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object")
    path, errcode = body.get("path"), body.get("errcode")
    errmsg, times = body.get("errmsg"), body.get("times", 1)
    http_status, delay = body.get("http_status"), body.get("delay_seconds", 0)
    if not isinstance(path, str) or not path.strip("/"):
        return _bad_request("path must be a non-empty string")
    if http_status is not None and not (_is_int(http_status) and 400 <= http_status <= 599):
        return _bad_request("http_status must be an HTTP error status")
    if not (isinstance(delay, int | float) and not isinstance(delay, bool) and 0 <= delay <= 60):
        return _bad_request("delay_seconds must be a number of seconds up to 60")
    if errcode is None and (http_status is not None or delay):
        # A delay alone: the client times out, and the late answer is a server error.
        errcode, http_status = -1, http_status or 503
    if not _is_int(errcode):
        return _bad_request("errcode must be an integer")
    if errmsg is not None and not isinstance(errmsg, str):
        return _bad_request("errmsg must be a string")
    if not _is_int(times) or times < 1:
        return _bad_request("times must be a positive integer")

    message = errmsg or DEFAULT_FAULT_MESSAGES.get(errcode, "sandbox injected error")
    sandbox_state().add_fault(
        f"/{path.lstrip('/')}",
        Fault(errcode, message, times, http_status=http_status, delay_seconds=float(delay)),
    )
    return _ok()


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

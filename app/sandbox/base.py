"""The Flask app skeleton both sandbox servers are built on."""

from __future__ import annotations

import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .control import CONTROL_PREFIX, control
from .faults import Fault
from .state import SandboxState
from .wire import (
    EXTENSION_KEY,
    Dialect,
    ServerContext,
    WireError,
    parse_json,
    server_context,
)


def create_base_app(import_name: str, state: SandboxState, dialect: Dialect) -> Flask:
    """An app that logs requests, fires injected faults and speaks errcode/errmsg."""
    app = Flask(import_name)
    app.extensions[EXTENSION_KEY] = ServerContext(state=state, dialect=dialect)
    # Keep "errcode" first and Chinese text readable, as the real servers do.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    app.before_request(_log_request_and_fire_faults)
    app.after_request(_lose_answer)
    app.register_error_handler(WireError, _render_wire_error)
    app.register_error_handler(NotFound, _render_not_found)
    app.register_error_handler(MethodNotAllowed, _render_method_not_allowed)
    app.register_blueprint(control, url_prefix=CONTROL_PREFIX)
    return app


def _log_request_and_fire_faults() -> Response | None:
    if request.path.startswith(f"{CONTROL_PREFIX}/"):
        return None
    state = server_context().state
    state.log_request(
        {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(),
            "json": parse_json(request.get_data()),
            "headers": dict(request.headers),
            "at": time.time(),
        }
    )
    # Faults fire before any validation or token check so tests can rely on them unconditionally.
    fault = state.take_fault(request.path)
    if fault is None:
        return None
    if fault.process:
        # Carried out; the answer is lost (or late) on the way back: see _lose_answer.
        g.sandbox_fault = fault
        return None
    if fault.delay_seconds:
        time.sleep(fault.delay_seconds)
    if fault.kind == "error":
        raise WireError(fault.errcode, fault.errmsg)
    return gateway_error(fault.http_status, fault.errmsg)


def _lose_answer(response: Response) -> Response:
    fault: Fault | None = g.pop("sandbox_fault", None)
    if fault is None:
        return response
    if fault.delay_seconds:
        time.sleep(fault.delay_seconds)
    if fault.kind == "timeout":
        return response  # too late for a client with a shorter timeout
    return gateway_error(fault.http_status, "Gateway Time-out")


def gateway_error(status: int, text: str) -> Response:
    """What the gateway in front of the real servers answers when they fail: an HTML page."""
    return Response(f"<html><body>{status} {text}</body></html>", status, mimetype="text/html")


def _render_wire_error(error: WireError) -> Response:
    suffix = server_context().dialect.error_suffix(error.errcode)
    return jsonify({"errcode": error.errcode, "errmsg": f"{error.errmsg}{suffix}"})


def _render_not_found(error: NotFound) -> tuple[Response, int]:
    return jsonify({"errcode": 404, "errmsg": f"sandbox: unknown path {request.path}"}), 404


def _render_method_not_allowed(error: MethodNotAllowed) -> Response:
    # The real servers answer a wrong method with HTTP 200 and 43001/43002.
    if "POST" in (error.valid_methods or ()):
        return _render_wire_error(WireError(43002, "require POST method"))
    return _render_wire_error(WireError(43001, "require GET method"))

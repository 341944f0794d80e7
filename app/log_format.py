"""Log lines as JSON (LOG_FORMAT=json, production's default), one object per line, for log shippers:

    {"time": "2026-05-01T08:30:00.123Z", "level": "INFO", "logger": "app.access", "message": "...",
     "request_id": "...", "method": "POST", "path": "/api/mp/v1/me/check-ins", "status": 201,
     "duration_ms": 12.4}

`request_id`, `method` and `path` appear on every line logged while a request is handled (and
`request_id` on a scheduled job's lines); `status` and `duration_ms` on the access line that ends each
request (logger `app.access`). Every string is masked by `app.log_masking` as text lines are.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import has_request_context, request

from app.log_masking import mask, mask_record
from app.request_ids import current_request_id

ACCESS_LOGGER = "app.access"
_REQUEST_FIELDS = ("method", "path", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        mask_record(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        if has_request_context():
            # The path is the client's text; the message, exception and stack were masked above,
            # and the other values are ours (a request id is only kept when it looks like one).
            entry["method"], entry["path"] = request.method, mask(request.path)
        for name in _REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def use_json_lines(logger: logging.Logger | None = None) -> None:
    """Format every handler of `logger` (the root logger by default) as JSON lines."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())

"""What a request may carry before anything reads it: how many bytes (ids in URLs: url_converters.py).

Every request body is capped at MAX_REQUEST_BYTES (Flask's MAX_CONTENT_LENGTH): a bigger one is
refused with 413 `PAYLOAD_TOO_LARGE` as soon as something reads it, before it is buffered or parsed.
Views marked `@allows_large_upload` (the console's 数据导入) get MAX_IMPORT_UPLOAD_BYTES instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.config import Config

F = TypeVar("F", bound=Callable[..., Any])


def allows_large_upload(view: F) -> F:
    """Marks a view that accepts uploads up to MAX_IMPORT_UPLOAD_BYTES (kept by functools.wraps)."""
    view.allows_large_upload = True  # type: ignore[attr-defined]
    return view


def register_request_limits(app: Flask, config: Config) -> None:
    """The body cap, and the larger one of the views marked `@allows_large_upload`."""
    app.config["MAX_CONTENT_LENGTH"] = config.MAX_REQUEST_BYTES

    @app.before_request
    def _refuse_oversized_bodies() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "allows_large_upload", False):
            request.max_content_length = config.MAX_IMPORT_UPLOAD_BYTES
        # A declared length is refused at once, whatever the view (even one that would answer 401
        # before reading the body); a chunked body is cut when reading passes the cap.
        limit = request.max_content_length
        if limit is not None and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge()

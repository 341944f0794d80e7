"""What a request may carry before anything reads it: how many bytes, and how big an id in a URL.

Every request body is capped at MAX_REQUEST_BYTES (Flask's MAX_CONTENT_LENGTH): a bigger one is
refused with 413 `PAYLOAD_TOO_LARGE` as soon as something reads it, before it is buffered or parsed.
Views marked `@allows_large_upload` (the console's 数据导入) get MAX_IMPORT_UPLOAD_BYTES instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, Map

from app.config import Config
from app.input_bounds import MAX_INT

F = TypeVar("F", bound=Callable[..., Any])


class BoundedIntegerConverter(IntegerConverter):
    """`<int:...>` URL segments, no bigger than the INT columns they look up (a bigger one is a 404,
    never a number the database cannot bind)."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_INT,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def allows_large_upload(view: F) -> F:
    """Marks a view that accepts uploads up to MAX_IMPORT_UPLOAD_BYTES (kept by functools.wraps)."""
    view.allows_large_upload = True  # type: ignore[attr-defined]
    return view


def register_request_limits(app: Flask, config: Config) -> None:
    """Before any route is added: the body cap, and the bounded `int` converter."""
    app.config["MAX_CONTENT_LENGTH"] = config.MAX_REQUEST_BYTES
    app.url_map.converters["int"] = BoundedIntegerConverter

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

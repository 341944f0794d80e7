"""The OpenAPI-documented HTTP API: one spec for every caller, generated from the schemas.

The spec is served at /api/openapi.json and Swagger UI at /api/docs, with the UI's
assets served from the `swagger_ui_bundle` package: mall intranets block CDNs.
"""

from __future__ import annotations

import http
from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask import Blueprint, Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from app.errors import DomainError


class ErrorSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "稳定的错误码，如 MEMBER_CODE_USED"})
    message = ma.fields.String(required=True, metadata={"description": "可直接展示给用户的中文提示"})
    details = ma.fields.Raw(metadata={"description": "字段级错误等附加信息"})


class MallMemberApi(Api):
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: every error status an operation answers with is listed (by
    # ErrorResponses), so a status the spec does not name is a bug a conformance check catches.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:
        """Our own handlers (app.errors) render every error; flask-smorest's would differ."""


# What the framework and the shared request handling answer with, by what an operation takes.
_BODY_ERRORS = {400: {"BAD_REQUEST"}, 413: {"PAYLOAD_TOO_LARGE"}, 422: {"VALIDATION_ERROR"}}
_INPUT_ERRORS = {422: {"VALIDATION_ERROR"}}
_PATH_ID_ERRORS = {404: {"NOT_FOUND"}}
_IDEMPOTENCY_ERRORS = {
    409: {"IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_IN_PROGRESS"},
    422: {"VALIDATION_ERROR"},
}
_IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_PARAMETER = "IdempotencyKey"  # app.idempotency's shared header component


class ErrorResponses(BasePlugin):
    """Documents each operation's error responses, in the shared Error schema: the domain errors its
    view and decorators declare (app.errors.raises: auth 401/403, limits 423/429, outside systems
    503, ...) and what the framework answers for its inputs (400/413/422 for a body, 422 for query
    or header arguments, 404 for ids in the path, 409 for a reused Idempotency-Key). A response the
    view documents itself (`alt_response`) is kept; only the codes of the others are listed."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule: Rule | None = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self._app.view_functions.get(rule.endpoint)
        declared: tuple[type[DomainError], ...] = getattr(view, "raises", ())
        for operation in operations.values():
            errors: dict[int, set[str]] = {}
            for error in declared:
                errors.setdefault(error.status, set()).add(error.code)
            for status, codes in self._input_errors(operation, rule).items():
                errors.setdefault(status, set()).update(codes)
            responses = operation.setdefault("responses", {})
            for status, codes in sorted(errors.items()):
                if isinstance(responses.get(str(status)), dict):
                    continue
                responses[str(status)] = {
                    "description": f"{http.HTTPStatus(status).phrase}：{'、'.join(sorted(codes))}",
                    "content": {"application/json": {"schema": "Error"}},
                }

    @staticmethod
    def _input_errors(operation: dict[str, Any], rule: Rule) -> dict[int, set[str]]:
        parameters = operation.get("parameters", [])
        found: list[dict[int, set[str]]] = []
        if "requestBody" in operation:
            found.append(_BODY_ERRORS)
        if any(isinstance(p, dict) and p.get("in") == "query" for p in parameters):
            found.append(_INPUT_ERRORS)
        if rule.arguments:
            found.append(_PATH_ID_ERRORS)
        if any(
            p == _IDEMPOTENCY_PARAMETER or (isinstance(p, dict) and p.get("name") == _IDEMPOTENCY_HEADER)
            for p in parameters
        ):
            found.append(_IDEMPOTENCY_ERRORS)
        merged: dict[int, set[str]] = {}
        for errors in found:
            for status, codes in errors.items():
                merged.setdefault(status, set()).update(codes)
        return merged


_docs_assets = Blueprint("api_docs_assets", __name__)


@_docs_assets.get("/api/docs/assets/<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def register_api(app: Flask) -> Api:
    from app.console import register_admin_api, register_console_pages
    from app.partner_api import register_partner_api
    from miniprogram_api import register_miniprogram_api
    from wecom import register_staff_api, register_wecom_callbacks, register_wecom_pages

    api = MallMemberApi(app, spec_kwargs={"extra_plugins": [ErrorResponses(app)]})
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "登录接口返回的 token"}
    )
    register_miniprogram_api(api)
    register_staff_api(api)
    register_admin_api(api)
    register_partner_api(api)
    app.register_blueprint(_docs_assets)
    register_wecom_callbacks(app)
    register_wecom_pages(app)
    register_console_pages(app)
    return api

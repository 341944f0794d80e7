"""The OpenAPI-documented HTTP API: one spec for every caller, generated from the schemas.

The spec is served at /api/openapi.json and Swagger UI at /api/docs, with the UI's
assets served from the `swagger_ui_bundle` package: mall intranets block CDNs.
"""

from __future__ import annotations

import marshmallow as ma
from flask import Blueprint, Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path
from werkzeug.wrappers import Response


class ErrorSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "稳定的错误码，如 MEMBER_CODE_USED"})
    message = ma.fields.String(required=True, metadata={"description": "可直接展示给用户的中文提示"})
    details = ma.fields.Raw(metadata={"description": "字段级错误等附加信息"})


class MallMemberApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """Our own handlers (app.errors) render every error; flask-smorest's would differ."""


_docs_assets = Blueprint("api_docs_assets", __name__)


@_docs_assets.get("/api/docs/assets/<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def register_api(app: Flask) -> Api:
    from app.console import register_admin_api, register_console_pages
    from app.partner_api import register_partner_api
    from miniprogram_api import register_miniprogram_api
    from wecom import register_staff_api, register_wecom_callbacks, register_wecom_pages

    api = MallMemberApi(app)
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

"""Operator login."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from app.auth import Audience, issue_token
from app.console.schemas import OperatorLoginIn, OperatorLoginOut
from app.db import transaction
from app.errors import raises
from app.extensions import extensions
from app.services import authentication

blp = Blueprint("admin_auth", __name__, url_prefix="/api/admin/v1", description="运营后台：登录")


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(OperatorLoginIn())
@blp.response(200, OperatorLoginOut)
@raises(authentication.LoginFailed, authentication.LoginLocked)
def login(args: dict[str, Any]) -> dict[str, Any]:
    """用户名密码登录；连续失败将被暂时锁定"""
    with transaction() as session:
        operator = authentication.authenticate_operator(
            session,
            extensions().admin_login_throttle,
            args["username"],
            args["password"],
            client_ip=request.remote_addr or "unknown",
        )
    token, expires_in = issue_token(Audience.ADMIN, operator.id)
    return {"token": token, "expires_in": expires_in, "operator": operator}

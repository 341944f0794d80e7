"""Shopper login with a wx.login() code."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import idempotency
from app.auth import Audience, issue_token
from app.db import run_transaction, transaction
from app.errors import AuthInvalid, NotFound, raises
from app.extensions import extensions
from app.integrations import wechat_client
from app.ratelimit import LimitKind
from app.services import members
from app.throttling import rate_limited
from miniprogram_api.schemas import LoginOut, WeChatLoginIn

blp = Blueprint("mp_auth", __name__, url_prefix="/api/mp/v1", description="小程序：登录")
idempotency.enable(blp)


@blp.route("/auth/login", methods=["POST"])
@rate_limited(LimitKind.LOGIN)
@blp.arguments(WeChatLoginIn())
@blp.response(200, LoginOut)
@raises(
    members.WeChatLoginCodeInvalid,
    AuthInvalid,
    NotFound,
    wechat_client.WeChatRateLimited,
    wechat_client.WeChatUnavailable,
)
def login(args: dict[str, Any]) -> dict[str, Any]:
    """用 wx.login() 的 code 登录；已注册时一并返回会员信息"""
    wechat = extensions().wechat
    wechat_session = members.exchange_login_code(wechat, args["code"])
    account = run_transaction(lambda session: members.record_login(session, wechat.appid, wechat_session))
    with transaction() as session:
        member = members.member_of_account(session, account.id)
    token, expires_in = issue_token(Audience.MINIPROGRAM, account.id)
    return {"token": token, "expires_in": expires_in, "member": member}

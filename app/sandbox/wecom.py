"""Fake WeCom (企业微信) server API (qyapi.weixin.qq.com).

OAuth codes are `sandbox:<userid>`; any other code is rejected with 40029.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Flask, current_app, request

from .base import create_base_app
from .state import JsonObject, SandboxState
from .wire import (
    Dialect,
    WireError,
    json_body,
    require_access_token,
    sandbox_state,
    text_field,
    wecom_error_suffix,
)

WECOM_DIALECT = Dialect(
    error_suffix=wecom_error_suffix,
    unknown_token=(40014, "invalid access_token"),
)

OAUTH_CODE_PREFIX = "sandbox:"
USER_TICKET_TTL_SECONDS = 1800

credentials = Blueprint("wecom_credentials", __name__)
api = Blueprint("wecom_api", __name__)
api.before_request(require_access_token)


def create_wecom_app(state: SandboxState, corp_id: str, secret: str, agent_id: str) -> Flask:
    app = create_base_app(__name__, state, WECOM_DIALECT)
    app.config.update(SANDBOX_CORP_ID=corp_id, SANDBOX_SECRET=secret, SANDBOX_AGENT_ID=str(agent_id))
    app.register_blueprint(credentials)
    app.register_blueprint(api)
    return app


@credentials.get("/cgi-bin/gettoken")
def get_token() -> JsonObject:
    corp_id = request.args.get("corpid", "")
    secret = request.args.get("corpsecret", "")
    if not corp_id:
        raise WireError(41002, "corpid missing")
    if corp_id != current_app.config["SANDBOX_CORP_ID"]:
        raise WireError(40013, "invalid corpid")
    if not secret:
        raise WireError(41004, "corpsecret missing")
    if secret != current_app.config["SANDBOX_SECRET"]:
        raise WireError(40001, "invalid credential")
    token = sandbox_state().issue_token()
    return {
        "errcode": 0,
        "errmsg": "ok",
        "access_token": token.value,
        "expires_in": token.expires_in(),
    }


@api.get("/cgi-bin/auth/getuserinfo")
def get_user_info() -> JsonObject:
    return {
        "errcode": 0,
        "errmsg": "ok",
        "userid": _userid_from_code(),
        "user_ticket": secrets.token_urlsafe(48),
        "expires_in": USER_TICKET_TTL_SECONDS,
    }


@api.get("/cgi-bin/user/getuserinfo")
def get_user_info_legacy() -> JsonObject:
    """The legacy path that `wechatpy.enterprise` 1.8 still calls."""
    return {"errcode": 0, "errmsg": "ok", "UserId": _userid_from_code(), "DeviceId": ""}


@api.post("/cgi-bin/message/send")
def send_message() -> JsonObject:
    body = json_body()
    if str(body.get("agentid")) != current_app.config["SANDBOX_AGENT_ID"]:
        raise WireError(40056, "invalid agentid")
    msgtype = text_field(body, "msgtype")
    if not msgtype or not isinstance(body.get(msgtype), dict):
        raise WireError(40008, "invalid message type")
    if not any(text_field(body, key) for key in ("touser", "toparty", "totag")):
        raise WireError(81013, "user & party & tag all invalid")
    # Real WeCom msgids are opaque strings.
    msgid = secrets.token_urlsafe(48)
    sandbox_state().record_message({**body, "msgid": msgid})
    return {
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": "",
        "invalidparty": "",
        "invalidtag": "",
        "msgid": msgid,
    }


def _userid_from_code() -> str:
    code = request.args.get("code", "")
    userid = code.removeprefix(OAUTH_CODE_PREFIX)
    if not code.startswith(OAUTH_CODE_PREFIX) or not userid:
        raise WireError(40029, "invalid code")
    return userid

"""Fake WeChat mini-program server API (api.weixin.qq.com).

Login codes are `sandbox:<openid>` and phone codes `sandbox-phone:<11 digits>`;
any other code is rejected with 40029, as an expired or forged one would be.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import qrcode
from flask import Blueprint, Flask, Response, current_app, request
from PIL import Image

from .base import create_base_app
from .state import AccessToken, JsonObject, SandboxState
from .wire import (
    Dialect,
    WireError,
    json_body,
    require_access_token,
    sandbox_state,
    text_field,
    wechat_error_suffix,
)

WECHAT_DIALECT = Dialect(
    error_suffix=wechat_error_suffix,
    unknown_token=(40001, "invalid credential, access_token is invalid or not latest"),
)

LOGIN_CODE_PREFIX = "sandbox:"
PHONE_CODE = re.compile(r"sandbox-phone:(\d{11})")
SCENE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}")
WXACODE_WIDTH_DEFAULT, WXACODE_WIDTH_MIN, WXACODE_WIDTH_MAX = 430, 280, 1280

# Endpoints that authenticate with appid + secret and take no access_token.
credentials = Blueprint("wechat_credentials", __name__)
api = Blueprint("wechat_api", __name__)
api.before_request(require_access_token)


def create_wechat_app(state: SandboxState, appid: str, secret: str) -> Flask:
    app = create_base_app(__name__, state, WECHAT_DIALECT)
    app.config.update(SANDBOX_APPID=appid, SANDBOX_SECRET=secret)
    app.register_blueprint(credentials)
    app.register_blueprint(api)
    return app


@credentials.get("/cgi-bin/token")
def token() -> JsonObject:
    _check_grant_type(request.args.get("grant_type", ""), "client_credential")
    _check_app_credentials(request.args.get("appid", ""), request.args.get("secret", ""))
    return _token_response(sandbox_state().issue_token())


@credentials.post("/cgi-bin/stable_token")
def stable_token() -> JsonObject:
    body = json_body()
    _check_grant_type(text_field(body, "grant_type"), "client_credential")
    _check_app_credentials(text_field(body, "appid"), text_field(body, "secret"))
    force_refresh = body.get("force_refresh") is True
    return _token_response(sandbox_state().issue_token(reuse_valid=not force_refresh))


@credentials.get("/sns/jscode2session")
def jscode2session() -> JsonObject:
    args = request.args
    _check_grant_type(args.get("grant_type", ""), "authorization_code")
    _check_app_credentials(args.get("appid", ""), args.get("secret", ""))
    js_code = args.get("js_code", "")
    openid = js_code.removeprefix(LOGIN_CODE_PREFIX)
    if not js_code.startswith(LOGIN_CODE_PREFIX) or not openid:
        raise WireError(40029, "invalid code")
    return {
        "openid": openid,
        "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
        "unionid": f"sandbox-union-{openid}",
    }


@api.post("/wxa/business/getuserphonenumber")
def get_user_phone_number() -> JsonObject:
    match = PHONE_CODE.fullmatch(text_field(json_body(), "code"))
    if match is None:
        raise WireError(40029, "invalid code")
    phone = match.group(1)
    return {
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": phone,
            "purePhoneNumber": phone,
            "countryCode": "86",
            "watermark": {
                "timestamp": int(time.time()),
                "appid": current_app.config["SANDBOX_APPID"],
            },
        },
    }


@api.post("/wxa/getwxacodeunlimit")
def get_wxacode_unlimited() -> Response:
    body = json_body()
    scene = text_field(body, "scene")
    if not SCENE.fullmatch(scene):
        raise WireError(40169, "invalid length for scene, or the data is not json string")
    target = urlencode({"page": text_field(body, "page"), "scene": scene})
    png = _render_qr_png(f"https://mp.weixin.qq.com/a/sandbox?{target}", _wxacode_width(body))
    return Response(png, mimetype="image/png")


@api.post("/cgi-bin/message/subscribe/send")
def send_subscribe_message() -> JsonObject:
    body = json_body()
    if not text_field(body, "touser"):
        raise WireError(40003, "invalid openid")
    if not text_field(body, "template_id"):
        raise WireError(40037, "invalid template_id")
    _check_template_data(body.get("data"))
    # Real msgids are large 64-bit integers.
    msgid = secrets.randbits(62)
    sandbox_state().record_message({**body, "msgid": msgid})
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def _check_grant_type(grant_type: str, expected: str) -> None:
    if grant_type != expected:
        raise WireError(40002, "invalid grant_type")


def _check_app_credentials(appid: str, secret: str) -> None:
    if not appid:
        raise WireError(41002, "appid missing")
    if appid != current_app.config["SANDBOX_APPID"]:
        raise WireError(40013, "invalid appid")
    if not secret:
        raise WireError(41004, "appsecret missing")
    if secret != current_app.config["SANDBOX_SECRET"]:
        raise WireError(40125, "invalid appsecret")


def _token_response(token: AccessToken) -> JsonObject:
    return {"access_token": token.value, "expires_in": token.expires_in()}


def _check_template_data(data: Any) -> None:
    if not isinstance(data, dict) or not data:
        raise WireError(47003, "argument invalid! data.xxx.value invalid")
    for key, field in data.items():
        if not isinstance(field, dict) or not isinstance(field.get("value"), str):
            raise WireError(47003, f"argument invalid! data.{key}.value invalid")


def _wxacode_width(body: JsonObject) -> int:
    width = body.get("width")
    if not isinstance(width, int) or isinstance(width, bool):
        return WXACODE_WIDTH_DEFAULT
    return min(max(width, WXACODE_WIDTH_MIN), WXACODE_WIDTH_MAX)


def _render_qr_png(data: str, width: int) -> bytes:
    code = qrcode.QRCode(border=2)
    code.add_data(data)
    image = code.make_image().get_image().resize((width, width), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

"""Fake WeCom (企业微信) server API (qyapi.weixin.qq.com).

OAuth codes are `sandbox:<userid>`; any other code is rejected with 40029.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, cast

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .base import create_base_app
from .control import CONTROL_PREFIX
from .state import CorpTagGroup, ExternalContact, JsonObject, WeComState
from .wecom_events import (
    CHANGE_TYPES,
    CallbackSigning,
    change_event_xml,
    deliver,
    external_userid_for,
    sign_callback,
)
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
JSAPI_TICKET_TTL_SECONDS = 7200
CONTACT_WAY_STATE_MAX_LENGTH = 30
# message/send's duplicate check: the default and longest interval, in seconds.
DUPLICATE_CHECK_INTERVAL_DEFAULT, DUPLICATE_CHECK_INTERVAL_MAX = 1800, 4 * 3600
CORP_TAG_NAME_MAX_LENGTH = 30
# What `externalcontact/get` reports as the contact type: 1 = a WeChat user.
WECHAT_USER = 1

credentials = Blueprint("wecom_credentials", __name__)
api = Blueprint("wecom_api", __name__)
api.before_request(require_access_token)
wecom_control = Blueprint("wecom_sandbox_control", __name__)


def create_wecom_app(
    state: WeComState,
    corp_id: str,
    secret: str,
    agent_id: str,
    *,
    callback: CallbackSigning | None = None,
) -> Flask:
    app = create_base_app(__name__, state, WECOM_DIALECT)
    app.config.update(
        SANDBOX_CORP_ID=corp_id,
        SANDBOX_SECRET=secret,
        SANDBOX_AGENT_ID=str(agent_id),
        SANDBOX_CALLBACK=callback or CallbackSigning("", ""),
    )
    app.register_blueprint(credentials)
    app.register_blueprint(api)
    app.register_blueprint(wecom_control, url_prefix=CONTROL_PREFIX)
    return app


def wecom_state() -> WeComState:
    return cast(WeComState, sandbox_state())


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
    # Real WeCom accepts the message for the users it knows (errcode 0) and names the rest.
    recipients = [userid for userid in text_field(body, "touser").split("|") if userid]
    invalid = [userid for userid in recipients if userid != "@all" and not wecom_state().user_exists(userid)]
    if (
        recipients
        and len(invalid) == len(recipients)
        and not (text_field(body, "toparty") or text_field(body, "totag"))
    ):
        raise WireError(81013, "user & party & tag all invalid")
    # With enable_duplicate_check, the same request body within the interval is answered as sent
    # and not delivered again.
    duplicate_check = _duplicate_check(body)
    if duplicate_check is not None:
        content, interval = duplicate_check
        seen = wecom_state().seen_message(content, interval)
        if seen is not None:
            return {
                "errcode": 0,
                "errmsg": "ok",
                "invaliduser": "",
                "invalidparty": "",
                "invalidtag": "",
                "msgid": seen,
            }
    # Real WeCom msgids are opaque strings.
    msgid = secrets.token_urlsafe(48)
    if duplicate_check is not None:
        wecom_state().remember_message(duplicate_check[0], msgid)
    recorded = {**body, "msgid": msgid}
    if invalid:
        recorded["touser"] = "|".join(userid for userid in recipients if userid not in invalid)
    sandbox_state().record_message(recorded)
    return {
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": "|".join(invalid),
        "invalidparty": "",
        "invalidtag": "",
        "msgid": msgid,
    }


def _duplicate_check(body: JsonObject) -> tuple[str, float] | None:
    """(the message's content, the interval) when the request asks for a duplicate check."""
    if body.get("enable_duplicate_check") != 1:
        return None
    interval = body.get("duplicate_check_interval", DUPLICATE_CHECK_INTERVAL_DEFAULT)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        interval = DUPLICATE_CHECK_INTERVAL_DEFAULT
    content = {key: value for key, value in body.items() if key != "duplicate_check_interval"}
    return json.dumps(content, sort_keys=True, ensure_ascii=False), min(
        interval, DUPLICATE_CHECK_INTERVAL_MAX
    )


@api.post("/cgi-bin/externalcontact/add_contact_way")
def add_contact_way() -> JsonObject:
    body = json_body()
    way_type, scene = body.get("type"), body.get("scene")
    if way_type not in (1, 2):
        raise WireError(40058, "invalid type")
    if scene not in (1, 2):
        raise WireError(40058, "invalid scene")
    users = body.get("user")
    if not isinstance(users, list) or not users or not all(isinstance(user, str) for user in users):
        raise WireError(40098, "user list missing")
    if way_type == 1 and len(users) != 1:
        raise WireError(40098, "single contact way takes exactly one user")
    unknown = [user for user in users if not wecom_state().user_exists(user)]
    if unknown:
        raise WireError(60111, f"userid not found: {unknown[0]}")
    state = body.get("state", "")
    if not isinstance(state, str) or len(state) > CONTACT_WAY_STATE_MAX_LENGTH:
        raise WireError(40058, "state exceeds 30 characters")
    config_id = wecom_state().add_contact_way(
        {"type": way_type, "scene": scene, "user": users, "state": state, "remark": body.get("remark", "")}
    )
    answer: JsonObject = {"errcode": 0, "errmsg": "ok", "config_id": config_id}
    if scene == 2:
        answer["qr_code"] = f"https://wework.qpic.cn/wwpic/{config_id}/0"
    return answer


@api.get("/cgi-bin/externalcontact/get")
def get_external_contact() -> JsonObject:
    external_userid = request.args.get("external_userid", "")
    if not external_userid.startswith(("wm", "wo")) or len(external_userid) > 64:
        raise WireError(40096, "invalid external userid")
    contact = wecom_state().external_contact(external_userid)
    if contact is None:
        raise WireError(84061, "not external contact")
    return {
        "errcode": 0,
        "errmsg": "ok",
        "external_contact": {
            "external_userid": contact.external_userid,
            "name": contact.name,
            "type": WECHAT_USER,
            "gender": 0,
            "unionid": contact.unionid,
        },
        "follow_user": [_follow_user_json(contact, userid) for userid in contact.follow_users],
    }


@api.post("/cgi-bin/externalcontact/get_corp_tag_list")
def get_corp_tag_list() -> JsonObject:
    body = json_body()
    wanted = body.get("tag_id") or []
    if not isinstance(wanted, list):
        raise WireError(47001, "data format error")
    groups = [_tag_group_json(group, set(wanted)) for group in wecom_state().tag_groups()]
    return {"errcode": 0, "errmsg": "ok", "tag_group": [group for group in groups if group["tag"]]}


@api.post("/cgi-bin/externalcontact/add_corp_tag")
def add_corp_tag() -> JsonObject:
    body = json_body()
    tags = body.get("tag")
    if not isinstance(tags, list) or not tags:
        raise WireError(40071, "tag list missing")
    for tag in tags:
        name = tag.get("name") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not name or len(name) > CORP_TAG_NAME_MAX_LENGTH:
            raise WireError(40071, "invalid tag name")
    group_id, group_name = text_field(body, "group_id"), text_field(body, "group_name")
    if not group_id and not group_name:
        raise WireError(40071, "group_name missing")
    order = body.get("order")
    order = order if isinstance(order, int) else 0
    group = wecom_state().add_tag_group(group_id or None, group_name, order, tags)
    return {"errcode": 0, "errmsg": "ok", "tag_group": _tag_group_json(group, set())}


@api.post("/cgi-bin/externalcontact/mark_tag")
def mark_tag() -> JsonObject:
    body = json_body()
    userid, external_userid = text_field(body, "userid"), text_field(body, "external_userid")
    add, remove = body.get("add_tag") or [], body.get("remove_tag") or []
    if not isinstance(add, list) or not isinstance(remove, list) or not (add or remove):
        raise WireError(40068, "invalid tagid")
    if not userid or not wecom_state().user_exists(userid):
        raise WireError(60111, "userid not found")
    if not external_userid.startswith(("wm", "wo")):
        raise WireError(40096, "invalid external userid")
    if not all(isinstance(tag, str) and wecom_state().tag_exists(tag) for tag in add + remove):
        raise WireError(40068, "invalid tagid")
    if not wecom_state().mark_tags(external_userid, userid, add, remove):
        raise WireError(84061, "not external contact")
    return {"errcode": 0, "errmsg": "ok"}


@api.get("/cgi-bin/get_jsapi_ticket")
def get_jsapi_ticket() -> JsonObject:
    return _ticket()


@api.get("/cgi-bin/ticket/get")
def get_agent_ticket() -> JsonObject:
    if request.args.get("type") != "agent_config":
        raise WireError(40097, "invalid ticket type")
    return _ticket()


def _ticket() -> JsonObject:
    return {
        "errcode": 0,
        "errmsg": "ok",
        "ticket": secrets.token_urlsafe(64),
        "expires_in": JSAPI_TICKET_TTL_SECONDS,
    }


def _follow_user_json(contact: ExternalContact, userid: str) -> JsonObject:
    follow_user = contact.follow_users[userid]
    tags_by_id = {
        tag_id: (group, name)
        for group in wecom_state().tag_groups()
        for tag_id, (name, _, _) in group.tags.items()
    }
    return {
        "userid": follow_user.userid,
        "remark": follow_user.remark,
        "description": follow_user.description,
        "createtime": follow_user.createtime,
        "state": follow_user.state,
        "tags": [
            {
                "group_name": tags_by_id[tag][0].group_name,
                "tag_name": tags_by_id[tag][1],
                "tag_id": tag,
                "type": 1,
            }
            for tag in follow_user.tags
            if tag in tags_by_id
        ],
    }


def _tag_group_json(group: CorpTagGroup, wanted: set[str]) -> JsonObject:
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "tag": [
            {"id": tag_id, "name": name, "create_time": created, "order": order}
            for tag_id, (name, order, created) in group.tags.items()
            if not wanted or tag_id in wanted
        ],
    }


# Control endpoints of the WeCom sandbox only: its directory, and callbacks to the app.


@wecom_control.post("/users")
def add_users() -> Response | tuple[Response, int]:
    """Body `{"users": {"advisor01": "导购小王", ...}}` (or a list of userids)."""
    body: Any = request.get_json(force=True, silent=True)
    users = body.get("users") if isinstance(body, dict) else None
    if isinstance(users, list) and all(isinstance(user, str) and user for user in users):
        users = {user: user for user in users}
    if (
        not isinstance(users, dict)
        or not users
        or not all(
            isinstance(userid, str) and userid and isinstance(name, str) for userid, name in users.items()
        )
    ):
        return jsonify({"ok": False, "error": "users must be a non-empty object of userid -> name"}), 400
    wecom_state().add_users(users)
    return jsonify({"ok": True})


@wecom_control.get("/users")
def list_users() -> Response:
    return jsonify({"users": wecom_state().users()})


@wecom_control.get("/duplicates")
def list_duplicates() -> Response:
    """Repeats of a message that message/send's duplicate check answered without delivering."""
    return jsonify({"duplicates": wecom_state().duplicates()})


@wecom_control.get("/contact-ways")
def list_contact_ways() -> Response:
    return jsonify({"contact_ways": wecom_state().contact_ways()})


@wecom_control.get("/external-contacts/<external_userid>")
def show_external_contact(external_userid: str) -> Response | tuple[Response, int]:
    contact = wecom_state().external_contact(external_userid)
    if contact is None:
        return jsonify({"ok": False, "error": "no such external contact"}), 404
    return jsonify(
        {
            "external_userid": contact.external_userid,
            "unionid": contact.unionid,
            "name": contact.name,
            "follow_user": [_follow_user_json(contact, userid) for userid in contact.follow_users],
        }
    )


@wecom_control.post("/events")
def emit_event() -> Response | tuple[Response, int]:
    """Change an external contact as a WeCom user would, and send the app the callback.

    Body: `change_type` (add_external_contact, edit_external_contact, del_external_contact,
    del_follow_user), `userid`, and `unionid` (or `external_userid`); optional `name`, `state`,
    `callback_url` (required to deliver), `deliver` (default true: POST it; false: only return it)
    and `timestamp` (to sign with, e.g. a stale one).
    """
    body: Any = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return _control_error("body must be a JSON object")
    change_type, userid = body.get("change_type"), body.get("userid")
    unionid, external_userid = body.get("unionid"), body.get("external_userid")
    name, state = body.get("name") or "", body.get("state") or ""
    callback_url, should_deliver = body.get("callback_url"), body.get("deliver", True)
    timestamp = body.get("timestamp")
    if change_type not in CHANGE_TYPES:
        return _control_error(f"change_type must be one of {', '.join(CHANGE_TYPES)}")
    if not isinstance(userid, str) or not wecom_state().user_exists(userid):
        return _control_error("userid must name a user of the directory")
    if not isinstance(name, str) or not isinstance(state, str) or len(state) > CONTACT_WAY_STATE_MAX_LENGTH:
        return _control_error("name and state must be strings (state up to 30 characters)")
    if timestamp is not None and not (isinstance(timestamp, int) and not isinstance(timestamp, bool)):
        return _control_error("timestamp must be an integer")
    if should_deliver and not (isinstance(callback_url, str) and callback_url.startswith("http")):
        return _control_error("callback_url must be an http(s) URL to deliver the event")
    corp_id = current_app.config["SANDBOX_CORP_ID"]
    if isinstance(unionid, str) and unionid:
        external_userid = external_userid_for(corp_id, unionid)
    if not isinstance(external_userid, str) or not external_userid:
        return _control_error("unionid (or external_userid) is required")

    if change_type == "add_external_contact":
        if not unionid:
            return _control_error("adding a contact needs its unionid")
        wecom_state().follow(
            ExternalContact(external_userid, unionid, name or f"微信用户{unionid[-4:]}"), userid, state
        )
    elif change_type == "edit_external_contact":
        if wecom_state().external_contact(external_userid) is None:
            return _control_error("no such external contact", 404)
        if name:
            wecom_state().rename_external_contact(external_userid, name)
    elif not wecom_state().unfollow(external_userid, userid):
        return _control_error("that user and contact are not related", 404)

    plaintext = change_event_xml(
        corp_id, change_type, userid, external_userid, state=state, created_at=int(time.time())
    )
    callback = sign_callback(
        current_app.config["SANDBOX_CALLBACK"],
        corp_id,
        current_app.config["SANDBOX_AGENT_ID"],
        callback_url if isinstance(callback_url, str) else "http://app.invalid/wecom/callback",
        plaintext,
        timestamp=timestamp,
    )
    answer: JsonObject = {"ok": True, "external_userid": external_userid, "callback": callback.to_json()}
    if should_deliver:
        try:
            answer["delivery"] = deliver(callback)
        except requests.RequestException as error:
            answer.update(ok=False, error=f"delivery failed: {error}")
            return jsonify(answer), 502
    return jsonify(answer)


def _control_error(error: str, status: int = 400) -> tuple[Response, int]:
    return jsonify({"ok": False, "error": error}), status


def _userid_from_code() -> str:
    code = request.args.get("code", "")
    userid = code.removeprefix(OAUTH_CODE_PREFIX)
    if not code.startswith(OAUTH_CODE_PREFIX) or not userid:
        raise WireError(40029, "invalid code")
    return userid

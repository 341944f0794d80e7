"""Callbacks the fake WeCom sends to the app: `change_external_contact` events, signed and
AES-encrypted exactly as WeCom does it (wechatpy's WeCom crypto), POSTed to the callback URL."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import requests
from wechatpy.enterprise.crypto import WeChatCrypto

from .state import JsonObject

DELIVERY_TIMEOUT_SECONDS = 5.0

CHANGE_TYPES = ("add_external_contact", "edit_external_contact", "del_external_contact", "del_follow_user")


@dataclass(frozen=True)
class CallbackSigning:
    token: str
    aes_key: str


@dataclass(frozen=True)
class SignedCallback:
    """One POST as WeCom would send it: the query string carries the signature."""

    url: str
    body: str

    def to_json(self) -> JsonObject:
        return {"url": self.url, "body": self.body}


def external_userid_for(corp_id: str, unionid: str) -> str:
    """WeCom gives one person the same external userid within a corp: derive it from the unionid."""
    return "wm" + hashlib.sha256(f"{corp_id}:{unionid}".encode()).hexdigest()[:30]


def change_event_xml(
    corp_id: str, change_type: str, userid: str, external_userid: str, *, state: str = "", created_at: int
) -> str:
    fields = {
        "ToUserName": corp_id,
        "FromUserName": "sys",
        "CreateTime": str(created_at),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": change_type,
        "UserID": userid,
        "ExternalUserID": external_userid,
    }
    if change_type == "add_external_contact":
        fields["State"] = state
        fields["WelcomeCode"] = secrets.token_urlsafe(24)
    return _xml(fields, numeric={"CreateTime"})


def sign_callback(
    signing: CallbackSigning,
    corp_id: str,
    agent_id: str,
    callback_url: str,
    plaintext: str,
    *,
    timestamp: int | None = None,
) -> SignedCallback:
    crypto = WeChatCrypto(signing.token, signing.aes_key, corp_id)
    nonce = secrets.token_hex(8)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    # wechatpy renders <Encrypt>, <MsgSignature>, ...; WeCom's POST body carries only the
    # ciphertext, with the signature in the query string.
    encrypted = crypto.encrypt_message(plaintext, nonce, stamp)
    encrypt = _between(encrypted, "<Encrypt><![CDATA[", "]]></Encrypt>")
    signature = _between(encrypted, "<MsgSignature><![CDATA[", "]]></MsgSignature>")
    body = _xml({"ToUserName": corp_id, "AgentID": agent_id, "Encrypt": encrypt})
    query = urlencode({"msg_signature": signature, "timestamp": stamp, "nonce": nonce})
    separator = "&" if "?" in callback_url else "?"
    return SignedCallback(url=f"{callback_url}{separator}{query}", body=body)


def deliver(callback: SignedCallback) -> JsonObject:
    """POST the callback like WeCom; what the app answered (WeCom expects "success" or an
    encrypted reply within 5 s)."""
    response = requests.post(
        callback.url,
        data=callback.body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=DELIVERY_TIMEOUT_SECONDS,
    )
    return {"status": response.status_code, "body": response.text}


def _xml(fields: dict[str, str], numeric: set[str] | None = None) -> str:
    parts = []
    for name, value in fields.items():
        cdata = value.replace("]]>", "]]]]><![CDATA[>")
        text = escape(value) if numeric and name in numeric else f"<![CDATA[{cdata}]]>"
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]

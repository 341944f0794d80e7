"""Callbacks from WeCom: signature check, AES decryption (wechatpy's WeCom crypto) and parsing.

wechatpy's `parse_message` knows neither `change_external_contact` nor `template_card_event`
(both come back as unknown events), so the decrypted XML is read here into plain fields, with any
DOCTYPE (and so any entity declaration) refused before the parser reads it: a callback never has
one, and that is how XML bombs (billion laughs) and external entities (XXE) work. xmltodict (pinned)
also refuses entity declarations itself (`disable_entities`, its default).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException, WeChatException

from app.errors import DomainError

# How far in the future a timestamp may be (clock skew) before it is refused.
CLOCK_SKEW_SECONDS = 60


# A bad signature, another corp's message, or ciphertext that is not what WeCom sends.
_UNDECRYPTABLE = (
    InvalidSignatureException,
    WeChatException,
    ValueError,
    IndexError,
    UnicodeDecodeError,
    struct.error,
)


class CallbackRejected(DomainError):
    code, status, message = "WECOM_CALLBACK_REJECTED", 403, "企业微信回调校验失败"


@dataclass(frozen=True)
class CallbackEvent:
    """A decrypted callback: its fields by XML element name, and a key its retries share."""

    # Element text by name; nested elements (a template card's SelectedItems) as dicts and lists.
    fields: dict[str, Any]

    @property
    def event_type(self) -> str:
        """`change_external_contact:add_external_contact`, `template_card_event`, `text`, ..."""
        msg_type = self._text("MsgType")
        if msg_type != "event":
            return msg_type
        event, change = self._text("Event"), self._text("ChangeType")
        return f"{event}:{change}" if change else event

    @property
    def key(self) -> str:
        """WeCom resends the same message when we are slow: same fields, so the same key."""
        msg_id = self._text("MsgId")
        if msg_id:
            return f"msg:{msg_id}"[:64]
        canonical = json.dumps(self.fields, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _text(self, name: str) -> str:
        value = self.fields.get(name)
        return value if isinstance(value, str) else ""


class CallbackCrypto:
    def __init__(self, *, token: str, aes_key: str, corp_id: str, max_age_seconds: int) -> None:
        self._crypto = WeChatCrypto(token, aes_key, corp_id)
        self._max_age = max_age_seconds

    def verify_url(self, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The decrypted `echostr` WeCom expects back when the callback URL is set up."""
        self._check_timestamp(timestamp)
        try:
            return str(self._crypto.check_signature(signature, timestamp, nonce, echostr))
        except _UNDECRYPTABLE as error:
            raise CallbackRejected() from error

    def decrypt(self, signature: str, timestamp: str, nonce: str, body: bytes) -> CallbackEvent:
        self._check_timestamp(timestamp)
        envelope = parse_xml(body)
        if not envelope.get("Encrypt"):
            raise CallbackRejected("回调内容格式错误")
        try:
            plaintext = self._crypto.decrypt_message(envelope, signature, timestamp, nonce)
        except _UNDECRYPTABLE as error:
            raise CallbackRejected() from error
        return CallbackEvent(parse_xml(plaintext))

    def _check_timestamp(self, timestamp: str) -> None:
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise CallbackRejected() from None
        now = time.time()
        if sent_at < now - self._max_age or sent_at > now + CLOCK_SKEW_SECONDS:
            raise CallbackRejected("回调已过期")


class _DoctypeRefused(ValueError):
    pass


def _refuse_doctype(*_args: Any) -> None:
    raise _DoctypeRefused("a DOCTYPE is refused")


class _ExpatWithoutDoctypes:
    """The `expat` module as xmltodict uses it, whose parsers stop at a DOCTYPE, before its first entity."""

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        return parser


def parse_xml(document: bytes | str) -> dict[str, Any]:
    """The children of `<xml>`: text by element name, nested elements as dicts (lists if repeated).
    A document with a DOCTYPE is refused unread, whatever it declares."""
    try:
        parsed: Any = xmltodict.parse(document, expat=_ExpatWithoutDoctypes, disable_entities=True)
    except (ExpatError, ValueError) as error:  # ValueError: a DOCTYPE, or an entity xmltodict refused
        raise CallbackRejected("回调内容格式错误") from error
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict):
        raise CallbackRejected("回调内容格式错误")
    # An empty element (<State></State>) parses as None; attributes ("@...") carry nothing we use.
    return {name: "" if value is None else value for name, value in root.items() if not name.startswith("@")}

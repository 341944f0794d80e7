"""WeCom (企业微信) server API, through `wechatpy.enterprise`, with the base host from config."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from wechatpy.enterprise import WeChatClient as WeComApiClient
from wechatpy.session import SessionStorage

from app.integrations.wechat_client import WeChatUnavailable, WeComUnavailable, call_with_token_retry
from app.metrics import token_refreshed
from app.request_ids import propagate_request_id

T = TypeVar("T")

# externalcontact/get: "not an external contact (any more)" and "no such external userid".
_NO_SUCH_CONTACT_ERRCODES = frozenset({84061, 40096})
# message/send's duplicate check window: WeCom's longest, 4 hours, longer than the outbox retries a
# message (app.services.push).
DUPLICATE_CHECK_SECONDS = 4 * 3600
# add_contact_way: type 1 = one advisor, scene 2 = a QR code.
_SINGLE_USER, _QR_CODE = 1, 2


@dataclass(frozen=True)
class JsApiSignature:
    """What a page passes to `wx.config` (corp ticket) or `wx.agentConfig` (agent ticket)."""

    timestamp: int
    nonce_str: str
    signature: str


@dataclass(frozen=True)
class ContactWay:
    config_id: str
    qr_code: str | None


@dataclass(frozen=True)
class ExternalContactDetails:
    """What `externalcontact/get` says about a shopper, and the states of the corp users they added."""

    external_userid: str
    name: str
    unionid: str | None
    # userid -> the contact way `state` through which the shopper added them
    follow_states: dict[str, str]


class _ConfiguredHostClient(WeComApiClient):
    def __init__(self, corp_id: str, secret: str, api_base: str, storage: SessionStorage, timeout: int):
        super().__init__(corp_id, secret, session=storage, timeout=timeout, auto_retry=False)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"
        propagate_request_id(self._http)

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=f"{self.api_base}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        token_refreshed("wecom")
        return result


class WeComClient:
    """What MallMember needs from WeCom: who is this staff member, and message them."""

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        agent_id: str,
        api_base: str,
        storage: SessionStorage,
        timeout: int,
        token_retries: int,
    ) -> None:
        self.agent_id = agent_id
        self._client = _ConfiguredHostClient(corp_id, secret, api_base, storage, timeout)
        self._retries = token_retries

    def _call(self, call: Callable[[], T]) -> T:
        return call_with_token_retry(self._client, call, self._retries, "WeCom", WeComUnavailable)

    def userid_from_oauth_code(self, code: str) -> str | None:
        """The WeCom userid behind an OAuth code; None for people outside the corp."""
        result = self._call(lambda: self._client.get("auth/getuserinfo", params={"code": code}))
        userid = result.get("userid") or result.get("UserId")
        return str(userid) if userid else None

    def add_contact_way(self, userid: str, state: str) -> ContactWay:
        """A 联系我 QR code for one corp user; `state` comes back on every contact added through it."""
        result = self._call(
            lambda: self._client.external_contact.add_contact_way(
                _SINGLE_USER, _QR_CODE, state=state, user=[userid]
            )
        )
        return ContactWay(config_id=str(result["config_id"]), qr_code=result.get("qr_code"))

    def external_contact(self, external_userid: str) -> ExternalContactDetails | None:
        """The external contact, or None when WeCom no longer knows them as one."""
        try:
            result = self._call(lambda: self._client.external_contact.get(external_userid))
        except WeChatUnavailable as error:
            if (error.details or {}).get("errcode") in _NO_SUCH_CONTACT_ERRCODES:
                return None
            raise
        contact = result.get("external_contact") or {}
        return ExternalContactDetails(
            external_userid=str(contact.get("external_userid") or external_userid),
            name=str(contact.get("name") or ""),
            unionid=contact.get("unionid") or None,
            follow_states={
                str(user["userid"]): str(user.get("state") or "")
                for user in result.get("follow_user") or []
                if user.get("userid")
            },
        )

    def send_message(self, userids: list[str], message: dict[str, Any]) -> dict[str, Any]:
        """`message/send` of one message (`msgtype` and its object) to `userids`; WeCom's answer, whose
        `invaliduser` names the recipients it did not know (errcode 0: the others got it).

        With WeCom's duplicate check: the same message sent again within DUPLICATE_CHECK_SECONDS (after
        a timeout or a lost answer, say) is answered as sent and not delivered twice."""
        checked = {
            **message,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": DUPLICATE_CHECK_SECONDS,
        }
        return self._call(lambda: self._client.message.send(self.agent_id, userids, msg=checked))

    def jsapi_signatures(self, url: str) -> tuple[JsApiSignature, JsApiSignature]:
        """Signatures of `url` (without its #fragment) for `wx.config` and `wx.agentConfig`; both
        tickets are cached in the token storage until they expire, as wechatpy does for tokens."""
        page_url = url.split("#", 1)[0]
        jsapi = self._client.jsapi
        corp_ticket = self._call(jsapi.get_jsapi_ticket)
        agent_ticket = self._call(jsapi.get_agent_jsapi_ticket)

        def signed(ticket: str) -> JsApiSignature:
            timestamp, nonce = int(time.time()), secrets.token_hex(8)
            return JsApiSignature(
                timestamp, nonce, jsapi.get_jsapi_signature(nonce, ticket, timestamp, page_url)
            )

        return signed(corp_ticket), signed(agent_ticket)

    def corp_tag_id(self, group_name: str, tag_name: str) -> str:
        """The id of customer tag `tag_name` in group `group_name`, adding it (and the group) if missing."""
        contact = self._client.external_contact
        for group in self._call(contact.get_corp_tag_list).get("tag_group") or []:
            if group.get("group_name") != group_name:
                continue
            for tag in group.get("tag") or []:
                if tag.get("name") == tag_name:
                    return str(tag["id"])
        added = self._call(lambda: contact.add_corp_tag(None, group_name, 0, [{"name": tag_name}]))
        for tag in (added.get("tag_group") or {}).get("tag") or []:
            if tag.get("name") == tag_name:
                return str(tag["id"])
        raise WeComUnavailable(details={"answer": added})

    def mark_tag(self, userid: str, external_userid: str, *, add: list[str], remove: list[str]) -> None:
        """Put customer tags on (or take them off) an advisor's external contact."""
        self._call(
            lambda: self._client.external_contact.mark_tag(
                userid, external_userid, add_tag=add or None, remove_tag=remove or None
            )
        )

    def send_text(self, userids: list[str], content: str) -> dict[str, Any]:
        return self._call(lambda: self._client.message.send_text(self.agent_id, userids, content))

    def send_markdown(self, userids: list[str], content: str) -> dict[str, Any]:
        return self._call(lambda: self._client.message.send_markdown(self.agent_id, userids, content))

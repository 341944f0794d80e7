"""WeCom (企业微信) server API, through `wechatpy.enterprise`, with the base host from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from wechatpy.enterprise import WeChatClient as WeComApiClient
from wechatpy.session import SessionStorage

from app.integrations.wechat_client import call_with_token_retry

T = TypeVar("T")


class _ConfiguredHostClient(WeComApiClient):
    def __init__(self, corp_id: str, secret: str, api_base: str, storage: SessionStorage, timeout: int):
        super().__init__(corp_id, secret, session=storage, timeout=timeout, auto_retry=False)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=f"{self.api_base}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


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
        return call_with_token_retry(self._client, call, self._retries, "WeCom")

    def userid_from_oauth_code(self, code: str) -> str | None:
        """The WeCom userid behind an OAuth code; None for people outside the corp."""
        result = self._call(lambda: self._client.get("auth/getuserinfo", params={"code": code}))
        userid = result.get("userid") or result.get("UserId")
        return str(userid) if userid else None

    def send_text(self, userids: list[str], content: str) -> dict[str, Any]:
        return self._call(lambda: self._client.message.send_text(self.agent_id, userids, content))

    def send_markdown(self, userids: list[str], content: str) -> dict[str, Any]:
        return self._call(lambda: self._client.message.send_markdown(self.agent_id, userids, content))

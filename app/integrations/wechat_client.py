"""WeChat mini-program server API, through wechatpy, with the base host from config.

wechatpy 1.8 pitfalls handled here:
- `code_to_session` sends our access_token to `jscode2session`, which needs none;
  we call it without one.
- There is no helper for `wxa/business/getuserphonenumber`.
- `auto_retry` recurses without bound on token errors; it is off, and
  `_call` refreshes the token and retries a bounded number of times.
- The token URL is hard-coded to api.weixin.qq.com; we fetch a *stable* token
  from the configured host instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from app.errors import DependencyUnavailable, DomainError
from app.metrics import dependency_error, token_refreshed
from app.request_ids import propagate_request_id

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "our access token is stale": refresh it and try again.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# 45009 daily quota, 45011 per-minute quota, 45033 too many concurrent calls.
RATE_LIMIT_ERRCODES = frozenset({45009, 45011, 45033})
# The code a client gave us is wrong, used or expired: the caller's fault, not WeChat's.
CODE_ERRCODES = frozenset({40029, 40163, 40226})


class WeChatRateLimited(DomainError):
    code, status, message = "WECHAT_RATE_LIMITED", 503, "微信服务繁忙，请稍后再试"


class WeChatUnavailable(DependencyUnavailable):
    message = "微信服务暂时不可用，请稍后再试"
    dependency = "wechat"


class WeComUnavailable(WeChatUnavailable):
    message = "企业微信服务暂时不可用，请稍后再试"
    dependency = "wecom"


class WeChatCodeRejected(Exception):
    """WeChat refused a one-time code (login, phone); services decide what that means."""

    def __init__(self, errcode: int) -> None:
        super().__init__(f"WeChat rejected the code (errcode {errcode})")
        self.errcode = errcode


@dataclass(frozen=True)
class WeChatSession:
    openid: str
    unionid: str | None


def call_with_token_retry(
    client: Any,
    call: Callable[[], T],
    retries: int,
    service: str,
    unavailable: type[WeChatUnavailable] = WeChatUnavailable,
) -> T:
    """Run one wechatpy call, translating its failures into our errors.

    A stale token (40001, 40014, 42001) is refreshed and the call retried, at most `retries` times: a
    token WeChat keeps refusing is `unavailable`, never a loop. A token endpoint that fails is too.
    Shared by the mini-program and WeCom clients: both speak errcode/errmsg.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except WeChatClientException as exc:
            errcode = _errcode(exc)
            response = getattr(exc, "response", None)
            status = getattr(response, "status_code", None)
            dependency_error(service.lower(), errcode if errcode is not None else f"http_{status}")
            if errcode in TOKEN_ERRCODES and attempt < retries:
                log.info("%s access token rejected (errcode %s), refreshing", service, errcode)
                _refresh_token(client, service, unavailable)
                continue
            if errcode in CODE_ERRCODES:
                raise WeChatCodeRejected(errcode) from exc
            if errcode in RATE_LIMIT_ERRCODES:
                raise WeChatRateLimited() from exc
            log.warning("%s API error errcode=%s errmsg=%s", service, errcode, exc.errmsg)
            raise unavailable(details={"errcode": errcode}) from exc
        except requests.RequestException as exc:
            dependency_error(service.lower(), network_error_code(exc))
            log.warning("%s unreachable: %s", service, type(exc).__name__)
            raise unavailable() from exc
    raise AssertionError("unreachable")


def network_error_code(exc: requests.RequestException) -> str:
    """The `code` label of a call that got no usable answer, for the dependency error counter."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"http_{exc.response.status_code}"
    return "timeout" if isinstance(exc, requests.Timeout) else "connection"


def _refresh_token(client: Any, service: str, unavailable: type[WeChatUnavailable]) -> None:
    try:
        client.fetch_access_token()
    except WeChatClientException as exc:
        errcode = _errcode(exc)
        log.warning("%s token endpoint refused: errcode=%s", service, errcode)
        if errcode in RATE_LIMIT_ERRCODES:
            raise WeChatRateLimited() from exc
        raise unavailable(details={"errcode": errcode}) from exc
    except requests.RequestException as exc:
        log.warning("%s token endpoint unreachable: %s", service, type(exc).__name__)
        raise unavailable() from exc


def _errcode(exc: WeChatClientException) -> int | None:
    try:
        return int(exc.errcode)
    except (TypeError, ValueError):
        return None


def _json_result(client: WeChatClient, response: requests.Response) -> dict[str, Any]:
    """The JSON answer of a call made without wechatpy's `_request`, failing as wechatpy's own calls
    do: an HTTP error (a gateway's HTML page) or an answer that is not a JSON object is a failed call."""
    if not response.ok:
        raise WeChatClientException(None, None, client=client, request=response.request, response=response)
    result = client._handle_result(response)
    if not isinstance(result, dict):
        raise WeChatClientException(None, "not a JSON answer", client=client, response=response)
    return result


class _ConfiguredHostClient(WeChatClient):
    def __init__(self, appid: str, secret: str, api_base: str, storage: SessionStorage, timeout: int):
        super().__init__(appid, secret, session=storage, timeout=timeout, auto_retry=False)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"
        self.wxa.API_BASE_URL = f"{self.api_base}/"
        propagate_request_id(self._http)

    def fetch_access_token(self) -> dict[str, Any]:
        response = self._http.post(
            f"{self.api_base}/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        result = _json_result(self, response)
        if not result.get("access_token"):
            raise WeChatClientException(None, "no access_token", client=self, response=response)
        expires_in = int(result.get("expires_in", 7200))
        self.session.set(self.access_token_key, result["access_token"], expires_in)
        self.expires_at = int(time.time()) + expires_in
        token_refreshed("wechat")
        return result


class MiniProgramClient:
    """What MallMember needs from the WeChat mini-program server API."""

    def __init__(
        self,
        *,
        appid: str,
        secret: str,
        api_base: str,
        storage: SessionStorage,
        timeout: int,
        token_retries: int,
    ) -> None:
        self.appid = appid
        self._client = _ConfiguredHostClient(appid, secret, api_base, storage, timeout)
        self._retries = token_retries

    def _call(self, call: Callable[[], T]) -> T:
        return call_with_token_retry(self._client, call, self._retries, "WeChat")

    def code_to_session(self, js_code: str) -> WeChatSession:
        """Exchange a wx.login() code for the openid. The session_key is dropped on purpose."""
        client = self._client

        def call() -> dict[str, Any]:
            response = client._http.get(
                f"{client.api_base}/sns/jscode2session",
                params={
                    "appid": client.appid,
                    "secret": client.secret,
                    "js_code": js_code,
                    "grant_type": "authorization_code",
                },
                timeout=client.timeout,
            )
            return _json_result(client, response)

        result = self._call(call)
        return WeChatSession(openid=result["openid"], unionid=result.get("unionid"))

    def get_phone_number(self, phone_code: str) -> str:
        """The phone the shopper authorised with the phone-number button (no country code)."""
        result = self._call(
            lambda: self._client.wxa._post("wxa/business/getuserphonenumber", data={"code": phone_code})
        )
        return str(result["phone_info"]["purePhoneNumber"])

    def get_unlimited_wxa_code(self, scene: str, page: str, *, width: int = 430) -> bytes:
        """A mini-program code image (PNG/JPEG bytes) that opens `page` with `scene`."""
        result = self._call(lambda: self._client.wxa.get_wxa_code_unlimited(scene, width=width, page=page))
        if isinstance(result, dict):  # wechatpy hands back JSON only on errors it did not raise
            dependency_error("wechat", result.get("errcode"))
            raise WeChatUnavailable(details=result)
        return bytes(result.content)

    def send_subscribe_message(
        self, openid: str, template_id: str, data: dict[str, Any], page: str | None = None
    ) -> None:
        self._call(lambda: self._client.wxa.send_subscribe_message(openid, template_id, data, page))

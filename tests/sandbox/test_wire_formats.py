"""The sandbox speaks the WeChat and WeCom wire formats, over HTTP and to wechatpy."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import APILimitedException, WeChatClientException

from app.sandbox import SandboxProcess, start_sandbox_process

RID = re.compile(r", rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


class SandboxWeChatClient(WeChatClient):  # type: ignore[misc]
    """A wechatpy mini-program client with every URL pointed at the sandbox."""

    def __init__(self, sandbox: SandboxProcess, **kwargs: Any) -> None:
        credentials = sandbox.credentials
        super().__init__(credentials.wechat_appid, credentials.wechat_secret, **kwargs)
        self.sandbox_url = sandbox.wechat_url
        self.API_BASE_URL = f"{self.sandbox_url}/cgi-bin/"
        # WeChatWxa carries its own hard-coded base URL.
        self.wxa.API_BASE_URL = f"{self.sandbox_url}/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(  # type: ignore[no-any-return]
            url=f"{self.sandbox_url}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
            },
        )


class SandboxWeComClient(WeComClient):  # type: ignore[misc]
    """A wechatpy WeCom client with every URL pointed at the sandbox."""

    def __init__(self, sandbox: SandboxProcess, **kwargs: Any) -> None:
        credentials = sandbox.credentials
        super().__init__(credentials.wecom_corp_id, credentials.wecom_secret, **kwargs)
        self.sandbox_url = sandbox.wecom_url
        self.API_BASE_URL = f"{self.sandbox_url}/cgi-bin/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(  # type: ignore[no-any-return]
            url=f"{self.sandbox_url}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox_process() as process:
        yield process


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.reset()


@pytest.fixture
def wechat(sandbox: SandboxProcess) -> SandboxWeChatClient:
    return SandboxWeChatClient(sandbox)


@pytest.fixture
def wecom(sandbox: SandboxProcess) -> SandboxWeComClient:
    return SandboxWeComClient(sandbox)


def wechat_token(sandbox: SandboxProcess) -> str:
    credentials = sandbox.credentials
    response = requests.get(
        f"{sandbox.wechat_url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": credentials.wechat_appid,
            "secret": credentials.wechat_secret,
        },
        timeout=5,
    )
    token: str = response.json()["access_token"]
    return token


def wecom_token(sandbox: SandboxProcess) -> str:
    credentials = sandbox.credentials
    response = requests.get(
        f"{sandbox.wecom_url}/cgi-bin/gettoken",
        params={"corpid": credentials.wecom_corp_id, "corpsecret": credentials.wecom_secret},
        timeout=5,
    )
    token: str = response.json()["access_token"]
    return token


def post_json(url: str, token: str, body: Any) -> requests.Response:
    return requests.post(url, params={"access_token": token}, json=body, timeout=5)


# WeChat: access tokens


def test_token_is_issued_for_the_configured_app(sandbox: SandboxProcess) -> None:
    credentials = sandbox.credentials
    response = requests.get(
        f"{sandbox.wechat_url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": credentials.wechat_appid,
            "secret": credentials.wechat_secret,
        },
        timeout=5,
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == 7200


@pytest.mark.parametrize(
    ("overrides", "errcode", "errmsg"),
    [
        ({"secret": "wrong"}, 40125, "invalid appsecret"),
        ({"appid": "wx-someone-else"}, 40013, "invalid appid"),
        ({"grant_type": "password"}, 40002, "invalid grant_type"),
    ],
)
def test_token_rejects_bad_credentials(
    sandbox: SandboxProcess, overrides: dict[str, str], errcode: int, errmsg: str
) -> None:
    credentials = sandbox.credentials
    params = {
        "grant_type": "client_credential",
        "appid": credentials.wechat_appid,
        "secret": credentials.wechat_secret,
        **overrides,
    }
    response = requests.get(f"{sandbox.wechat_url}/cgi-bin/token", params=params, timeout=5)

    assert response.status_code == 200
    body = response.json()
    assert body["errcode"] == errcode
    assert body["errmsg"].startswith(f"{errmsg}, rid: ")
    assert RID.search(body["errmsg"])


def test_wechatpy_raises_on_a_bad_secret(sandbox: SandboxProcess) -> None:
    client = SandboxWeChatClient(sandbox)
    client.secret = "wrong"

    with pytest.raises(WeChatClientException) as raised:
        client.fetch_access_token()

    assert raised.value.errcode == 40125


def test_stable_token_is_reused_until_force_refresh(sandbox: SandboxProcess) -> None:
    credentials = sandbox.credentials
    request = {
        "grant_type": "client_credential",
        "appid": credentials.wechat_appid,
        "secret": credentials.wechat_secret,
    }
    url = f"{sandbox.wechat_url}/cgi-bin/stable_token"

    first = requests.post(url, json=request, timeout=5).json()
    again = requests.post(url, json=request, timeout=5).json()
    forced = requests.post(url, json={**request, "force_refresh": True}, timeout=5).json()

    assert again["access_token"] == first["access_token"]
    assert forced["access_token"] != first["access_token"]
    assert forced["expires_in"] == 7200


def test_missing_token_is_41001(sandbox: SandboxProcess) -> None:
    response = requests.post(
        f"{sandbox.wechat_url}/wxa/business/getuserphonenumber",
        json={"code": "sandbox-phone:13800138000"},
        timeout=5,
    )

    assert response.json()["errcode"] == 41001


def test_unknown_token_is_40001(sandbox: SandboxProcess) -> None:
    response = post_json(
        f"{sandbox.wechat_url}/wxa/business/getuserphonenumber",
        "not-a-token",
        {"code": "sandbox-phone:13800138000"},
    )

    assert response.json()["errcode"] == 40001


def test_expired_tokens_get_42001_until_a_fresh_one_is_fetched(
    sandbox: SandboxProcess,
) -> None:
    url = f"{sandbox.wechat_url}/wxa/business/getuserphonenumber"
    body = {"code": "sandbox-phone:13800138000"}
    stale = wechat_token(sandbox)
    sandbox.expire_tokens("wechat")

    assert post_json(url, stale, body).json()["errcode"] == 42001
    assert post_json(url, wechat_token(sandbox), body).json()["errcode"] == 0


def test_wechatpy_recovers_from_expired_tokens(sandbox: SandboxProcess, wechat: SandboxWeChatClient) -> None:
    wechat.wxa.send_subscribe_message("o-1", "tpl", {"thing1": {"value": "a"}})
    sandbox.expire_tokens("wechat")

    wechat.wxa.send_subscribe_message("o-1", "tpl", {"thing1": {"value": "b"}})

    token_requests = [r for r in sandbox.requests("wechat") if r["path"] == "/cgi-bin/token"]
    assert len(token_requests) == 2
    assert len(sandbox.messages("wechat")) == 2


# WeChat: login and phone number


def test_jscode2session_returns_the_openid_without_an_access_token(
    sandbox: SandboxProcess,
) -> None:
    credentials = sandbox.credentials
    response = requests.get(
        f"{sandbox.wechat_url}/sns/jscode2session",
        params={
            "appid": credentials.wechat_appid,
            "secret": credentials.wechat_secret,
            "js_code": "sandbox:o-alice",
            "grant_type": "authorization_code",
        },
        timeout=5,
    )

    body = response.json()
    assert body["openid"] == "o-alice"
    assert body["unionid"] == "sandbox-union-o-alice"
    assert len(base64.b64decode(body["session_key"])) == 16
    assert "errcode" not in body
    [logged] = sandbox.requests("wechat")
    assert logged["path"] == "/sns/jscode2session"
    assert "access_token" not in logged["query"]


def test_jscode2session_rejects_other_codes(wechat: SandboxWeChatClient) -> None:
    with pytest.raises(WeChatClientException) as raised:
        wechat.wxa.code_to_session("081abcd")

    assert raised.value.errcode == 40029
    assert raised.value.errmsg.startswith("invalid code, rid: ")


def test_phone_number_is_read_from_the_code(wechat: SandboxWeChatClient) -> None:
    result = wechat.wxa._post("wxa/business/getuserphonenumber", data={"code": "sandbox-phone:13800138000"})

    phone_info = result["phone_info"]
    assert result["errcode"] == 0
    assert phone_info["phoneNumber"] == phone_info["purePhoneNumber"] == "13800138000"
    assert phone_info["countryCode"] == "86"
    assert phone_info["watermark"]["appid"] == wechat.appid


@pytest.mark.parametrize("code", ["sandbox-phone:1380013800", "sandbox:o-alice", ""])
def test_phone_number_rejects_other_codes(wechat: SandboxWeChatClient, code: str) -> None:
    with pytest.raises(WeChatClientException) as raised:
        wechat.wxa._post("wxa/business/getuserphonenumber", data={"code": code})

    assert raised.value.errcode == 40029


# WeChat: mini-program codes


def test_wxa_code_is_a_png(wechat: SandboxWeChatClient) -> None:
    response = wechat.wxa.get_wxa_code_unlimited("m=42&s=1", width=300, page="pages/signup/index")

    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(response.content)).size == (300, 300)


@pytest.mark.parametrize("scene", ["x" * 33, "", "空格 not allowed"])
def test_wxa_code_rejects_bad_scenes(wechat: SandboxWeChatClient, scene: str) -> None:
    with pytest.raises(WeChatClientException) as raised:
        wechat.wxa.get_wxa_code_unlimited(scene)

    assert raised.value.errcode == 40169


def test_non_json_body_is_47001(sandbox: SandboxProcess) -> None:
    response = requests.post(
        f"{sandbox.wechat_url}/wxa/getwxacodeunlimit",
        params={"access_token": wechat_token(sandbox)},
        data=b"scene=1",
        timeout=5,
    )

    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["errcode"] == 47001


# WeChat: subscribe messages


def test_subscribe_message_lands_in_the_outbox(sandbox: SandboxProcess, wechat: SandboxWeChatClient) -> None:
    data = {"thing1": {"value": "Gold member"}, "time2": {"value": "2024-05-01 10:00"}}

    result = wechat.wxa.send_subscribe_message("o-alice", "tpl-1", data, page="pages/me")

    assert result["errcode"] == 0
    assert isinstance(result["msgid"], int)
    assert sandbox.messages("wechat") == [
        {
            "touser": "o-alice",
            "template_id": "tpl-1",
            "page": "pages/me",
            "data": data,
            "msgid": result["msgid"],
        }
    ]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"template_id": "tpl-1", "data": {"a": {"value": "1"}}}, 40003),
        ({"touser": "o-1", "data": {"a": {"value": "1"}}}, 40037),
        ({"touser": "o-1", "template_id": "tpl-1", "data": "a=1"}, 47003),
        ({"touser": "o-1", "template_id": "tpl-1", "data": {"a": "1"}}, 47003),
    ],
)
def test_subscribe_message_validates_its_body(
    sandbox: SandboxProcess, body: dict[str, Any], errcode: int
) -> None:
    response = post_json(f"{sandbox.wechat_url}/cgi-bin/message/subscribe/send", wechat_token(sandbox), body)

    assert response.json()["errcode"] == errcode
    assert sandbox.messages("wechat") == []


# Faults


def test_injected_fault_fires_once_then_clears(sandbox: SandboxProcess, wechat: SandboxWeChatClient) -> None:
    data = {"thing1": {"value": "a"}}
    sandbox.inject_fault("wechat", "/cgi-bin/message/subscribe/send", 45009)

    with pytest.raises(APILimitedException) as raised:
        wechat.wxa.send_subscribe_message("o-1", "tpl", data)
    result = wechat.wxa.send_subscribe_message("o-1", "tpl", data)

    assert raised.value.errcode == 45009
    assert raised.value.errmsg.startswith("reach max api daily quota limit, rid: ")
    assert result["errcode"] == 0


def test_faults_fire_before_the_token_check(sandbox: SandboxProcess) -> None:
    sandbox.inject_fault("wecom", "cgi-bin/message/send", 60020, "not allow to access", times=2)
    url = f"{sandbox.wecom_url}/cgi-bin/message/send"

    codes = [requests.post(url, json={}, timeout=5).json()["errcode"] for _ in range(3)]

    assert codes == [60020, 60020, 41001]


# WeCom


def test_wecom_token_is_issued_for_the_configured_corp(sandbox: SandboxProcess) -> None:
    credentials = sandbox.credentials
    response = requests.get(
        f"{sandbox.wecom_url}/cgi-bin/gettoken",
        params={"corpid": credentials.wecom_corp_id, "corpsecret": credentials.wecom_secret},
        timeout=5,
    )

    body = response.json()
    assert body["errcode"] == 0
    assert body["errmsg"] == "ok"
    assert body["expires_in"] == 7200
    assert body["access_token"]


@pytest.mark.parametrize(
    ("overrides", "errcode"), [({"corpsecret": "wrong"}, 40001), ({"corpid": "ww-other"}, 40013)]
)
def test_wecom_token_rejects_bad_credentials(
    sandbox: SandboxProcess, overrides: dict[str, str], errcode: int
) -> None:
    credentials = sandbox.credentials
    params = {
        "corpid": credentials.wecom_corp_id,
        "corpsecret": credentials.wecom_secret,
        **overrides,
    }
    response = requests.get(f"{sandbox.wecom_url}/cgi-bin/gettoken", params=params, timeout=5)

    assert response.json()["errcode"] == errcode


def test_wecom_rejects_wechat_tokens(sandbox: SandboxProcess) -> None:
    response = requests.get(
        f"{sandbox.wecom_url}/cgi-bin/auth/getuserinfo",
        params={"access_token": wechat_token(sandbox), "code": "sandbox:zhangsan"},
        timeout=5,
    )

    assert response.json()["errcode"] == 40014


def test_wecom_oauth_code_resolves_to_the_userid(sandbox: SandboxProcess) -> None:
    response = requests.get(
        f"{sandbox.wecom_url}/cgi-bin/auth/getuserinfo",
        params={"access_token": wecom_token(sandbox), "code": "sandbox:zhangsan"},
        timeout=5,
    )

    body = response.json()
    assert body["errcode"] == 0
    assert body["userid"] == "zhangsan"
    assert body["user_ticket"]
    assert body["expires_in"] == 1800


def test_wechatpy_wecom_oauth_uses_the_legacy_path(wecom: SandboxWeComClient) -> None:
    assert wecom.oauth.get_user_info("sandbox:zhangsan")["UserId"] == "zhangsan"

    with pytest.raises(WeChatClientException) as raised:
        wecom.oauth.get_user_info("expired-code")
    assert raised.value.errcode == 40029


def test_wecom_message_lands_in_the_outbox(sandbox: SandboxProcess, wecom: SandboxWeComClient) -> None:
    agent_id = sandbox.credentials.wecom_agent_id

    result = wecom.message.send_text(int(agent_id), ["zhangsan", "lisi"], "New member joined")

    assert result["errcode"] == 0
    assert result["invaliduser"] == ""
    [message] = sandbox.messages("wecom")
    assert message["touser"] == "zhangsan|lisi"
    assert message["text"] == {"content": "New member joined"}
    assert message["msgid"] == result["msgid"]


@pytest.mark.parametrize(
    ("changes", "errcode"),
    [
        ({"agentid": 1}, 40056),
        ({"msgtype": "markdown"}, 40008),
        ({"touser": "", "toparty": "", "totag": ""}, 81013),
    ],
)
def test_wecom_message_validates_its_body(
    sandbox: SandboxProcess, changes: dict[str, Any], errcode: int
) -> None:
    body = {
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": sandbox.credentials.wecom_agent_id,
        "text": {"content": "hi"},
        **changes,
    }

    response = post_json(f"{sandbox.wecom_url}/cgi-bin/message/send", wecom_token(sandbox), body)

    result = response.json()
    assert result["errcode"] == errcode
    assert result["errmsg"].endswith(
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )
    assert sandbox.messages("wecom") == []


# Both servers


def test_unknown_paths_are_404(sandbox: SandboxProcess) -> None:
    response = requests.get(f"{sandbox.wecom_url}/cgi-bin/nope", timeout=5)

    assert response.status_code == 404
    assert response.json()["errcode"] == 404


def test_requests_are_logged_but_control_calls_are_not(sandbox: SandboxProcess) -> None:
    post_json(f"{sandbox.wecom_url}/cgi-bin/message/send", "tok", {"touser": "zhangsan"})
    sandbox.messages("wecom")

    [logged] = sandbox.requests("wecom")
    assert logged["method"] == "POST"
    assert logged["path"] == "/cgi-bin/message/send"
    assert logged["query"] == {"access_token": "tok"}
    assert logged["json"] == {"touser": "zhangsan"}
    assert isinstance(logged["at"], float)

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
from wechatpy.enterprise.crypto import WeChatCrypto
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


def test_wecom_message_names_users_outside_the_directory_in_invaliduser(
    sandbox: SandboxProcess, wecom: SandboxWeComClient
) -> None:
    sandbox.add_wecom_users({"zhangsan": "张三"})

    result = wecom.message.send_text(int(sandbox.credentials.wecom_agent_id), ["zhangsan", "ghost"], "hi")

    # A partial failure: errcode 0, and the message still goes to the users WeCom knows.
    assert (result["errcode"], result["invaliduser"]) == (0, "ghost")
    [message] = sandbox.messages("wecom")
    assert message["touser"] == "zhangsan"


def test_wecom_message_to_nobody_known_fails(sandbox: SandboxProcess, wecom: SandboxWeComClient) -> None:
    sandbox.add_wecom_users({"zhangsan": "张三"})

    with pytest.raises(WeChatClientException) as raised:
        wecom.message.send_text(int(sandbox.credentials.wecom_agent_id), ["ghost"], "hi")

    assert raised.value.errcode == 81013
    assert sandbox.messages("wecom") == []


# WeCom: 联系我, external contacts, customer tags, JS-SDK tickets


def test_wecom_contact_way_gives_a_config_id_and_qr_code(
    sandbox: SandboxProcess, wecom: SandboxWeComClient
) -> None:
    result = wecom.external_contact.add_contact_way(1, 2, state="adv:7", user=["zhangsan"])

    assert result["errcode"] == 0
    assert result["qr_code"] == f"https://wework.qpic.cn/wwpic/{result['config_id']}/0"
    [way] = sandbox.wecom_contact_ways()
    assert (way["config_id"], way["user"], way["state"]) == (result["config_id"], ["zhangsan"], "adv:7")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"type": 3, "scene": 2, "user": ["zhangsan"]}, 40058),
        ({"type": 1, "scene": 2, "user": ["zhangsan", "lisi"]}, 40098),
        ({"type": 1, "scene": 2, "user": ["ghost"]}, 60111),
        ({"type": 1, "scene": 2, "user": ["zhangsan"], "state": "x" * 31}, 40058),
    ],
)
def test_wecom_contact_way_validates_its_body(
    sandbox: SandboxProcess, body: dict[str, Any], errcode: int
) -> None:
    sandbox.add_wecom_users({"zhangsan": "张三", "lisi": "李四"})

    response = post_json(
        f"{sandbox.wecom_url}/cgi-bin/externalcontact/add_contact_way", wecom_token(sandbox), body
    )

    assert response.json()["errcode"] == errcode
    assert sandbox.wecom_contact_ways() == []


def test_wecom_external_contact_shows_unionid_and_follow_users(
    sandbox: SandboxProcess, wecom: SandboxWeComClient
) -> None:
    added = sandbox.wecom_event("add_external_contact", "zhangsan", unionid="u-1", name="小红", state="adv:7")

    result = wecom.external_contact.get(added["external_userid"])

    assert result["external_contact"] == {
        "external_userid": added["external_userid"],
        "name": "小红",
        "type": 1,
        "gender": 0,
        "unionid": "u-1",
    }
    [follow_user] = result["follow_user"]
    assert (follow_user["userid"], follow_user["state"], follow_user["tags"]) == ("zhangsan", "adv:7", [])
    assert isinstance(follow_user["createtime"], int)


def test_wecom_external_contact_errors(sandbox: SandboxProcess, wecom: SandboxWeComClient) -> None:
    added = sandbox.wecom_event("add_external_contact", "zhangsan", unionid="u-2")
    sandbox.wecom_event("del_follow_user", "zhangsan", unionid="u-2")

    for external_userid, errcode in [(added["external_userid"], 84061), ("not-an-external-id", 40096)]:
        with pytest.raises(WeChatClientException) as raised:
            wecom.external_contact.get(external_userid)
        assert raised.value.errcode == errcode


def test_wecom_corp_tags_are_added_listed_and_marked(
    sandbox: SandboxProcess, wecom: SandboxWeComClient
) -> None:
    added = sandbox.wecom_event("add_external_contact", "zhangsan", unionid="u-3")
    group = wecom.external_contact.add_corp_tag(None, "会员等级", 1, [{"name": "金卡"}, {"name": "银卡"}])[
        "tag_group"
    ]
    gold, silver = (tag["id"] for tag in group["tag"])

    listed = wecom.external_contact.get_corp_tag_list()["tag_group"]
    marked = wecom.external_contact.mark_tag("zhangsan", added["external_userid"], add_tag=[gold, silver])
    unmarked = wecom.external_contact.mark_tag("zhangsan", added["external_userid"], remove_tag=[silver])

    assert [tag["name"] for tag in listed[0]["tag"]] == ["金卡", "银卡"]
    assert marked["errcode"] == unmarked["errcode"] == 0
    tags = wecom.external_contact.get(added["external_userid"])["follow_user"][0]["tags"]
    assert tags == [{"group_name": "会员等级", "tag_name": "金卡", "tag_id": gold, "type": 1}]


@pytest.mark.parametrize(
    ("userid", "tag", "errcode"),
    [("ghost", "real", 60111), ("zhangsan", "et-unknown", 40068), ("lisi", "real", 84061)],
)
def test_wecom_mark_tag_errors(
    sandbox: SandboxProcess, wecom: SandboxWeComClient, userid: str, tag: str, errcode: int
) -> None:
    sandbox.add_wecom_users({"zhangsan": "张三", "lisi": "李四"})
    added = sandbox.wecom_event("add_external_contact", "zhangsan", unionid="u-4")
    real = wecom.external_contact.add_corp_tag(None, "偏好", 0, [{"name": "母婴"}])["tag_group"]["tag"][0][
        "id"
    ]

    with pytest.raises(WeChatClientException) as raised:
        wecom.external_contact.mark_tag(
            userid, added["external_userid"], add_tag=[real if tag == "real" else tag]
        )

    assert raised.value.errcode == errcode


def test_wecom_jsapi_tickets(wecom: SandboxWeComClient) -> None:
    corp = wecom.jsapi.get_ticket()
    agent = wecom.jsapi.get_agent_ticket()

    assert corp["errcode"] == agent["errcode"] == 0
    assert corp["expires_in"] == agent["expires_in"] == 7200
    assert corp["ticket"] and agent["ticket"] and corp["ticket"] != agent["ticket"]


def test_wecom_callbacks_are_signed_and_encrypted_for_the_app(sandbox: SandboxProcess) -> None:
    credentials = sandbox.credentials
    answer = sandbox.wecom_event("add_external_contact", "zhangsan", unionid="u-5", state="adv:7")
    query = dict(part.split("=", 1) for part in answer["callback"]["url"].split("?", 1)[1].split("&"))
    crypto = WeChatCrypto(
        credentials.wecom_callback_token, credentials.wecom_callback_aes_key, credentials.wecom_corp_id
    )

    plaintext = crypto.decrypt_message(
        answer["callback"]["body"], query["msg_signature"], query["timestamp"], query["nonce"]
    )

    assert "<ChangeType><![CDATA[add_external_contact]]></ChangeType>" in plaintext
    assert f"<ExternalUserID><![CDATA[{answer['external_userid']}]]></ExternalUserID>" in plaintext
    assert "<State><![CDATA[adv:7]]></State>" in plaintext
    assert "<UserID><![CDATA[zhangsan]]></UserID>" in plaintext


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

"""Faults the sandbox injects on any WeChat, WeCom or car-park call: for one call, N calls or until
cleared, on one path or all ("*"), as errors, HTTP errors, timeouts and lost answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from app.sandbox import SandboxProcess, start_sandbox_process
from tests.sandbox.test_wire_formats import SandboxWeChatClient, SandboxWeComClient

DATA = {"thing1": {"value": "积分到账"}}
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
SEND = "/cgi-bin/message/send"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox_process() as process:
        yield process


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.reset()


def errcodes(calls: int, call: object) -> list[int]:
    codes = []
    for _ in range(calls):
        try:
            call()  # type: ignore[operator]
            codes.append(0)
        except WeChatClientException as error:
            codes.append(error.errcode if error.errcode is not None else error.response.status_code)
    return codes


def test_a_fault_on_every_path_fires_until_cleared(sandbox: SandboxProcess) -> None:
    wechat = SandboxWeChatClient(sandbox, auto_retry=False)
    wechat.fetch_access_token()
    sandbox.inject_fault("wechat", "*", 40001, times=None)

    failing = errcodes(3, lambda: wechat.wxa.send_subscribe_message("o-1", "tpl", DATA))
    token = requests.get(f"{sandbox.wechat_url}/cgi-bin/token", timeout=5).json()["errcode"]
    assert sandbox.clear_faults("wechat") == 1
    cleared = errcodes(1, lambda: wechat.wxa.send_subscribe_message("o-1", "tpl", DATA))

    assert failing == [40001, 40001, 40001]
    assert token == 40001  # the token endpoint too
    assert cleared == [0]
    assert sandbox.faults("wechat") == {"faults": {}, "fired": {"error": 4}}
    assert len(sandbox.messages("wechat")) == 1


def test_a_path_fault_fires_before_a_wildcard_one_and_n_times(sandbox: SandboxProcess) -> None:
    wecom = SandboxWeComClient(sandbox, auto_retry=False)
    wecom.fetch_access_token()
    sandbox.inject_fault("wecom", "*", 45009, times=1)
    sandbox.inject_fault("wecom", SEND, -1, http_status=502, times=2)

    codes = errcodes(4, lambda: wecom.message.send_text("1000002", ["ann"], "hi"))

    assert codes == [502, 502, 45009, 0]
    assert len(sandbox.messages("wecom")) == 1


def test_a_lost_answer_is_carried_out_and_answered_with_a_gateway_error(sandbox: SandboxProcess) -> None:
    wechat = SandboxWeChatClient(sandbox)
    wechat.fetch_access_token()
    sandbox.inject_fault("wechat", SUBSCRIBE, kind="lost_answer")

    with pytest.raises(WeChatClientException) as raised:
        wechat.wxa.send_subscribe_message("o-1", "tpl", DATA)

    assert raised.value.response.status_code == 504
    assert len(sandbox.messages("wechat")) == 1  # delivered, though the caller could not know


def test_a_lost_answer_with_a_delay_is_a_timeout_after_the_work_is_done(sandbox: SandboxProcess) -> None:
    wecom = SandboxWeComClient(sandbox, timeout=0.3)
    wecom.fetch_access_token()
    sandbox.inject_fault("wecom", SEND, kind="lost_answer", delay_seconds=0.6)

    with pytest.raises(requests.Timeout):
        wecom.message.send_text("1000002", ["ann"], "hi")

    assert [message["touser"] for message in sandbox.messages("wecom")] == ["ann"]


def test_a_timeout_is_not_carried_out(sandbox: SandboxProcess) -> None:
    wechat = SandboxWeChatClient(sandbox, timeout=0.3)
    wechat.fetch_access_token()
    sandbox.inject_fault("wechat", SUBSCRIBE, delay_seconds=0.6)

    with pytest.raises(requests.Timeout):
        wechat.wxa.send_subscribe_message("o-1", "tpl", DATA)
    time.sleep(0.4)  # the late answer

    assert sandbox.messages("wechat") == []


def test_wecom_duplicate_check_answers_a_repeat_without_delivering_it(sandbox: SandboxProcess) -> None:
    wecom = SandboxWeComClient(sandbox)
    message = {"msgtype": "text", "text": {"content": "hi"}, "enable_duplicate_check": 1}

    first = wecom.message.send("1000002", ["ann"], msg=message)
    again = wecom.message.send("1000002", ["ann"], msg=message)
    other = wecom.message.send("1000002", ["ann"], msg={**message, "text": {"content": "bye"}})
    unchecked = wecom.message.send("1000002", ["ann"], msg={"msgtype": "text", "text": {"content": "hi"}})

    assert again["msgid"] == first["msgid"] != other["msgid"]
    assert len(sandbox.messages("wecom")) == 3
    assert unchecked["msgid"] not in (first["msgid"], other["msgid"])
    assert [duplicate["msgid"] for duplicate in sandbox.wecom_duplicates()] == [first["msgid"]]


def signed_post(sandbox: SandboxProcess, path: str, body: dict[str, object]) -> requests.Response:
    raw = json.dumps({"parkId": "sandbox-park-001", **body}).encode()
    timestamp = str(int(time.time() * 1000))
    key = b"dev-only-insecure-secret-change-me-carpark"
    headers = {
        "X-Park-Timestamp": timestamp,
        "X-Park-Sign": hmac.new(key, raw + timestamp.encode(), hashlib.sha256).hexdigest(),
    }
    return requests.post(f"{sandbox.carpark_url}{path}", data=raw, headers=headers, timeout=5)


def test_car_park_faults_use_the_same_book(sandbox: SandboxProcess) -> None:
    sandbox.park_car("沪A12345", 200)
    notice = {"plateNo": "沪A12345", "totalFee": 2_000, "discountFee": 500, "payFee": 1_500}
    sandbox.inject_fault("carpark", "*", kind="lost_answer", times=None)

    lost = signed_post(sandbox, "/api/v1/parking/discount", {"orderNo": "MP1", **notice})
    sandbox.clear_faults("carpark", "*")
    sandbox.carpark_fault("/api/v1/parking/payment-status", "business", times=2, code=3005)
    refused = [
        signed_post(sandbox, "/api/v1/parking/payment-status", {"orderNo": "MP1"}).json()["code"]
        for _ in range(3)
    ]

    assert lost.status_code == 504
    assert [discount["order_no"] for discount in sandbox.carpark_discounts()] == ["MP1"]
    assert refused == [3005, 3005, 0]
    assert sandbox.faults("carpark")["fired"] == {"lost_answer": 1, "error": 2}


def test_bad_fault_requests_are_refused(sandbox: SandboxProcess) -> None:
    for body in ({"path": "*", "kind": "explode"}, {"path": "*", "times": 0}, {"path": ""}):
        response = requests.post(f"{sandbox.wechat_url}/sandbox/faults", json=body, timeout=5)
        assert response.status_code == 400, body


def test_a_car_park_refusal_is_lost_like_any_answer(sandbox: SandboxProcess) -> None:
    sandbox.inject_fault("carpark", "/api/v1/parking/payment-status", kind="lost_answer")

    lost = signed_post(sandbox, "/api/v1/parking/payment-status", {"orderNo": "MP-unknown"})

    assert lost.status_code == 504

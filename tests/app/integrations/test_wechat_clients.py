"""The wechatpy clients against the sandbox: token refresh is bounded, failures become clear errors."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.config import Config
from app.extensions import extensions
from app.integrations.wechat_client import WeChatUnavailable
from app.models import StaffRole
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import shopper_login, sign_up


@pytest.fixture
def mall(session: Session) -> None:
    factories.create_tiers(session)
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF)
    session.commit()


def calls_to(sandbox: SandboxProcess, server: str, path: str) -> int:
    return sum(1 for r in sandbox.requests(server) if r["path"] == path)  # type: ignore[arg-type]


def test_an_expired_token_is_refreshed_and_the_call_retried(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token = shopper_login(client, "o-retry")["token"]
    assert sign_up(client, token, "13500135000", nickname="first").status_code == 201
    sandbox.expire_tokens("wechat")

    other = shopper_login(client, "o-retry-2")["token"]
    response = sign_up(client, other, "13500135001")

    assert response.status_code == 201
    assert calls_to(sandbox, "wechat", "/wxa/business/getuserphonenumber") == 3  # ok, 42001, ok


def test_a_token_that_keeps_failing_is_retried_a_bounded_number_of_times(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    token = shopper_login(client, "o-stuck")["token"]
    sandbox.inject_fault("wechat", "/wxa/business/getuserphonenumber", 40001, times=50)

    response = sign_up(client, token, "13500135002")

    assert response.status_code == 503
    assert response.get_json()["code"] == "DEPENDENCY_UNAVAILABLE"
    assert calls_to(sandbox, "wechat", "/wxa/business/getuserphonenumber") == 2  # one call, one retry


def test_wechat_rate_limiting_is_a_clear_503(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    sandbox.inject_fault("wechat", "/sns/jscode2session", 45011)

    response = client.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-busy"})

    assert response.status_code == 503
    assert response.get_json() == {"code": "WECHAT_RATE_LIMITED", "message": "微信服务繁忙，请稍后再试"}


def test_wecom_token_expiry_is_recovered_too(
    client: FlaskClient, mall: None, sandbox: SandboxProcess
) -> None:
    client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})
    sandbox.expire_tokens("wecom")

    response = client.post("/api/staff/v1/auth/login", json={"code": "sandbox:staff01"})

    assert response.status_code == 200


def test_an_unreachable_wechat_is_503_not_500(config: Config, mall: None) -> None:
    from app import create_app

    app = create_app(config.with_overrides(WECHAT_API_BASE="http://127.0.0.1:9", HTTP_TIMEOUT_SECONDS=1))

    response = app.test_client().post("/api/mp/v1/auth/login", json={"code": "sandbox:o-offline"})

    assert response.status_code == 503
    assert response.get_json()["code"] == "DEPENDENCY_UNAVAILABLE"


def test_wecom_messages_reach_the_sandbox(app: Flask, sandbox: SandboxProcess) -> None:
    with app.app_context():
        extensions().wecom.send_text(["advisor01"], "今日任务：3 位会员本周生日")

    (message,) = sandbox.messages("wecom")
    assert message["touser"] == "advisor01"
    assert message["text"]["content"] == "今日任务：3 位会员本周生日"


def test_subscribe_messages_reach_the_sandbox(app: Flask, sandbox: SandboxProcess) -> None:
    with app.app_context():
        extensions().wechat.send_subscribe_message(
            "o-member", "tmpl-points", {"thing1": {"value": "积分到账"}}, page="pages/points/index"
        )

    (message,) = sandbox.messages("wechat")
    assert message["touser"] == "o-member"
    assert message["data"]["thing1"]["value"] == "积分到账"


def test_wechat_errors_that_are_not_ours_to_fix_are_unavailable(app: Flask, sandbox: SandboxProcess) -> None:
    with app.app_context(), pytest.raises(WeChatUnavailable):
        extensions().wechat.send_subscribe_message("", "tmpl", {"thing1": {"value": "x"}})

"""The merchant assistant page inside WeCom: sign-in, JS-SDK signatures for scanQRCode (WeCom's
algorithm, tickets cached), and crediting / verifying through the staff API with the page's token."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from wechatpy.utils import WeChatSigner

from app.extensions import extensions
from app.models import StaffRole
from app.sandbox.process import SandboxProcess
from tests import factories
from tests.flows import bearer, registered_shopper

PAGE_DATA = re.compile(r'<script id="merchant-page" type="application/json">(.*?)</script>', re.S)


@pytest.fixture
def mall(session: Session, sandbox: SandboxProcess) -> dict[str, Any]:
    sandbox.add_wecom_users({"sue": "苏", "ann": "安", "drifter": "无店"})
    factories.create_tiers(session)
    store = factories.create_store(session, name="ZARA", category="服饰")
    other = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "sue", StaffRole.STORE_STAFF, store_id=store.id)
    factories.create_staff(session, "ann", StaffRole.ADVISOR, store_id=store.id)
    factories.create_staff(session, "drifter", StaffRole.STORE_STAFF)
    session.commit()
    return {"store": store.id, "other": other.id}


def open_page(client: FlaskClient, userid: str = "sue") -> tuple[str, dict[str, Any]]:
    login = client.get("/wecom/merchant/login", query_string={"code": f"sandbox:{userid}"})
    assert login.status_code == 302, login.get_data(as_text=True)
    response = client.get(login.headers["Location"])
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    found = PAGE_DATA.search(html)
    assert found
    return html, json.loads(found.group(1))


def cached_ticket(app: Flask, kind: str) -> str:
    """The ticket wechatpy cached in the token storage (the sandbox issues a random one)."""
    with app.app_context():
        client = extensions().wecom._client
        return str(client.session.get(f"{client.corp_id}_{kind}"))


def test_the_page_signs_wx_config_and_agent_config_with_wecoms_algorithm(
    app: Flask, client: FlaskClient, sandbox: SandboxProcess, config: Any, mall: dict[str, Any]
) -> None:
    _, data = open_page(client)

    page_url = "http://localhost/wecom/merchant/"
    wx_config, agent_config = data["wx"]["config"], data["wx"]["agentConfig"]
    assert (wx_config["appId"], agent_config["corpid"]) == (config.WECOM_CORP_ID, config.WECOM_CORP_ID)
    assert agent_config["agentid"] == config.WECOM_AGENT_ID
    assert wx_config["jsApiList"] == ["scanQRCode"]
    for signed, ticket in (
        (wx_config, cached_ticket(app, "jsapi_ticket")),
        (agent_config, cached_ticket(app, "agent_jsapi_ticket")),
    ):
        nonce, timestamp = signed["nonceStr"], signed["timestamp"]
        plain = f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={page_url}"
        assert signed["signature"] == hashlib.sha1(plain.encode()).hexdigest()
        signer = WeChatSigner(delimiter=b"&")
        signer.add_data(
            f"noncestr={signed['nonceStr']}", f"jsapi_ticket={ticket}",
            f"timestamp={signed['timestamp']}", f"url={page_url}",
        )  # fmt: skip
        assert signed["signature"] == signer.signature


def test_tickets_are_fetched_once_and_cached(
    client: FlaskClient, sandbox: SandboxProcess, mall: dict[str, Any]
) -> None:
    open_page(client)
    client.get("/wecom/merchant/")

    paths = [r["path"] for r in sandbox.requests("wecom")]
    assert paths.count("/cgi-bin/get_jsapi_ticket") == 1
    assert paths.count("/cgi-bin/ticket/get") == 1


def test_without_a_ticket_the_page_still_offers_manual_entry(
    client: FlaskClient, sandbox: SandboxProcess, mall: dict[str, Any]
) -> None:
    sandbox.inject_fault("wecom", "/cgi-bin/get_jsapi_ticket", errcode=-1, errmsg="system busy")

    html, data = open_page(client)

    assert data["wx"] is None
    assert 'name="member_code"' in html and "jweixin" not in html


def test_a_purchase_credited_with_the_pages_token_is_listed_for_the_store(
    client: FlaskClient, mall: dict[str, Any]
) -> None:
    shopper, _ = registered_shopper(client, "o-merchant", "13800000777")
    _, data = open_page(client)
    member_code = client.get("/api/mp/v1/me/code", headers=bearer(shopper)).get_json()["code"]

    credited = client.post(
        data["api"]["purchases"],
        json={
            "member_code": member_code,
            "store_id": data["storeId"],
            "receipt_no": "R-1001",
            "amount_fen": 25_800,
        },
        headers=bearer(data["token"]),
    )

    assert credited.status_code == 201, credited.get_json()
    html = client.get("/wecom/merchant/").get_data(as_text=True)
    assert "R-1001" in html and "¥258.00" in html and "138****0777" in html
    assert "今日登记（1）" in html


def test_a_coupon_verified_with_the_pages_token_is_listed(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    shopper, _ = registered_shopper(client, "o-coupon", "13800000778")
    template = factories.create_coupon_template(session, name="满100减20")
    session.commit()
    claimed = client.post(
        f"/api/mp/v1/coupon-templates/{template.id}/claims",
        headers={**bearer(shopper), "Idempotency-Key": uuid.uuid4().hex},
    )
    code = client.get(f"/api/mp/v1/me/coupons/{claimed.get_json()['id']}/code", headers=bearer(shopper))
    _, data = open_page(client)

    verified = client.post(
        data["api"]["couponRedemptions"],
        json={"code": code.get_json()["code"], "store_id": data["storeId"], "order_amount_fen": 15_000},
        headers=bearer(data["token"]),
    )

    assert verified.status_code == 201, verified.get_json()
    html = client.get("/wecom/merchant/").get_data(as_text=True)
    assert "今日核销（1）" in html and "满100减20" in html and "抵扣 ¥20.00" in html


def test_advisors_are_refused_the_merchant_page(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = client.get("/wecom/merchant/login", query_string={"code": "sandbox:ann"})

    assert response.status_code == 403
    assert "商户助手仅限门店员工和店长使用" in response.get_data(as_text=True)


def test_staff_without_a_store_get_a_clear_page(client: FlaskClient, mall: dict[str, Any]) -> None:
    client.get("/wecom/merchant/login", query_string={"code": "sandbox:drifter"})

    response = client.get("/wecom/merchant/")

    assert response.status_code == 403
    assert "您还没有所属门店" in response.get_data(as_text=True)


def test_the_merchant_page_needs_a_sign_in(client: FlaskClient, mall: dict[str, Any]) -> None:
    response = client.get("/wecom/merchant/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/wecom/merchant/login")

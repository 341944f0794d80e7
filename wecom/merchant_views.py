"""Merchant assistant (商户助手) inside WeCom: store staff scan a member code or a coupon with the
JS-SDK's scanQRCode (or type the code) and the page credits the purchase or verifies the coupon through
the staff API with a bearer token issued here; it lists what their store did today."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.auth import Audience, issue_token
from app.db import transaction
from app.errors import DomainError, Forbidden
from app.extensions import extensions, mall_time, settings
from app.services import counter_activity
from wecom.pages import allow_merchants, oauth_login, page_login_required, page_staff, register_page_errors

log = logging.getLogger(__name__)

bp = Blueprint("merchant_pages", __name__, url_prefix="/wecom/merchant", template_folder="templates")
register_page_errors(bp)

login_required = page_login_required("merchant_pages.login", allow_merchants)


@bp.get("/login")
def login() -> Response:
    return oauth_login("merchant_pages.login", url_for("merchant_pages.home"), allow_merchants)


@bp.get("/")
@login_required
def home() -> str:
    staff = page_staff()
    if staff.store_id is None:
        raise Forbidden("您还没有所属门店，请联系商场运营")
    with transaction() as session:
        purchases, coupons = counter_activity.store_today(session, staff.store_id, mall_time())
    token, _ = issue_token(Audience.STAFF, staff.id)
    config = settings()
    page = {
        "token": token,
        "storeId": staff.store_id,
        "wx": _js_sdk_config(request.url),
        "api": {
            "purchases": url_for("staff.record_purchase"),
            "couponRedemptions": url_for("staff_coupons.redeem"),
        },
    }
    return render_template(
        "wecom/merchant.html",
        staff=staff,
        purchases=purchases,
        coupons=coupons,
        js_sdk_url=config.WECOM_JSSDK_URL if page["wx"] else None,
        page_json=Markup(json.dumps(page, ensure_ascii=False).replace("</", "<\\/")),
    )


def _js_sdk_config(url: str) -> dict[str, object] | None:
    """`wx.config` / `wx.agentConfig` arguments for this page; None (manual entry only) if WeCom fails."""
    config = settings()
    try:
        corp, agent = extensions().wecom.jsapi_signatures(url)
    except DomainError:
        log.warning("jsapi ticket unavailable: the merchant page falls back to manual code entry")
        return None
    return {
        "config": {
            "beta": True,
            "appId": config.WECOM_CORP_ID,
            "timestamp": corp.timestamp,
            "nonceStr": corp.nonce_str,
            "signature": corp.signature,
            "jsApiList": ["scanQRCode"],
        },
        "agentConfig": {
            "corpid": config.WECOM_CORP_ID,
            "agentid": config.WECOM_AGENT_ID,
            "timestamp": agent.timestamp,
            "nonceStr": agent.nonce_str,
            "signature": agent.signature,
            "jsApiList": ["scanQRCode"],
        },
    }

"""`/wecom/callback`: the URL WeCom calls with events (not part of the JSON API).

GET verifies the URL when it is set up in WeCom; POST carries an encrypted event. WeCom waits
5 s for "success" and retries three times otherwise, so the event is only recorded here (once,
whatever the retries) and acted on after the answer has been sent.
"""

from __future__ import annotations

from functools import partial

from flask import Blueprint, Response, current_app, request

from app.db import run_transaction, utcnow
from app.extensions import settings
from app.integrations.wecom_callbacks import CallbackCrypto
from app.services import wecom_events
from app.wecom_events import process_event

bp = Blueprint("wecom_callbacks", __name__)

# WeCom's callbacks are small; anything bigger is not from WeCom.
MAX_CALLBACK_BYTES = 64 * 1024


def _crypto() -> CallbackCrypto:
    config = settings()
    return CallbackCrypto(
        token=config.WECOM_CALLBACK_TOKEN,
        aes_key=config.WECOM_CALLBACK_AES_KEY,
        corp_id=config.WECOM_CORP_ID,
        max_age_seconds=config.WECOM_CALLBACK_MAX_AGE_SECONDS,
    )


def _signed_args() -> tuple[str, str, str]:
    return (
        request.args.get("msg_signature", ""),
        request.args.get("timestamp", ""),
        request.args.get("nonce", ""),
    )


@bp.get("/wecom/callback")
def verify_url() -> Response:
    echo = _crypto().verify_url(*_signed_args(), request.args.get("echostr", ""))
    return Response(echo, mimetype="text/plain")


@bp.post("/wecom/callback")
def receive_event() -> Response:
    if (request.content_length or 0) > MAX_CALLBACK_BYTES:
        return Response("payload too large", status=413, mimetype="text/plain")
    event = _crypto().decrypt(*_signed_args(), request.get_data(cache=False)[:MAX_CALLBACK_BYTES])
    at = utcnow()
    stored, created = run_transaction(lambda session: wecom_events.record_event(session, event, at=at))
    response = Response("success", mimetype="text/plain")
    if created:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        response.call_on_close(partial(process_event, app, stored.id))
    return response

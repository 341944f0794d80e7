"""`/wecom/callback`: WeCom's signed, encrypted callbacks, sent by the sandbox as WeCom sends them,
and what they do: an advisor's new external contact becomes their member."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wechatpy.enterprise.crypto import WeChatCrypto
from werkzeug.serving import make_server

from app.config import Config
from app.db import utcnow
from app.jobs import run_job
from app.models import (
    AdvisorAssignment,
    AssignmentReason,
    ExternalContact,
    Member,
    StaffRole,
    WeComEvent,
)
from app.sandbox import SandboxProcess
from app.sandbox.wecom_events import CallbackSigning, sign_callback
from tests import factories
from tests.flows import registered_shopper

CALLBACK = "/wecom/callback"


@pytest.fixture
def mall(session: Session) -> dict[str, int]:
    factories.create_tiers(session)
    store = factories.create_store(session)
    advisor = factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=store.id)
    other = factories.create_staff(session, "advisor02", StaffRole.ADVISOR, store_id=store.id)
    session.commit()
    return {"store": store.id, "advisor": advisor.id, "other": other.id}


def unionid_of(openid: str) -> str:
    """The unionid the WeChat sandbox reports for an openid at login."""
    return f"sandbox-union-{openid}"


def post_callback(client: FlaskClient, callback: dict[str, str]) -> Any:
    """POST what the sandbox built (`url`, `body`) to the app, as WeCom would."""
    url = urlsplit(callback["url"])
    response = client.post(f"{url.path}?{url.query}", data=callback["body"], content_type="text/xml")
    # A WSGI server closes every response once sent, which runs what the view left for afterwards;
    # the test client leaves that to us.
    response.close()
    return response


def add_contact(sandbox: SandboxProcess, userid: str, unionid: str, **options: Any) -> dict[str, Any]:
    return sandbox.wecom_event("add_external_contact", userid, unionid=unionid, **options)


def crypto(config: Config) -> WeChatCrypto:
    return WeChatCrypto(config.WECOM_CALLBACK_TOKEN, config.WECOM_CALLBACK_AES_KEY, config.WECOM_CORP_ID)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# URL verification and decryption


def test_url_verification_answers_the_decrypted_echostr(client: FlaskClient, config: Config) -> None:
    # What WeCom sends when an admin saves the callback URL: an encrypted echostr, signed.
    encrypted = crypto(config).encrypt_message("echo-1795600000", "nonce123", str(int(time.time())))
    echostr = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    signature = encrypted.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    timestamp = encrypted.split("<TimeStamp>")[1].split("</TimeStamp>")[0]

    response = client.get(
        CALLBACK,
        query_string={
            "msg_signature": signature,
            "timestamp": timestamp,
            "nonce": "nonce123",
            "echostr": echostr,
        },
    )

    assert response.status_code == 200
    assert response.get_data(as_text=True) == "echo-1795600000"


def test_url_verification_with_a_wrong_signature_is_refused(client: FlaskClient, config: Config) -> None:
    encrypted = crypto(config).encrypt_message("echo", "nonce123", str(int(time.time())))
    echostr = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]

    response = client.get(
        CALLBACK,
        query_string={
            "msg_signature": "0" * 40,
            "timestamp": str(int(time.time())),
            "nonce": "n",
            "echostr": echostr,
        },
    )

    assert response.status_code == 403
    assert response.get_json()["code"] == "WECOM_CALLBACK_REJECTED"


def test_a_sandbox_callback_is_decrypted_recorded_and_answered_success(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    answer = add_contact(sandbox, "advisor01", "union-x", state="adv:1")

    response = post_callback(client, answer["callback"])

    assert response.status_code == 200
    assert response.get_data(as_text=True) == "success"
    event = session.scalars(select(WeComEvent)).one()
    assert event.event_type == "change_external_contact:add_external_contact"
    assert event.payload["ExternalUserID"] == answer["external_userid"]
    assert event.payload["UserID"] == "advisor01"
    assert event.payload["State"] == "adv:1"
    assert event.payload["WelcomeCode"]
    assert event.processed_at is not None


def test_a_forged_signature_is_refused_and_nothing_is_recorded(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    callback = add_contact(sandbox, "advisor01", "union-x")["callback"]
    url = urlsplit(callback["url"])
    forged = url.query.replace("msg_signature=", "msg_signature=f00d")

    response = client.post(f"{url.path}?{forged}", data=callback["body"], content_type="text/xml")

    assert response.status_code == 403
    assert count(session, WeComEvent) == 0


def test_a_body_encrypted_with_another_key_is_refused(
    client: FlaskClient, config: Config, session: Session, mall: dict[str, int]
) -> None:
    other_key = "b3RoZXIta2V5LW9mLTMyLWJ5dGVzLXRvLWVuY3J5cHQ"
    stamp = str(int(time.time()))
    encrypted = WeChatCrypto(config.WECOM_CALLBACK_TOKEN, other_key, config.WECOM_CORP_ID).encrypt_message(
        "<xml><MsgType>event</MsgType></xml>", "n1", stamp
    )
    signature = encrypted.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]

    response = client.post(
        f"{CALLBACK}?msg_signature={signature}&timestamp={stamp}&nonce=n1",
        data=encrypted,
        content_type="text/xml",
    )

    assert response.status_code == 403
    assert count(session, WeComEvent) == 0


def test_a_stale_timestamp_is_refused_even_when_correctly_signed(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    stale = int(time.time()) - 301
    callback = add_contact(sandbox, "advisor01", "union-x", timestamp=stale)["callback"]

    response = post_callback(client, callback)

    assert response.status_code == 403
    assert response.get_json()["message"] == "回调已过期"
    assert count(session, WeComEvent) == 0


def test_xml_entities_are_refused(client: FlaskClient, session: Session) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">]><xml><Encrypt>&a;</Encrypt></xml>'

    response = client.post(
        f"{CALLBACK}?msg_signature=x&timestamp={int(time.time())}&nonce=n", data=bomb, content_type="text/xml"
    )

    assert response.status_code == 403
    assert count(session, WeComEvent) == 0


# Ten to the ninth "lol"s once expanded, from a few hundred bytes.
_LAUGHS = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
BILLION_LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol0 "lol">{_LAUGHS}]>'
    "<xml><MsgType>event</MsgType><Event>&lol9;</Event></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><MsgType>event</MsgType><Event>change_external_contact</Event><UserID>&xxe;</UserID></xml>"
)
# No entity at all, only a DTD to fetch: refused all the same, a callback never has a DOCTYPE.
EXTERNAL_DTD = (
    '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://169.254.169.254/latest/meta-data/x.dtd">'
    "<xml><MsgType>event</MsgType><Event>change_external_contact</Event></xml>"
)


def signed_by_the_sandbox(config: Config, plaintext: str) -> dict[str, str]:
    """`plaintext` encrypted and signed as WeCom (the sandbox) sends a callback."""
    signing = CallbackSigning(config.WECOM_CALLBACK_TOKEN, config.WECOM_CALLBACK_AES_KEY)
    callback = sign_callback(
        signing, config.WECOM_CORP_ID, config.WECOM_AGENT_ID, f"http://app.invalid{CALLBACK}", plaintext
    )
    return callback.to_json()


@pytest.mark.parametrize(
    "plaintext",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "xxe", "external-dtd"],
)
def test_a_decrypted_event_with_a_doctype_is_refused_unexpanded(
    client: FlaskClient, config: Config, session: Session, plaintext: str
) -> None:
    started = time.monotonic()

    response = post_callback(client, signed_by_the_sandbox(config, plaintext))

    assert response.status_code == 403
    assert response.get_json() == {"code": "WECOM_CALLBACK_REJECTED", "message": "回调内容格式错误"}
    assert count(session, WeComEvent) == 0
    assert time.monotonic() - started < 2  # nothing was expanded


def test_a_well_formed_event_signed_the_same_way_is_recorded(
    client: FlaskClient, config: Config, session: Session
) -> None:
    plaintext = "<xml><MsgType>event</MsgType><Event>unknown_event</Event><CreateTime>1</CreateTime></xml>"

    response = post_callback(client, signed_by_the_sandbox(config, plaintext))

    assert response.status_code == 200 and response.get_data(as_text=True) == "success"
    assert count(session, WeComEvent) == 1


def test_a_replayed_callback_is_answered_but_acted_on_once(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    callback = add_contact(sandbox, "advisor01", "union-x")["callback"]

    answers = [post_callback(client, callback) for _ in range(4)]

    assert [answer.get_data(as_text=True) for answer in answers] == ["success"] * 4
    assert count(session, WeComEvent) == 1
    assert session.scalars(select(WeComEvent.attempts)).one() == 1
    fetches = [r for r in sandbox.requests("wecom") if r["path"] == "/cgi-bin/externalcontact/get"]
    assert len(fetches) == 1


# Binding advisors and members


def test_a_member_who_adds_an_advisor_becomes_their_member(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-wecom-1", "13700000001")
    member_id = body["id"]

    callback = add_contact(sandbox, "advisor01", unionid_of("o-wecom-1"), name="小红")["callback"]
    post_callback(client, callback)

    assert session.get_one(Member, member_id, populate_existing=True).advisor_id == mall["advisor"]
    contact = session.scalars(select(ExternalContact)).one()
    assert (contact.member_id, contact.staff_id, contact.name) == (member_id, mall["advisor"], "小红")
    history = session.scalars(select(AdvisorAssignment)).one()
    assert (history.member_id, history.staff_id, history.reason) == (
        member_id,
        mall["advisor"],
        AssignmentReason.CONTACT_WAY,
    )


def test_adding_a_second_advisor_keeps_the_first(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-wecom-2", "13700000002")
    post_callback(client, add_contact(sandbox, "advisor01", unionid_of("o-wecom-2"))["callback"])
    post_callback(client, add_contact(sandbox, "advisor02", unionid_of("o-wecom-2"))["callback"])

    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id == mall["advisor"]
    assert count(session, ExternalContact) == 2
    assert count(session, AdvisorAssignment) == 1


def test_an_unknown_shopper_is_kept_unmatched_until_they_sign_up(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    post_callback(client, add_contact(sandbox, "advisor01", unionid_of("o-later"))["callback"])
    contact = session.scalars(select(ExternalContact)).one()
    assert contact.member_id is None and contact.unionid == unionid_of("o-later")

    _, body = registered_shopper(client, "o-later", "13700000003")

    session.expire_all()
    assert session.scalars(select(ExternalContact.member_id)).one() == body["id"]
    assert session.get_one(Member, body["id"]).advisor_id == mall["advisor"]


def test_the_job_matches_contacts_whose_shopper_signed_up_meanwhile(
    app: Flask, client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-race", "13700000004")
    # The contact was recorded while the sign-up was in flight, so neither saw the other.
    session.add(
        ExternalContact(
            external_userid="wm-race",
            staff_id=mall["advisor"],
            unionid=unionid_of("o-race"),
            name="",
            added_at=utcnow(),
        )
    )
    session.commit()

    outcome = run_job(app, "wecom-events")

    assert "1 contacts matched" in outcome
    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id == mall["advisor"]


def test_removal_marks_the_contact_removed_and_keeps_the_advisor(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-leaves", "13700000005")
    post_callback(client, add_contact(sandbox, "advisor01", unionid_of("o-leaves"))["callback"])

    removal = sandbox.wecom_event("del_follow_user", "advisor01", unionid=unionid_of("o-leaves"))
    post_callback(client, removal["callback"])

    contact = session.scalars(select(ExternalContact)).one()
    session.refresh(contact)
    assert contact.removed_at is not None
    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id == mall["advisor"]


def test_an_edit_refreshes_the_contact_name(
    client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    post_callback(client, add_contact(sandbox, "advisor01", "union-edit", name="旧名")["callback"])

    edit = sandbox.wecom_event("edit_external_contact", "advisor01", unionid="union-edit", name="新名")
    post_callback(client, edit["callback"])

    assert session.scalars(select(ExternalContact.name)).one() == "新名"


def test_a_failed_fetch_is_retried_by_the_job(
    app: Flask, client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-retry", "13700000006")
    sandbox.inject_fault("wecom", "/cgi-bin/externalcontact/get", errcode=-1, errmsg="system busy")

    response = post_callback(client, add_contact(sandbox, "advisor01", unionid_of("o-retry"))["callback"])

    assert response.get_data(as_text=True) == "success"
    event = session.scalars(select(WeComEvent)).one()
    assert event.processed_at is None and event.attempts == 1 and event.error
    assert session.get_one(Member, body["id"]).advisor_id is None

    assert "1 processed" in run_job(app, "wecom-events")

    session.refresh(event)
    assert event.processed_at is not None and event.attempts == 2
    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id == mall["advisor"]


# Over real HTTP: the sandbox delivers the callback itself, started from the CLI


@pytest.fixture
def live_app(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_cli_makes_the_sandbox_deliver_an_add_contact_that_binds_the_member(
    app: Flask, client: FlaskClient, live_app: str, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-cli", "13700000007")

    command = ["sandbox", "wecom-event", "add-contact", "--advisor", "advisor01", "--state", "adv:1"]
    options = ["--unionid", unionid_of("o-cli"), "--callback-url", f"{live_app}{CALLBACK}"]

    result = app.test_cli_runner().invoke(args=command + options)

    assert result.exit_code == 0, result.output
    assert "answered 200 'success'" in result.output
    # The event is processed after the answer; give the server thread a moment to finish it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if session.get_one(Member, body["id"], populate_existing=True).advisor_id is not None:
            break
        time.sleep(0.05)
    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id == mall["advisor"]
    assert session.scalars(select(ExternalContact.state)).one() == "adv:1"


def test_the_cli_reports_a_refused_event(app: Flask, live_app: str, mall: dict[str, int]) -> None:
    result = app.test_cli_runner().invoke(
        args=["sandbox", "wecom-event", "add-contact", "--advisor", "advisor01", "--callback-url", live_app]
    )

    assert result.exit_code != 0
    assert "unionid" in result.output


def test_a_template_card_event_is_recorded_with_its_fields(
    client: FlaskClient, config: Config, session: Session
) -> None:
    # A button click on a template card: an event wechatpy does not know, with nested selections.
    plaintext = (
        "<xml><ToUserName><![CDATA[wwsandbox000000001]]></ToUserName><FromUserName><![CDATA[advisor01]]>"
        "</FromUserName><CreateTime>1795600000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[task-done]]></EventKey>"
        "<TaskId><![CDATA[digest-2026-11-25-7]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
        "<ResponseCode><![CDATA[rc-1]]></ResponseCode><AgentID>1000002</AgentID>"
        "<SelectedItems><SelectedItem><QuestionKey><![CDATA[outcome]]></QuestionKey>"
        "<OptionIds><OptionId><![CDATA[contacted]]></OptionId></OptionIds></SelectedItem></SelectedItems></xml>"
    )
    stamp = str(int(time.time()))
    encrypted = crypto(config).encrypt_message(plaintext, "n-card", stamp)
    signature = encrypted.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]

    response = client.post(
        f"{CALLBACK}?msg_signature={signature}&timestamp={stamp}&nonce=n-card",
        data=encrypted,
        content_type="text/xml",
    )
    response.close()

    assert response.get_data(as_text=True) == "success"
    event = session.scalars(select(WeComEvent)).one()
    assert event.event_type == "template_card_event"
    assert (event.payload["EventKey"], event.payload["TaskId"], event.payload["FromUserName"]) == (
        "task-done",
        "digest-2026-11-25-7",
        "advisor01",
    )
    assert event.payload["SelectedItems"]["SelectedItem"]["OptionIds"]["OptionId"] == "contacted"
    assert event.processed_at is not None


def test_a_late_add_of_a_contact_who_has_left_does_not_bring_them_back(
    app: Flask, client: FlaskClient, sandbox: SandboxProcess, session: Session, mall: dict[str, int]
) -> None:
    _, body = registered_shopper(client, "o-late", "13700000008")
    add = add_contact(sandbox, "advisor01", unionid_of("o-late"))["callback"]
    # The shopper removes the advisor before the add is acted on (it still knows them as advisor02's).
    add_contact(sandbox, "advisor02", unionid_of("o-late"))
    sandbox.wecom_event("del_follow_user", "advisor01", unionid=unionid_of("o-late"))

    post_callback(client, add)

    contact = session.scalars(select(ExternalContact)).one()
    assert contact.removed_at is not None
    assert session.get_one(Member, body["id"], populate_existing=True).advisor_id is None

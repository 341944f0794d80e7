"""Sign-up by QR, end to end: login, register, member card, against the WeChat sandbox."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.models import Member, MemberConsent, MemberSource, PointsSettings, StaffRole, WeChatAccount
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import (
    POLICY_VERSION,
    bearer,
    operator_login,
    registered_shopper,
    shopper_login,
    sign_up,
    staff_login,
)


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, object]:
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, name="优衣库")
    advisor = factories.create_staff(
        session, "advisor07", StaffRole.ADVISOR, store_id=store.id, name="顾问小美"
    )
    factories.create_operator(session)
    session.commit()
    return {"tiers": tiers, "store": store, "advisor": advisor}


def create_scene(client: FlaskClient, **body: object) -> dict[str, object]:
    response = client.post("/api/admin/v1/qr-scenes", json=body, headers=bearer(operator_login(client)))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_first_login_returns_a_token_and_no_member(client: FlaskClient, mall: dict) -> None:
    body = shopper_login(client, "o-new-shopper")

    assert body["member"] is None
    assert body["token"] and body["expires_in"] > 0
    assert "session_key" not in str(body)


def test_login_with_a_bad_code_is_rejected_with_wechat_code_invalid(client: FlaskClient, mall: dict) -> None:
    response = client.post("/api/mp/v1/auth/login", json={"code": "not-a-real-code"})

    assert response.status_code == 400
    assert response.get_json()["code"] == "WECHAT_CODE_INVALID"


def test_code_to_session_is_called_without_an_access_token(
    client: FlaskClient, mall: dict, sandbox: SandboxProcess
) -> None:
    shopper_login(client, "o-no-token")

    calls = [r for r in sandbox.requests("wechat") if r["path"] == "/sns/jscode2session"]
    assert len(calls) == 1
    assert "access_token" not in calls[0]["query"]
    assert calls[0]["query"]["js_code"] == "sandbox:o-no-token"


def test_sign_up_creates_a_member_on_the_entry_tier_with_a_masked_phone(
    client: FlaskClient, mall: dict
) -> None:
    token = shopper_login(client, "o-alice")["token"]

    response = sign_up(client, token, "13800138000", nickname="Alice🌸", birthday="1990-05-20")

    assert response.status_code == 201
    member = response.get_json()
    assert member["phone"] == "138****8000"
    assert member["tier"] == {"code": "normal", "name": "普卡"}
    assert member["points_balance"] == PointsSettings.DEFAULTS["welcome_points"]
    assert member["nickname"] == "Alice🌸"
    assert member["birthday"] == "1990-05-20"
    assert member["advisor"] is None and member["signup_scene"] is None

    me = client.get("/api/mp/v1/me", headers=bearer(token)).get_json()
    assert me.pop("consent")["required"] is False
    assert me == member


def test_logging_in_again_after_sign_up_returns_the_member(client: FlaskClient, mall: dict) -> None:
    _, member = registered_shopper(client, "o-returning", "13800138001")

    body = shopper_login(client, "o-returning")

    assert body["member"]["id"] == member["id"]


def test_repeating_sign_up_returns_the_same_member(client: FlaskClient, mall: dict, session: Session) -> None:
    token, first = registered_shopper(client, "o-twice", "13800138002")

    again = sign_up(client, token, "13800138002")

    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"]
    assert session.scalar(select(Member.id).where(Member.id != first["id"])) is None


def test_a_phone_known_from_the_pos_links_to_that_member(
    app: Flask, client: FlaskClient, mall: dict, session: Session
) -> None:
    with app.app_context():
        vault = extensions().phone_vault
    pos_member = factories.create_member(session, vault, "13900001111", mall["tiers"][2], nickname="老顾客")
    session.commit()
    token = shopper_login(client, "o-pos-customer")["token"]

    response = sign_up(client, token, "13900001111")

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == pos_member.id
    assert body["tier"]["code"] == "gold"
    assert session.scalars(select(Member)).one().source is MemberSource.POS
    account = session.scalars(select(WeChatAccount).where(WeChatAccount.openid == "o-pos-customer")).one()
    assert account.member_id == pos_member.id


def test_consent_is_recorded_with_its_version(client: FlaskClient, mall: dict, session: Session) -> None:
    _, member = registered_shopper(client, "o-consent", "13800138003")

    consent = session.scalars(select(MemberConsent).where(MemberConsent.member_id == member["id"])).one()
    assert consent.policy_version == POLICY_VERSION
    assert consent.granted_at is not None


def test_sign_up_without_consent_is_a_clear_422(client: FlaskClient, mall: dict, session: Session) -> None:
    token = shopper_login(client, "o-no-consent")["token"]

    response = client.post(
        "/api/mp/v1/members", json={"phone_code": "sandbox-phone:13800138004"}, headers=bearer(token)
    )

    assert response.status_code == 422
    assert response.get_json()["code"] == "CONSENT_REQUIRED"
    assert "隐私政策" in response.get_json()["message"]
    assert session.scalar(select(Member.id)) is None


def test_sign_up_with_an_outdated_consent_version_is_422(client: FlaskClient, mall: dict) -> None:
    token = shopper_login(client, "o-old-consent")["token"]

    response = sign_up(client, token, "13800138005", consent_version="2020-01")

    assert response.status_code == 422
    assert response.get_json()["code"] == "CONSENT_OUTDATED"
    assert response.get_json()["details"]["current_version"] == POLICY_VERSION


def test_sign_up_with_a_bad_phone_code_is_rejected(client: FlaskClient, mall: dict, session: Session) -> None:
    token = shopper_login(client, "o-bad-phone")["token"]

    response = client.post(
        "/api/mp/v1/members",
        json={"phone_code": "forged", "consent_version": POLICY_VERSION},
        headers=bearer(token),
    )

    assert response.status_code == 400
    assert response.get_json()["code"] == "PHONE_CODE_INVALID"
    assert session.scalar(select(Member.id)) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"consent_version": POLICY_VERSION}, "phone_code"),
        (
            {
                "phone_code": "sandbox-phone:13800138000",
                "consent_version": POLICY_VERSION,
                "birthday": "2999-01-01",
            },
            "birthday",
        ),
        (
            {
                "phone_code": "sandbox-phone:13800138000",
                "consent_version": POLICY_VERSION,
                "birthday": "yesterday",
            },
            "birthday",
        ),
        ({"phone_code": 42, "consent_version": POLICY_VERSION}, "phone_code"),
    ],
)
def test_invalid_sign_up_fields_are_422_with_field_details(
    client: FlaskClient, mall: dict, body: dict, field: str
) -> None:
    token = shopper_login(client, "o-invalid")["token"]

    response = client.post("/api/mp/v1/members", json=body, headers=bearer(token))

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert field in response.get_json()["details"]


def test_sign_up_through_an_advisor_scene_binds_the_advisor(client: FlaskClient, mall: dict) -> None:
    scene = create_scene(client, kind="advisor", name="顾问小美的专属码", advisor_userid="advisor07")

    _, member = registered_shopper(client, "o-advised", "13800138006", scene=scene["scene"])

    assert member["advisor"] == {"userid": "advisor07", "name": "顾问小美"}
    assert member["signup_scene"] == {"kind": "advisor", "name": "顾问小美的专属码"}


def test_sign_up_through_a_store_scene_is_attributed_to_it(
    client: FlaskClient, mall: dict, session: Session
) -> None:
    scene = create_scene(client, kind="store", name="优衣库收银台", store_id=mall["store"].id)

    _, member = registered_shopper(client, "o-store", "13800138007", scene=scene["scene"])

    assert member["signup_scene"] == {"kind": "store", "name": "优衣库收银台"}
    assert member["advisor"] is None
    assert session.get(Member, member["id"]).signup_scene_id == scene["id"]


def test_sign_up_through_a_referral_scene_records_the_referrer(
    client: FlaskClient, mall: dict, session: Session
) -> None:
    _, referrer = registered_shopper(client, "o-referrer", "13800138008")
    scene = create_scene(client, kind="referral", name="老带新", referrer_member_id=referrer["id"])

    _, member = registered_shopper(client, "o-referred", "13800138009", scene=scene["scene"])

    assert session.get(Member, member["id"]).referred_by_member_id == referrer["id"]


def test_an_unknown_scene_does_not_block_sign_up(client: FlaskClient, mall: dict) -> None:
    _, member = registered_shopper(client, "o-old-poster", "13800138010", scene="po-gone-for-good")

    assert member["signup_scene"] is None


def test_phone_numbers_are_never_stored_in_clear(client: FlaskClient, mall: dict, session: Session) -> None:
    registered_shopper(client, "o-private", "13812345678")

    for table in ("members", "wechat_accounts", "member_consents"):
        rows = session.execute(text(f"SELECT * FROM {table}")).all()
        assert rows, table
        for row in rows:
            for value in row:
                raw = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                assert "13812345678" not in raw and "12345678" not in raw, (table, row)
    member = session.scalars(select(Member)).one()
    assert member.phone_masked == "138****5678"


def test_the_stored_phone_decrypts_to_the_real_number(
    app: Flask, client: FlaskClient, mall: dict, session: Session
) -> None:
    registered_shopper(client, "o-decrypt", "13812345678")

    member = session.scalars(select(Member)).one()
    with app.app_context():
        assert extensions().phone_vault.reveal(member.phone_ciphertext) == "13812345678"


def test_me_before_signing_up_says_not_registered(client: FlaskClient, mall: dict) -> None:
    token = shopper_login(client, "o-visitor")["token"]

    response = client.get("/api/mp/v1/me", headers=bearer(token))

    assert response.status_code == 404
    assert response.get_json()["code"] == "MEMBER_NOT_REGISTERED"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AUTH_REQUIRED"),
        ({"Authorization": "Bearer forged.token.value"}, "AUTH_INVALID"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "AUTH_REQUIRED"),
    ],
)
def test_me_needs_a_valid_shopper_token(client: FlaskClient, mall: dict, headers: dict, code: str) -> None:
    response = client.get("/api/mp/v1/me", headers=headers)

    assert response.status_code == 401
    assert response.get_json()["code"] == code


def test_a_staff_token_does_not_open_shopper_endpoints(
    client: FlaskClient, mall: dict, session: Session
) -> None:
    factories.create_staff(session, "staff09", StaffRole.STORE_STAFF)
    session.commit()

    response = client.get("/api/mp/v1/me", headers=bearer(staff_login(client, "staff09")))

    assert response.status_code == 401
    assert response.get_json()["code"] == "AUTH_INVALID"


def test_the_phone_number_never_reaches_the_logs(
    client: FlaskClient, mall: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    registered_shopper(client, "o-quiet", "13912345678")
    client.post("/api/mp/v1/members", json={"phone_code": "sandbox-phone:13912345678"}, headers={})

    assert caplog.records, "expected some log output to inspect"
    assert "13912345678" not in caplog.text


@pytest.mark.mariadb
def test_concurrent_sign_ups_with_one_phone_make_one_member(
    app: Flask, client: FlaskClient, mall: dict, session: Session
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tokens = [shopper_login(client, f"o-race-{n}")["token"] for n in range(12)]
    tokens += tokens[:2]  # and two shoppers double-tapping

    def attempt(token: str) -> tuple[int, int]:
        response = sign_up(app.test_client(), token, "13666666666")
        assert "id" in response.get_json(), response.get_json()
        return response.status_code, response.get_json()["id"]

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        results = list(pool.map(attempt, tokens))

    assert {status for status, _ in results} <= {200, 201}
    assert [status for status, _ in results].count(201) == 1
    assert len({member_id for _, member_id in results}) == 1
    assert len(session.scalars(select(Member)).all()) == 1
    linked = session.scalars(
        select(WeChatAccount.member_id).where(WeChatAccount.openid.like("o-race-%"))
    ).all()
    assert len(linked) == 12 and len(set(linked)) == 1

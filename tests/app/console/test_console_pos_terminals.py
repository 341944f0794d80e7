"""The console's POS terminal pages: admins create terminals, rotate their keys and deactivate them,
auditors read the list, other roles are refused; the secret is shown once, uncached, and really
signs the POS API's requests; every change is audited by the service the admin API uses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.models import AuditEvent, Operator, OperatorRole, PosTerminal, Store
from tests import factories
from tests.app.console.console_flows import signed_in
from tests.app.pos_api.test_pos_api import PURCHASES, post_signed, sale

ADMIN, MARKETING = OperatorRole.ADMIN, OperatorRole.MARKETING
STORE_MANAGER, AUDITOR = OperatorRole.STORE_MANAGER, OperatorRole.AUDITOR
LIST, NEW = "/console/pos-terminals", "/console/pos-terminals/new"
KEY_ID = re.compile(r"<code data-key-id>([^<]+)</code>")
SECRET = re.compile(r"<code data-secret>([^<]+)</code>")


@pytest.fixture
def store(session: Session) -> Store:
    return factories.create_store(session, name="本店", code="OURS")


@pytest.fixture
def other_store(session: Session) -> Store:
    return factories.create_store(session, name="他店", code="THEIRS")


def sign_in(client: FlaskClient, session: Session, role: OperatorRole, store: Store) -> str:
    return signed_in(client, session, role, store_id=store.id if role == STORE_MANAGER else None)


def create_form(client: FlaskClient, token: str, **fields: Any) -> TestResponse:
    return client.post(NEW, data={**fields, "csrf_token": token})


def issued_key(response: TestResponse) -> dict[str, str]:
    """The key id and secret a secret page shows, as the POS API's signing helper takes them."""
    html = response.get_data(as_text=True)
    key_id, secret = KEY_ID.search(html), SECRET.search(html)
    assert key_id and secret, html
    return {"key_id": key_id.group(1), "secret": secret.group(1)}


def create_terminal(
    client: FlaskClient, token: str, store: Store, name: str = "1 号收银台"
) -> dict[str, Any]:
    response = create_form(client, token, store_id=str(store.id), name=name)
    assert response.status_code == 200, response.get_data(as_text=True)
    return issued_key(response)


def terminal_by_key(session: Session, key_id: str) -> PosTerminal:
    return session.scalars(
        select(PosTerminal).where(PosTerminal.key_id == key_id).execution_options(populate_existing=True)
    ).one()


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def operator_id(session: Session, role: OperatorRole) -> int:
    return session.scalars(select(Operator.id).where(Operator.username == role.value)).one()


# Access


@pytest.mark.parametrize("path", [LIST, NEW])
def test_strangers_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login?next=")


PAGES: dict[str, set[OperatorRole]] = {LIST: {ADMIN, AUDITOR}, NEW: {ADMIN}}


@pytest.mark.parametrize("role", list(OperatorRole))
def test_each_role_opens_exactly_its_pages(
    client: FlaskClient, session: Session, store: Store, role: OperatorRole
) -> None:
    sign_in(client, session, role, store)

    for path, allowed in PAGES.items():
        response = client.get(path)
        assert response.status_code == (200 if role in allowed else 403), (path, role)
        if role not in allowed:
            assert "无权" in response.get_data(as_text=True)
    assert ("POS 终端</a>" in client.get("/console/").get_data(as_text=True)) == (role in PAGES[LIST])


@pytest.mark.parametrize("role", [MARKETING, STORE_MANAGER, AUDITOR])
def test_only_an_admin_may_change_terminals(
    client: FlaskClient, session: Session, store: Store, role: OperatorRole
) -> None:
    admin_client = client.application.test_client()
    key = create_terminal(admin_client, sign_in(admin_client, session, ADMIN, store), store)
    terminal = terminal_by_key(session, key["key_id"])
    token = sign_in(client, session, role, store)
    audited = count(session, AuditEvent)

    responses = [
        create_form(client, token, store_id=str(store.id), name="2 号收银台"),
        client.post(f"{LIST}/{terminal.id}/key-rotation", data={"csrf_token": token}),
        client.post(f"{LIST}/{terminal.id}/deactivation", data={"csrf_token": token}),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403]
    assert all(key["secret"] not in response.get_data(as_text=True) for response in responses)
    after = terminal_by_key(session, key["key_id"])
    assert count(session, PosTerminal) == 1 and after.is_active and after.rotated_at is None
    assert count(session, AuditEvent) == audited


def test_a_forged_csrf_token_changes_nothing(client: FlaskClient, session: Session, store: Store) -> None:
    sign_in(client, session, ADMIN, store)

    response = create_form(client, "forged", store_id=str(store.id), name="1 号收银台")

    assert response.status_code == 403 and count(session, PosTerminal) == 0


# Creating: the secret, once


def test_a_new_terminal_shows_its_secret_once_and_the_secret_signs_sales(
    client: FlaskClient, session: Session, store: Store
) -> None:
    token = sign_in(client, session, ADMIN, store)

    response = create_form(client, token, store_id=str(store.id), name="1 号收银台")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "不会再次显示" in html and "X-Signature" in html and "/api/pos/v1/purchases" in html
    key = issued_key(response)
    terminal = terminal_by_key(session, key["key_id"])
    assert (terminal.store_id, terminal.name, terminal.is_active) == (store.id, "1 号收银台", True)
    sold = post_signed(client, key, PURCHASES, sale("R-1"))
    assert sold.status_code == 201, sold.get_json()
    assert sold.get_json()["purchase"]["store_id"] == store.id
    # The list names the terminal and its key id, never the secret again.
    listed = client.get(LIST).get_data(as_text=True)
    assert "1 号收银台" in listed and key["key_id"] in listed and key["secret"] not in listed
    (row,) = audit_rows(session, "pos_terminal.create")
    assert row.operator_id == operator_id(session, ADMIN) and row.target_id == str(terminal.id)
    assert row.detail == {"store_id": store.id, "name": "1 号收银台", "key_id": key["key_id"]}
    assert key["secret"] not in str(row.detail)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "终端名称：必填"),
        ({"name": "   "}, "终端名称：必填"),
        ({"name": "收" * 65}, "终端名称：长度"),
        ({"store_id": ""}, "所属门店：必填"),
        ({"store_id": "999999"}, "门店不存在"),
        ({"store_id": "abc"}, "所属门店："),
    ],
)
def test_bad_input_is_refused_on_the_form(
    client: FlaskClient, session: Session, store: Store, fields: dict[str, str], message: str
) -> None:
    token = sign_in(client, session, ADMIN, store)
    data = {"store_id": str(store.id), "name": "1 号收银台", **fields}

    response = create_form(client, token, **data)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'name="name"' in html
    assert "data-secret" not in html
    assert count(session, PosTerminal) == 0 and count(session, AuditEvent) == 0


def test_the_form_keeps_what_was_typed(client: FlaskClient, session: Session, store: Store) -> None:
    token = sign_in(client, session, ADMIN, store)

    response = create_form(client, token, store_id="999999", name="前台收银")

    assert 'value="前台收银"' in response.get_data(as_text=True)


# Rotating and deactivating


def test_rotating_the_key_refuses_the_old_one_and_shows_the_new_one_once(
    client: FlaskClient, session: Session, store: Store
) -> None:
    token = sign_in(client, session, ADMIN, store)
    old = create_terminal(client, token, store)
    terminal_id = terminal_by_key(session, old["key_id"]).id

    response = client.post(f"{LIST}/{terminal_id}/key-rotation", data={"csrf_token": token})

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "旧密钥已立即失效" in response.get_data(as_text=True)
    new = issued_key(response)
    assert new["key_id"] != old["key_id"] and new["secret"] != old["secret"]
    refused = post_signed(client, old, PURCHASES, sale("R-1"))
    assert refused.status_code == 401 and refused.get_json()["code"] == "SIGNATURE_INVALID"
    assert post_signed(client, new, PURCHASES, sale("R-1")).status_code == 201
    terminal = terminal_by_key(session, new["key_id"])
    assert terminal.id == terminal_id and terminal.rotated_at is not None
    listed = client.get(LIST).get_data(as_text=True)
    assert new["key_id"] in listed and old["key_id"] not in listed and new["secret"] not in listed
    (row,) = audit_rows(session, "pos_terminal.rotate_key")
    assert row.operator_id == operator_id(session, ADMIN) and row.target_id == str(terminal_id)
    assert row.detail == {"key_id": [old["key_id"], new["key_id"]]}


def test_a_deactivated_terminal_is_refused_and_cannot_get_a_new_key(
    client: FlaskClient, session: Session, store: Store
) -> None:
    token = sign_in(client, session, ADMIN, store)
    key = create_terminal(client, token, store)
    terminal_id = terminal_by_key(session, key["key_id"]).id

    response = client.post(f"{LIST}/{terminal_id}/deactivation", data={"csrf_token": token})

    assert response.status_code == 302 and response.headers["Location"].startswith(LIST)
    refused = post_signed(client, key, PURCHASES, sale("R-1"))
    assert refused.status_code == 401
    assert not terminal_by_key(session, key["key_id"]).is_active
    listed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已停用终端 1 号收银台" in listed and '<td class="status-cell">已停用</td>' in listed
    again = client.post(f"{LIST}/{terminal_id}/deactivation", data={"csrf_token": token})
    assert again.status_code == 302
    rotated = client.post(f"{LIST}/{terminal_id}/key-rotation", data={"csrf_token": token})
    assert rotated.status_code == 409 and "已停用" in rotated.get_data(as_text=True)
    assert "data-secret" not in rotated.get_data(as_text=True)
    assert terminal_by_key(session, key["key_id"]).rotated_at is None
    (row,) = audit_rows(session, "pos_terminal.deactivate")
    assert row.operator_id == operator_id(session, ADMIN) and row.target_id == str(terminal_id)
    assert audit_rows(session, "pos_terminal.rotate_key") == []


@pytest.mark.parametrize("action", ["key-rotation", "deactivation"])
def test_an_unknown_terminal_is_not_found(
    client: FlaskClient, session: Session, store: Store, action: str
) -> None:
    token = sign_in(client, session, ADMIN, store)

    response = client.post(f"{LIST}/999999/{action}", data={"csrf_token": token})

    assert response.status_code == 404 and "POS 终端不存在" in response.get_data(as_text=True)


# The list


def test_the_list_filters_by_store_and_auditors_see_no_buttons(
    app: Any, client: FlaskClient, session: Session, store: Store, other_store: Store
) -> None:
    admin = app.test_client()
    token = sign_in(admin, session, ADMIN, store)
    ours = create_terminal(admin, token, store, "本店收银台")
    theirs = create_terminal(admin, token, other_store, "他店收银台")
    sign_in(client, session, AUDITOR, store)

    everything = client.get(LIST).get_data(as_text=True)
    filtered = client.get(LIST, query_string={"store_id": store.id}).get_data(as_text=True)

    assert ours["key_id"] in everything and theirs["key_id"] in everything
    assert ours["key_id"] in filtered and theirs["key_id"] not in filtered
    assert "/key-rotation" not in everything and "/deactivation" not in everything
    assert "新建终端" not in everything
    assert "/key-rotation" in admin.get(LIST).get_data(as_text=True)
    assert client.get(LIST, query_string={"store_id": "x"}).status_code == 422

"""`flask keys rotate`: phones sealed under key 1 (with and without a key id) are re-encrypted under
the new current key in batches; every phone still reads back the same through the console, search by
phone still finds them (the blind index does not change), a second run changes nothing, and a stopped
run carries on."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import bound_database
from app.extensions import extensions
from app.models import Member, OperatorRole
from app.services import phone_keys
from tests import factories
from tests.app.console.console_flows import PASSWORD, csrf_of, log_in
from tests.flows import registered_shopper

NEW_KEY = base64.b64encode(os.urandom(32)).decode()
PHONES = [f"1390000{n:04d}" for n in range(7)]


def unversioned_ciphertext(config: Config, phone: str) -> bytes:
    """A phone sealed the way it was before key ids: nonce + AES-GCM, under PHONE_ENCRYPTION_KEY."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    aead = AESGCM(base64.b64decode(config.PHONE_ENCRYPTION_KEY))
    return nonce + aead.encrypt(nonce, phone.encode(), b"phone")


@pytest.fixture
def members_under_key_1(app: Flask, client: FlaskClient, session: Session, config: Config) -> list[int]:
    """Seven members: one signed up through the mini-program, three written by the vault of key 1,
    three with ciphertexts from before key ids."""
    tier = factories.create_tiers(session)[0]
    with app.app_context():
        vault = extensions().phone_vault
    registered_shopper(client, "o-rotate-shopper", PHONES[0])
    ids = [session.scalars(select(Member.id).where(Member.phone_index == vault.blind_index(PHONES[0]))).one()]
    for phone in PHONES[1:4]:
        ids.append(factories.create_member(session, vault, phone, tier).id)
    for phone in PHONES[4:]:
        member = factories.create_member(session, vault, phone, tier)
        member.phone_ciphertext = unversioned_ciphertext(config, phone)
        session.flush()
        ids.append(member.id)
    return ids


@pytest.fixture
def rotated_app(config: Config) -> Iterator[Flask]:
    """The same database, with key 2 current and key 1 (PHONE_ENCRYPTION_KEY) kept for reading."""
    app = create_app(config.with_overrides(PHONE_ENCRYPTION_KEYS=f"2:{NEW_KEY}"))
    yield app
    bound_database(app).engine.dispose()


def rotate(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["keys", "rotate", *args])


def ciphertexts(session: Session) -> dict[int, bytes]:
    session.expire_all()
    return dict(session.execute(select(Member.id, Member.phone_ciphertext)).all())


def blind_indexes(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Member.id, Member.phone_index)).all())


def admin_signed_in(client: FlaskClient, session: Session) -> str:
    """A new admin (each app under test gets its own) signed in to the console; their CSRF token."""
    username = f"admin-{os.urandom(4).hex()}"
    factories.create_operator(session, username, PASSWORD, role=OperatorRole.ADMIN)
    assert log_in(client, username).status_code == 302
    return csrf_of(client.get("/console/").get_data(as_text=True))


def revealed_phones(app: Flask, session: Session, member_ids: list[int]) -> list[str]:
    """Each member's full phone as an admin reveals it in the console."""
    client = app.test_client()
    token = admin_signed_in(client, session)
    phones = []
    for member_id in member_ids:
        response = client.post(
            f"/console/members/{member_id}/phone", headers={"X-CSRF-Token": token, "HX-Request": "true"}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        phones.append(next(phone for phone in PHONES if phone in response.get_data(as_text=True)))
    return phones


def test_rotation_re_encrypts_every_phone_under_the_new_key_in_batches(
    rotated_app: Flask, session: Session, members_under_key_1: list[int]
) -> None:
    indexes_before = blind_indexes(session)
    assert {ciphertext[0] for ciphertext in ciphertexts(session).values() if len(ciphertext) == 40} == {1}

    result = rotate(rotated_app, "--batch-size", "3")

    assert result.exit_code == 0, result.output
    assert "7 members' phones to re-encrypt under key 2" in result.output
    assert "3/7 re-encrypted" in result.output and "6/7 re-encrypted" in result.output
    assert "done: 7 re-encrypted under key 2" in result.output
    after = ciphertexts(session)
    assert {len(ciphertext) for ciphertext in after.values()} == {40}
    assert {ciphertext[0] for ciphertext in after.values()} == {2}
    assert blind_indexes(session) == indexes_before
    assert revealed_phones(rotated_app, session, members_under_key_1) == PHONES


def test_the_new_key_alone_reads_rotated_phones_and_search_by_phone_still_finds_them(
    rotated_app: Flask, session: Session, members_under_key_1: list[int], config: Config
) -> None:
    assert rotate(rotated_app).exit_code == 0
    # Key 1 retired: a keyring with key 2 only (and key 1 a different, unrelated key).
    other = base64.b64encode(os.urandom(32)).decode()
    only_new = create_app(config.with_overrides(PHONE_ENCRYPTION_KEYS=f"2:{NEW_KEY},1:{other}"))
    try:
        assert revealed_phones(only_new, session, members_under_key_1) == PHONES
        client = only_new.test_client()
        token = admin_signed_in(client, session)
        found = client.post("/console/members", data={"csrf_token": token, "q": PHONES[5], "by": "phone"})
        assert f'href="/console/members/{members_under_key_1[5]}"' in found.get_data(as_text=True)
    finally:
        bound_database(only_new).engine.dispose()


def test_a_second_run_changes_nothing(
    rotated_app: Flask, session: Session, members_under_key_1: list[int]
) -> None:
    assert rotate(rotated_app).exit_code == 0
    once = ciphertexts(session)

    again = rotate(rotated_app)

    assert again.exit_code == 0, again.output
    assert "0 members' phones to re-encrypt" in again.output
    assert ciphertexts(session) == once


def test_a_stopped_rotation_carries_on_where_it_stopped(
    rotated_app: Flask, session: Session, members_under_key_1: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_batch = phone_keys.rotate_batch
    calls = []

    def stops_after_one_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["after_id"])
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(phone_keys, "rotate_batch", stops_after_one_batch)
    stopped = rotate(rotated_app, "--batch-size", "2")
    assert stopped.exit_code != 0
    first_batch = ciphertexts(session)
    monkeypatch.setattr(phone_keys, "rotate_batch", real_batch)

    resumed = rotate(rotated_app, "--batch-size", "2")

    assert resumed.exit_code == 0, resumed.output
    assert "5 members' phones to re-encrypt under key 2" in resumed.output
    after = ciphertexts(session)
    assert {ciphertext[0] for ciphertext in after.values()} == {2}
    # The first batch was not redone.
    done_first = [id_ for id_, sealed in first_batch.items() if len(sealed) == 40 and sealed[0] == 2]
    assert len(done_first) == 2
    assert all(after[member_id] == first_batch[member_id] for member_id in done_first)
    assert revealed_phones(rotated_app, session, members_under_key_1) == PHONES


def test_new_members_are_sealed_under_the_current_key(
    rotated_app: Flask, session: Session, members_under_key_1: list[int]
) -> None:
    _, member = registered_shopper(rotated_app.test_client(), "o-after-rotation", "13912345678")

    newest = max(ciphertexts(session).items())[1]
    assert newest[0] == 2
    assert "13912345678" not in str(member)


def test_a_phone_under_a_key_no_longer_configured_stops_the_rotation_and_says_which(
    rotated_app: Flask, session: Session, members_under_key_1: list[int], config: Config
) -> None:
    assert rotate(rotated_app, "--batch-size", "3").exit_code == 0
    before = ciphertexts(session)
    key_3 = base64.b64encode(os.urandom(32)).decode()
    without_key_2 = create_app(config.with_overrides(PHONE_ENCRYPTION_KEYS=f"3:{key_3}"))
    try:
        result = rotate(without_key_2)
    finally:
        bound_database(without_key_2).engine.dispose()

    assert result.exit_code == 1
    assert "under key 2, which is not configured" in result.output
    assert ciphertexts(session) == before


def test_a_wrong_key_under_an_old_id_stops_the_rotation_before_changing_anything(
    members_under_key_1: list[int], session: Session, config: Config
) -> None:
    before = ciphertexts(session)
    not_key_1 = base64.b64encode(os.urandom(32)).decode()
    misconfigured = create_app(config.with_overrides(PHONE_ENCRYPTION_KEYS=f"2:{NEW_KEY},1:{not_key_1}"))
    try:
        result = rotate(misconfigured)
    finally:
        bound_database(misconfigured).engine.dispose()

    assert result.exit_code == 1
    assert "does not open with the key configured as key 1" in result.output
    assert ciphertexts(session) == before


def test_deleted_members_erased_phones_are_left_alone(
    rotated_app: Flask, session: Session, members_under_key_1: list[int]
) -> None:
    deleted = session.get(Member, members_under_key_1[0])
    assert deleted is not None
    deleted.phone_ciphertext, deleted.deleted_at = b"", datetime.now(UTC)  # as personal_data.erase leaves it
    session.flush()

    result = rotate(rotated_app)

    assert result.exit_code == 0, result.output
    assert f"{len(members_under_key_1) - 1} members' phones to re-encrypt" in result.output
    assert ciphertexts(session)[deleted.id] == b""

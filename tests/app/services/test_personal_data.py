"""Personal data (PIPL) beyond the shopper's own requests: the retention purge of inactive members
(with a fake clock), deletion of a member that others were merged into, and the FK decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import create_app, jobs
from app.config import Config
from app.db import Base, bound_database, run_transaction, utcnow
from app.mall_time import MallTime
from app.models import AuditEvent, Member, Purchase, Tier, WeChatAccount
from app.sandbox import SandboxProcess
from app.services import member_merge, personal_data
from tests import factories
from tests.flows import bearer, registered_shopper, shopper_login, sign_up

SHANGHAI = ZoneInfo("Asia/Shanghai")
RETENTION_DAYS = 365


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(RETENTION_INACTIVE_DAYS=RETENTION_DAYS)


@pytest.fixture
def mall(app: Flask, session: Session) -> None:
    factories.create_tiers(session)
    factories.create_store(session)
    session.commit()


def run_purge(app: Flask, monkeypatch: pytest.MonkeyPatch, at: datetime) -> str:
    monkeypatch.setattr(jobs, "mall_time", lambda: MallTime(at, SHANGHAI))
    result = app.test_cli_runner().invoke(args=["jobs", "run", "purge-personal-data"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def assert_books_balance(app: Flask) -> None:
    for group in ("points", "coupons"):
        result = app.test_cli_runner().invoke(args=[group, "verify"])
        assert result.exit_code == 0, result.output


def test_every_foreign_key_to_members_has_a_deletion_decision() -> None:
    """A new table referencing members must be decided on in personal_data.FK_DECISIONS."""
    in_metadata = {
        (table.name, fk.parent.name)
        for table in Base.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column.table.name == "members"
    }
    assert in_metadata == set(personal_data.FK_DECISIONS)


def test_the_purge_anonymises_members_inactive_beyond_the_retention_period_only(
    app: Flask, client: FlaskClient, session: Session, mall: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle_token, idle = registered_shopper(client, "o-idle", "13700137001", nickname="沉睡")
    busy_token, busy = registered_shopper(client, "o-busy", "13700137002", nickname="常客")
    later = utcnow() + timedelta(days=RETENTION_DAYS + 30)
    # The busy member bought something 10 days before the purge runs.
    store = factories.create_store(session)
    bought_at = later - timedelta(days=10)
    session.add(
        Purchase(
            member_id=busy["id"], store_id=store.id, receipt_no="R-1", amount_fen=100, purchased_at=bought_at
        )
    )
    session.commit()

    outcome = run_purge(app, monkeypatch, later)

    assert "anonymised 1 members" in outcome
    assert client.get("/api/mp/v1/me", headers=bearer(idle_token)).status_code == 401
    assert client.get("/api/mp/v1/me", headers=bearer(busy_token)).get_json()["nickname"] == "常客"
    purged = session.get_one(Member, idle["id"], populate_existing=True)
    assert purged.deleted_at is not None and purged.nickname is None and purged.phone_masked == "已注销"
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "member.delete")).one()
    assert (audit.target_id, audit.detail["reason"]) == (str(idle["id"]), "retention")
    assert_books_balance(app)
    # Running again finds nobody new; the phone can join again as a new member.
    assert "anonymised 0 members" in run_purge(app, monkeypatch, later)
    token = shopper_login(client, "o-idle")["token"]
    again = sign_up(client, token, "13700137001")
    assert again.status_code == 201 and again.get_json()["id"] != idle["id"]


def test_a_recent_login_keeps_a_member(
    app: Flask, client: FlaskClient, session: Session, mall: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, member = registered_shopper(client, "o-returning", "13700137003")
    later = utcnow() + timedelta(days=RETENTION_DAYS + 30)
    session.execute(
        update(WeChatAccount)
        .where(WeChatAccount.member_id == member["id"])
        .values(last_login_at=later - timedelta(days=1))
    )

    assert "anonymised 0 members" in run_purge(app, monkeypatch, later)
    assert client.get("/api/mp/v1/me", headers=bearer(token)).status_code == 200


def test_the_purge_is_off_by_default(
    config: Config, sandbox: SandboxProcess, session: Session, mall: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(config.with_overrides(RETENTION_INACTIVE_DAYS=0))
    try:
        token, _ = registered_shopper(app.test_client(), "o-kept", "13700137004")
        outcome = run_purge(app, monkeypatch, utcnow() + timedelta(days=3650))
        assert "off" in outcome
        assert app.test_client().get("/api/mp/v1/me", headers=bearer(token)).status_code == 200
    finally:
        bound_database(app).engine.dispose()


def test_deleting_a_survivor_anonymises_the_members_merged_into_it(
    app: Flask, client: FlaskClient, session: Session, mall: None
) -> None:
    token, survivor = registered_shopper(client, "o-survivor", "13700137005", nickname="新号")
    tier = session.get_one(Tier, session.scalars(select(Member.tier_id)).first())
    with app.app_context():
        from app.extensions import extensions

        vault = extensions().phone_vault
    old = factories.create_member(session, vault, "13700137006", tier, nickname="旧号")
    session.commit()
    at = MallTime(datetime.now(UTC), SHANGHAI)
    run_transaction(lambda s: member_merge.merge(s, survivor["id"], old.id, operator_id=None, at=at), app=app)

    assert client.delete("/api/mp/v1/me", headers=bearer(token)).status_code == 200

    merged = session.get_one(Member, old.id, populate_existing=True)
    assert merged.deleted_at is not None and merged.nickname is None
    assert merged.phone_index == f"deleted:{old.id}"
    # Both phones are free again.
    token = shopper_login(client, "o-another")["token"]
    assert sign_up(client, token, "13700137006").status_code == 201
    assert_books_balance(app)

"""With REPORT_DATABASE_URL set, the dashboard, the KPI API and exports read the replica, in read-only
transactions; sign-ins, audit records and every change still go to the primary. Unset, reports read
the primary.

The "replica" here is a second database holding other figures than the primary, so a page shows
which one it read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from io import BytesIO

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import create_app
from app.cli import alembic_config
from app.config import Config
from app.db import Base, bound_database, report_transaction
from app.extensions import extensions
from app.models import AuditEvent, OperatorRole, Store
from app.models.kpi import MALL_WIDE, KpiDaily
from tests import factories, flows
from tests.app.console.console_flows import signed_in

CARD = re.compile(r'<div class="label">([^<]+)</div><div class="value">([^<]+)</div>')
DAY = date(2026, 11, 2)
RANGE = "from=2026-11-01&to=2026-11-02"


@pytest.fixture(scope="session")
def replica_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('replica') / 'replica.db'}"
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def replica(replica_url: str) -> Iterator[Session]:
    engine = create_engine(replica_url)
    with Session(engine) as session:
        yield session
        session.rollback()
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        session.commit()
    engine.dispose()


@pytest.fixture
def reporting_app(app: Flask, config: Config, replica_url: str) -> Iterator[Flask]:
    """An app whose reports read the replica (`app` empties the primary afterwards)."""
    reporting = create_app(config.with_overrides(REPORT_DATABASE_URL=replica_url))
    yield reporting
    bound_database(reporting).dispose()


def snapshot(session: Session, members_total: int) -> None:
    session.add(KpiDaily(business_date=DAY, store_id=MALL_WIDE, members_total=members_total))
    session.commit()


def test_the_dashboard_reads_the_replica(reporting_app: Flask, session: Session, replica: Session) -> None:
    snapshot(session, 111)
    snapshot(replica, 777)
    client = reporting_app.test_client()
    signed_in(client, session, OperatorRole.ADMIN)  # the operator exists on the primary only

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    assert dict(CARD.findall(html))["会员总数"] == "777"


def test_without_a_replica_the_dashboard_reads_the_primary(
    client: FlaskClient, session: Session, replica: Session
) -> None:
    snapshot(session, 111)
    snapshot(replica, 777)
    signed_in(client, session, OperatorRole.ADMIN)

    html = client.get(f"/console/?{RANGE}").get_data(as_text=True)

    assert dict(CARD.findall(html))["会员总数"] == "111"


def test_the_kpi_api_reads_the_replica(reporting_app: Flask, session: Session, replica: Session) -> None:
    snapshot(session, 111)
    snapshot(replica, 777)
    factories.create_operator(session)
    session.commit()
    client = reporting_app.test_client()
    token = flows.operator_login(client)

    response = client.get(f"/api/admin/v1/kpis?{RANGE}", headers=flows.bearer(token))

    assert response.status_code == 200
    assert [day["members_total"] for day in response.get_json()] == [777]


def test_a_member_export_reads_the_replica_and_audits_on_the_primary(
    reporting_app: Flask, session: Session, replica: Session
) -> None:
    with reporting_app.app_context():
        vault = extensions().phone_vault
    for database, nickname in ((session, "主库会员"), (replica, "从库会员")):
        factories.create_member(
            database, vault, "13900000001", factories.create_tiers(database)[0], nickname=nickname
        )
    session.commit()
    replica.commit()
    client = reporting_app.test_client()
    csrf = signed_in(client, session, OperatorRole.ADMIN)

    response = client.post("/console/members/export", data={"q": "", "by": "auto", "csrf_token": csrf})

    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    sheet = load_workbook(BytesIO(response.data)).active
    assert sheet is not None
    cells = {str(cell) for row in sheet.iter_rows(values_only=True) for cell in row}
    assert "从库会员" in cells and "主库会员" not in cells
    assert session.scalar(select(func.count()).where(AuditEvent.action == "member.export")) == 1
    assert replica.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_report_transactions_refuse_writes(config: Config, database_url: str, app: Flask) -> None:
    # The primary itself as the "replica": the engine, not the server, must refuse the write.
    reporting = create_app(config.with_overrides(REPORT_DATABASE_URL=database_url))

    with pytest.raises(DBAPIError), report_transaction(reporting) as session:
        session.execute(insert(Store).values(code="RO-1", name="只读", category="服饰"))

    with report_transaction(reporting) as session:
        assert session.scalar(select(func.count()).select_from(Store)) == 0
    bound_database(reporting).dispose()

"""The console's 数据导入: an admin uploads a file, the run-imports job loads it, the list shows the
outcome, the report downloads; a broken file is refused at upload; roles and the audit log."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import jobs
from app.config import Config
from app.models import AuditEvent, ImportJob, ImportStatus, Member, OperatorRole
from tests import factories
from tests.app.console.console_flows import signed_in

MEMBERS_CSV = "手机号,姓名,积分\n13800138000,张三,300\n12345,坏号,\n13900139000,李四,\n".encode("gbk")


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    return config.with_overrides(IMPORT_DIR=str(tmp_path / "uploads"))


def upload(client: FlaskClient, csrf: str, content: bytes, name: str = "crm.csv", **fields: str) -> object:
    data = {"csrf_token": csrf, "kind": "members", "file": (io.BytesIO(content), name), **fields}
    return client.post("/console/imports", data=data, content_type="multipart/form-data")


def test_an_uploaded_file_is_loaded_by_the_job_and_its_report_downloads(
    app: Flask, client: FlaskClient, session: Session, config: Config
) -> None:
    factories.create_tiers(session)
    csrf = signed_in(client, session, OperatorRole.ADMIN)

    response = upload(client, csrf, MEMBERS_CSV)

    assert response.status_code == 302
    job = session.scalars(select(ImportJob)).one()
    assert job.status is ImportStatus.QUEUED and job.operator_id is not None
    assert Path(job.stored_path).exists()
    queued = client.get("/console/imports").get_data(as_text=True)
    assert "排队中" in queued and 'hx-trigger="every 2s"' in queued

    with app.app_context():
        outcome = jobs.run_job(app, "run-imports")

    assert f"import {job.id}: 3 rows, 2 new, 1 rejected" in outcome
    assert session.scalar(select(func.count()).select_from(Member)) == 2
    session.expire_all()
    assert not Path(job.stored_path).exists()  # loaded: the upload is not kept
    row = client.get(f"/console/imports/{job.id}/progress").get_data(as_text=True)
    assert "已完成" in row and "新增 2" in row and "未导入 1" in row and "hx-trigger" not in row
    report = client.get(f"/console/imports/{job.id}/report.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    text = report.get_data().decode("utf-8-sig")
    assert "手机号无效" in text and "坏号" in text
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"import.create", "import.download_report"} <= actions


def test_a_file_without_the_required_column_is_refused_at_upload(
    app: Flask, client: FlaskClient, session: Session, config: Config
) -> None:
    csrf = signed_in(client, session, OperatorRole.ADMIN)

    response = upload(client, csrf, "姓名\n张三\n".encode())

    assert response.status_code == 422
    assert "文件缺少必需的列：手机号" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0
    assert list((Path(config.IMPORT_DIR)).glob("*")) == []

    mapped = upload(client, csrf, "电话,名字\n13800138000,甲\n".encode(), mapping="phone=电话\nname=名字")
    assert mapped.status_code == 302
    bad_mapping = upload(client, csrf, b"x", mapping="no equals sign")
    assert bad_mapping.status_code == 422
    assert "列映射第 1 行应为「字段=列名」" in bad_mapping.get_data(as_text=True)


def test_uploading_the_same_file_again_while_it_waits_resumes_the_same_job(
    app: Flask, client: FlaskClient, session: Session, config: Config
) -> None:
    csrf = signed_in(client, session, OperatorRole.ADMIN)
    assert upload(client, csrf, MEMBERS_CSV).status_code == 302
    assert upload(client, csrf, MEMBERS_CSV, name="again.csv").status_code == 302
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 1
    assert len(list(Path(config.IMPORT_DIR).glob("*"))) == 1


@pytest.mark.parametrize(
    ("role", "view", "upload_status"),
    [
        (OperatorRole.ADMIN, 200, 302),
        (OperatorRole.AUDITOR, 200, 403),
        (OperatorRole.MARKETING, 403, 403),
        (OperatorRole.STORE_MANAGER, 403, 403),
    ],
)
def test_who_may_see_and_upload_imports(
    app: Flask,
    client: FlaskClient,
    session: Session,
    config: Config,
    role: OperatorRole,
    view: int,
    upload_status: int,
) -> None:
    store = factories.create_store(session)
    overrides = {"store_id": store.id} if role is OperatorRole.STORE_MANAGER else {}
    csrf = signed_in(client, session, role, **overrides)
    assert client.get("/console/imports").status_code == view
    assert upload(client, csrf, MEMBERS_CSV).status_code == upload_status


def test_a_running_import_shows_its_speed_and_time_left(
    app: Flask, client: FlaskClient, session: Session, config: Config
) -> None:
    csrf = signed_in(client, session, OperatorRole.ADMIN)
    assert upload(client, csrf, MEMBERS_CSV).status_code == 302
    job = session.scalars(select(ImportJob)).one()
    started = datetime.now(UTC) - timedelta(seconds=10)
    # A resumed CSV import: 1,000 rows before this run, 20,000 in its 10 s; a fifth of the file left.
    job.status, job.started_at, job.heartbeat_at = (
        ImportStatus.RUNNING,
        started,
        started + timedelta(seconds=10),
    )
    job.rows_at_start, job.rows_done, job.file_size, job.bytes_done = 1_000, 21_000, 1_000_000, 800_000
    session.flush()

    row = client.get(f"/console/imports/{job.id}/progress").get_data(as_text=True)

    assert "导入中" in row and "已处理 21000 行" in row
    # 2,000 rows/s; 200,000 bytes left at 800,000 / 21,000 bytes a row ≈ 5,250 rows ≈ 3 s.
    assert "2,000 行/秒，预计剩余 3 秒" in row
    assert 'hx-trigger="every 2s"' in row

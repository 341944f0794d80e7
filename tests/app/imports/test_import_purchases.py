"""`flask import purchases`: historical sales by phone or without a member, idempotent by (store, receipt),
conflicts and bad rows reported, Excel cells, and stats picking them up."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import pytest
from flask import Flask
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db import run_transaction, transaction
from app.extensions import extensions, mall_time
from app.models import ImportJob, ImportKind, Member, PointsEntry, Purchase, Store, Tier
from app.services import import_purchases, imports, member_merge, personal_data
from tests import factories
from tests.app.imports.import_flows import import_file, report_rows, write_csv

HEADER = ["门店编码", "小票号", "消费金额", "消费时间", "手机号"]


@pytest.fixture
def mall(app: Flask, session: Session) -> tuple[Store, Member, Tier]:
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, code="F1-01", name="优衣库")
    with app.app_context():
        vault = extensions().phone_vault
    member = factories.create_member(session, vault, "13800138000", tiers[0])
    return store, member, tiers[0]


def purchases(session: Session) -> list[Purchase]:
    session.expire_all()
    return list(session.scalars(select(Purchase).order_by(Purchase.receipt_no)))


def test_purchases_load_for_members_and_non_members_in_fen_and_utc_without_points(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    store, member, _ = mall
    path = write_csv(
        tmp_path / "pos.csv",
        [
            HEADER,
            ["F1-01", "R001", "128.50", "2026-03-01 14:30:00", "+86 138 0013 8000"],
            ["优衣库", "R002", "￥1,000", "2026/03/02 09:00:00", ""],
        ],
        encoding="gbk",
    )

    result = import_file(app, "purchases", path)

    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    first, second = purchases(session)
    assert (first.store_id, first.member_id, first.amount_fen, first.points_earned) == (
        store.id,
        member.id,
        12850,
        0,
    )
    assert first.purchased_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai
    assert (second.member_id, second.amount_fen) == (None, 100000)  # a non-member sale, found by store name
    assert session.scalar(select(func.count()).select_from(PointsEntry)) == 0
    session.expire_all()
    assert session.get(Member, member.id).points_balance == 0


def test_reimporting_changes_nothing_and_differing_receipts_are_conflicts(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    rows = [
        HEADER,
        ["F1-01", "R001", "100.00", "2026-03-01 14:30:00", "13800138000"],
        ["F1-01", "R001", "100.00", "2026-03-01 14:30:00", "13800138000"],  # the same row twice
        ["F1-01", "R002", "50.00", "2026-03-01 15:00:00", ""],
        ["F1-01", "R002", "60.00", "2026-03-01 15:00:00", ""],  # same receipt, another amount
    ]
    path = write_csv(tmp_path / "pos.csv", rows)

    first = import_file(app, "purchases", path)
    again = import_file(app, "purchases", path)

    assert "2 created, 0 merged, 2 unchanged, 0 rejected, 1 conflicts" in first.output
    assert "0 created, 0 merged, 4 unchanged, 0 rejected, 1 conflicts" in again.output
    assert [(p.receipt_no, p.amount_fen) for p in purchases(session)] == [("R001", 10000), ("R002", 5000)]
    assert "与文件第 4 行小票号相同但内容不同" in report_rows(path)[0]["原因"]

    changed = write_csv(tmp_path / "fix.csv", [HEADER, ["F1-01", "R001", "99.00", "2026-03-01 14:30:00", ""]])
    result = import_file(app, "purchases", changed)
    assert "1 conflicts" in result.output
    assert "小票已登记（¥100.00，会员" in report_rows(changed)[0]["原因"]
    assert purchases(session)[0].amount_fen == 10000  # the recorded sale stays


def test_bad_rows_are_rejected_with_reasons(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "pos.csv",
        [
            HEADER,
            ["F1-01", "OK1", "10", "2026-03-01 10:00:00", ""],
            ["NOPE", "X1", "10", "2026-03-01 10:00:00", ""],
            ["F1-01", "X2", "10.005", "2026-03-01 10:00:00", ""],
            ["F1-01", "X3", "0", "2026-03-01 10:00:00", ""],
            ["F1-01", "X4", "10", "明天", ""],
            ["F1-01", "X5", "10", "2999-01-01 10:00:00", ""],
            ["F1-01", "X6", "10", "2026-03-01 10:00:00", "13900139000"],
            ["F1-01", "", "10", "2026-03-01 10:00:00", ""],
        ],
    )

    result = import_file(app, "purchases", path)

    assert result.exit_code == 0, result.output
    assert "1 created" in result.output and "7 rejected" in result.output
    reasons = [row["原因"] for row in report_rows(path)]
    assert reasons == [
        "未知门店「NOPE」（请填门店编码）",
        "金额最多两位小数",
        "金额须大于 0",
        "时间格式错误（如 2026-05-20 14:30:00）",
        "消费时间晚于现在",
        "手机号不是会员（请先导入会员）",
        "缺少小票号",
    ]
    assert report_rows(path)[5]["手机号"] == "139****9000"
    assert [p.receipt_no for p in purchases(session)] == ["OK1"]


def test_excel_datetimes_and_numeric_cells(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    _, member, _ = mall
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["store", "receipt_no", "amount", "purchased_at", "phone"])
    sheet.append(["F1-01", 20260301001, 88.8, datetime(2026, 3, 1, 20, 15), 13800138000])
    path = tmp_path / "pos.xlsx"
    workbook.save(path)

    result = import_file(app, "purchases", path)

    assert result.exit_code == 0, result.output
    (purchase,) = purchases(session)
    assert (purchase.receipt_no, purchase.amount_fen, purchase.member_id) == ("20260301001", 8880, member.id)
    assert purchase.purchased_at == datetime(2026, 3, 1, 12, 15, tzinfo=UTC)
    assert session.scalar(select(ImportJob.rows_total)) == 1


def test_a_garbled_file_fails_with_a_clear_message(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    path = tmp_path / "pos.csv"
    path.write_bytes("门店编码,小票号,消费金额,消费时间\n".encode("utf-16"))
    result = import_file(app, "purchases", path)
    assert result.exit_code != 0
    assert "文件缺少必需的列" in result.output or "编码" in result.output
    assert session.scalar(select(func.count()).select_from(Purchase)) == 0


def test_a_merged_away_members_phone_credits_the_survivor(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    _, survivor, tier = mall
    with app.app_context():
        vault = extensions().phone_vault
    factories.create_member(session, vault, "13700137000", tier, merged_into_member_id=survivor.id)
    row = ["F1-01", "R9", "10", "2026-03-01 10:00:00", "13700137000"]
    path = write_csv(tmp_path / "pos.csv", [HEADER, row])

    assert import_file(app, "purchases", path).exit_code == 0
    assert [p.member_id for p in purchases(session)] == [survivor.id]


@pytest.mark.mariadb
def test_a_server_that_refuses_load_data_local_gets_multi_row_inserts(
    app: Flask,
    session: Session,
    mall: tuple[Store, Member, Tier],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusal = pymysql.err.OperationalError(4166, "The used command is not allowed (local infile disabled)")

    def refuse(*_: object) -> int:
        raise OperationalError("LOAD DATA LOCAL INFILE", {}, refusal)

    monkeypatch.setattr(import_purchases, "_load_data", refuse)
    monkeypatch.setattr(import_purchases, "_local_infile_refused", set())
    path = write_csv(tmp_path / "pos.csv", [HEADER, ["F1-01", "R1", "10", "2026-03-01 10:00:00", ""]])

    result = import_file(app, "purchases", path)

    assert result.exit_code == 0, result.output
    assert [p.receipt_no for p in purchases(session)] == ["R1"]


def _run_pausing_after_first_batch(app: Flask, path: Path, between: Callable[[Session], object]) -> ImportJob:
    """Import `path` one row per batch, calling `between` in its own transaction after the first batch."""
    with app.app_context():
        vault = extensions().phone_vault
        with transaction() as session:
            job_id = imports.prepare(
                session,
                imports.ImportRequest(ImportKind.PURCHASES, path, path.name),
                now=mall_time().now,
            ).id

        def after_batch(progress: imports.Progress) -> None:
            if progress.rows_done == 1:
                run_transaction(between)

        return imports.run(
            job_id,
            path,
            run_in_transaction=run_transaction,
            vault=vault,
            clock=mall_time,
            batch_size=1,
            progress=after_batch,
        )


def test_a_member_merged_during_an_import_is_credited_as_the_survivor_from_then_on(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    _, source, tier = mall
    with app.app_context():
        vault = extensions().phone_vault
    survivor = factories.create_member(session, vault, "13900139000", tier)
    path = write_csv(
        tmp_path / "pos.csv",
        [HEADER] + [["F1-01", f"R{n}", "10", "2026-03-01 10:00:00", "13800138000"] for n in range(1, 4)],
    )

    job = _run_pausing_after_first_batch(
        app,
        path,
        lambda s: member_merge.merge(s, survivor.id, source.id, operator_id=None, at=mall_time()),
    )

    assert (job.created, job.rejected) == (3, 0)
    # R1 was recorded before the merge and moved with it; R2 and R3 went to the survivor directly.
    assert [p.member_id for p in purchases(session)] == [survivor.id] * 3


def test_a_member_deleted_during_an_import_gets_no_further_sales(
    app: Flask, session: Session, mall: tuple[Store, Member, Tier], tmp_path: Path
) -> None:
    _, member, _ = mall
    path = write_csv(
        tmp_path / "pos.csv",
        [HEADER] + [["F1-01", f"R{n}", "10", "2026-03-01 10:00:00", "13800138000"] for n in range(1, 4)],
    )

    job = _run_pausing_after_first_batch(
        app, path, lambda s: personal_data.erase(s, member.id, at=mall_time(), reason="member")
    )

    assert (job.created, job.rejected) == (1, 2)
    assert [p.receipt_no for p in purchases(session)] == ["R1"]


def test_the_reader_hands_the_gil_over_promptly_during_an_import_only(
    app: Flask,
    session: Session,
    mall: tuple[Store, Member, Tier],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[float] = []
    loader = imports.LOADERS[ImportKind.PURCHASES]

    def prepare(*args: object) -> object:
        seen.append(sys.getswitchinterval())
        return loader.prepare(*args)

    monkeypatch.setitem(imports.LOADERS, ImportKind.PURCHASES, replace(loader, prepare=prepare))
    before = sys.getswitchinterval()
    path = write_csv(tmp_path / "pos.csv", [HEADER, ["F1-01", "R001", "10", "2026-03-01 14:30:00", ""]])

    assert import_file(app, "purchases", path).exit_code == 0
    assert seen and all(interval == imports.READER_SWITCH_INTERVAL < before for interval in seen)
    assert sys.getswitchinterval() == before

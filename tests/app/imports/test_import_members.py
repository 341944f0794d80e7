"""`flask import members`: phones normalised, merged into existing members by the documented rule,
opening points as a ledger entry with its own expiry, bad rows reported, re-imports changing nothing,
interrupted imports resuming; CSV in GBK and UTF-8 with BOM, and Excel with real dates."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.extensions import extensions, mall_time
from app.models import (
    ImportJob,
    ImportKind,
    ImportStatus,
    Member,
    MemberSource,
    PointsEntry,
    PointsEntryKind,
    PointsLot,
    Tier,
    TierChange,
)
from app.services import imports, kpis
from tests import factories
from tests.app.imports.import_flows import import_file, members_by_phone, report_rows, write_csv

HEADER = ["手机号", "姓名", "生日", "会员等级", "积分", "积分到期日"]


@pytest.fixture
def tiers(session: Session) -> dict[str, Tier]:
    return {tier.code: tier for tier in factories.create_tiers(session)}


def later(days: int) -> date:
    return date.today() + timedelta(days=days)


def test_gbk_csv_creates_members_with_normalised_phones_tiers_and_opening_points(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    expires = later(400)
    path = write_csv(
        tmp_path / "crm.csv",
        [
            HEADER,
            ["+86 138-0013-8000", "张三", "1990-05-20", "金卡", "1500", expires.isoformat()],
            ["１３９００１３９０００", "李四", "1985/1/2", "", "200", ""],
            ["0086 137 0013 7000", "王五", "", "silver", "", ""],
        ],
        encoding="gbk",
    )

    result = import_file(app, "members", path)

    assert result.exit_code == 0, result.output
    assert "3 created" in result.output
    members = members_by_phone(app, session)
    assert set(members) == {"13800138000", "13900139000", "13700137000"}
    zhang = members["13800138000"]
    assert (zhang.nickname, zhang.birthday, zhang.tier_id, zhang.source) == (
        "张三",
        date(1990, 5, 20),
        tiers["gold"].id,
        MemberSource.IMPORT,
    )
    assert zhang.phone_masked == "138****8000"
    assert members["13900139000"].birthday == date(1985, 1, 2)
    assert members["13900139000"].tier_id == tiers["normal"].id
    assert members["13700137000"].tier_id == tiers["silver"].id
    assert session.scalar(select(TierChange.reason).where(TierChange.member_id == zhang.id)) == "import"

    entry = session.scalars(select(PointsEntry).where(PointsEntry.member_id == zhang.id)).one()
    assert (entry.kind, entry.delta, entry.balance_after) == (PointsEntryKind.OPENING, 1500, 1500)
    assert session.scalar(select(PointsLot.expires_on).where(PointsLot.entry_id == entry.id)) == expires
    # Without an expiry in the file, the mall's rule for points earned today applies.
    li_lot = session.scalars(select(PointsLot).where(PointsLot.member_id == members["13900139000"].id)).one()
    assert li_lot.expires_on == date(mall_time_today(app).year + 1, 12, 31)
    assert zhang.points_balance == 1500
    assert app.test_cli_runner().invoke(args=["points", "verify"]).exit_code == 0
    # Carried over from the old system, not issued today: the dashboard's points flow leaves it out.
    today = mall_time_today(app)
    assert kpis.points_flows(session, today, today)[0].issued == 0


def mall_time_today(app: Flask) -> date:
    with app.app_context():
        return mall_time().today


def test_utf8_bom_csv_and_a_mapping_file(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "export.csv",
        [["Mobile No", "Customer", "DOB"], ["13800138000", "Ann 😀", "2001-02-03"]],
        encoding="utf-8-sig",
    )
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"phone": "Mobile No", "name": "Customer", "birthday": "DOB"}))

    result = import_file(app, "members", path, "--mapping-file", str(mapping))

    assert result.exit_code == 0, result.output
    member = members_by_phone(app, session)["13800138000"]
    assert (member.nickname, member.birthday) == ("Ann 😀", date(2001, 2, 3))


def test_map_flags_and_a_missing_required_column_fail_the_file_clearly(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "x.csv", [["电话号码", "名字"], ["13800138000", "甲"]])

    missing = import_file(app, "members", path)
    assert missing.exit_code != 0
    assert "文件缺少必需的列：手机号" in missing.output
    assert session.scalar(select(ImportJob.status)) is ImportStatus.FAILED

    unknown = import_file(app, "members", path, "--map", "mobile=电话号码")
    assert unknown.exit_code != 0 and "映射中有未知字段：mobile" in unknown.output

    mapped = import_file(app, "members", path, "--map", "phone=电话号码", "--map", "name=名字")
    assert mapped.exit_code == 0, mapped.output
    assert members_by_phone(app, session)["13800138000"].nickname == "甲"


def test_excel_dates_numbers_and_tiers_by_name(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["手机号码", "会员姓名", "出生日期", "卡等级", "可用积分", "入会日期"])
    sheet.append([13800138000, "张三", datetime(1990, 5, 20), "钻石卡", 300, datetime(2019, 3, 1, 10, 0)])
    sheet.append(["13900139000", "李四", 32874, None, None, None])  # an unformatted Excel date: 1990-01-01
    path = tmp_path / "crm.xlsx"
    workbook.save(path)

    result = import_file(app, "members", path)

    assert result.exit_code == 0, result.output
    members = members_by_phone(app, session)
    zhang = members["13800138000"]
    assert (zhang.birthday, zhang.tier_id, zhang.points_balance) == (
        date(1990, 5, 20),
        tiers["diamond"].id,
        300,
    )
    assert zhang.joined_at == datetime(2019, 3, 1, 2, 0, tzinfo=zhang.joined_at.tzinfo)  # 10:00 Shanghai
    assert members["13900139000"].birthday == date(1990, 1, 1)


def test_a_known_phone_merges_into_its_member_by_the_documented_rule(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    with app.app_context():
        vault = extensions().phone_vault
    joined = datetime.fromisoformat("2025-06-01T00:00:00+00:00")
    existing = factories.create_member(
        session, vault, "13800138000", tiers["silver"], nickname="阿三", birthday=None, joined_at=joined
    )
    higher = factories.create_member(session, vault, "13900139000", tiers["gold"], nickname="李四")
    path = write_csv(
        tmp_path / "crm.csv",
        [
            [*HEADER, "入会时间"],
            ["13800138000", "张三", "1990-05-20", "金卡", "800", "", "2018-01-01 09:00:00"],
            ["13900139000", "李四", "", "普卡", "", "", ""],
        ],
    )

    result = import_file(app, "members", path)

    assert result.exit_code == 0, result.output
    assert session.scalar(select(func.count()).select_from(Member)) == 2  # no duplicate member
    session.expire_all()
    merged = session.get(Member, existing.id)
    assert merged is not None
    assert merged.nickname == "阿三"  # the member's own name wins
    assert merged.birthday == date(1990, 5, 20)  # an empty field is filled
    assert merged.tier_id == tiers["gold"].id  # raised
    assert merged.joined_at.year == 2018  # the earlier date
    assert merged.points_balance == 800
    assert session.get(Member, higher.id).tier_id == tiers["gold"].id  # never lowered
    assert "0 created, 1 merged, 1 unchanged" in result.output
    conflicts = {row["行号"]: row["原因"] for row in report_rows(path)}
    assert "姓名：保留「阿三」，文件为「张三」" in conflicts["2"]
    assert "等级：保留「金卡」，文件为「普卡」" in conflicts["3"]


def test_a_merged_away_members_phone_updates_the_survivor(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    with app.app_context():
        vault = extensions().phone_vault
    survivor = factories.create_member(session, vault, "13900139000", tiers["normal"])
    factories.create_member(session, vault, "13800138000", tiers["normal"], merged_into_member_id=survivor.id)
    path = write_csv(tmp_path / "crm.csv", [HEADER, ["13800138000", "张三", "", "", "100", ""]])

    assert import_file(app, "members", path).exit_code == 0
    session.expire_all()
    assert session.get(Member, survivor.id).points_balance == 100
    assert session.get(Member, survivor.id).nickname == "张三"


def test_duplicate_rows_and_reimports_change_nothing(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    rows = [HEADER, ["13800138000", "张三", "", "", "500", ""], ["138 0013 8000", "张三", "", "", "500", ""]]
    path = write_csv(tmp_path / "crm.csv", rows)

    first = import_file(app, "members", path)
    again = import_file(app, "members", path)

    assert "1 created" in first.output and "1 unchanged" in first.output
    assert "0 created, 0 merged, 2 unchanged, 0 rejected, 0 conflicts" in again.output
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    assert session.scalar(select(func.count()).select_from(PointsEntry)) == 1
    assert members_by_phone(app, session)["13800138000"].points_balance == 500

    # Another file of the same source with another balance: listed, not credited a second time.
    changed = write_csv(tmp_path / "crm2.csv", [HEADER, ["13800138000", "张三", "", "", "900", ""]])
    result = import_file(app, "members", changed)
    assert "1 conflicts" in result.output
    assert "已导入期初积分 500，文件为 900，未再次入账" in report_rows(changed)[0]["原因"]
    assert members_by_phone(app, session)["13800138000"].points_balance == 500
    # A different source is another system's balance: credited.
    assert import_file(app, "members", changed, "--source", "pos2").exit_code == 0
    assert members_by_phone(app, session)["13800138000"].points_balance == 1400
    assert app.test_cli_runner().invoke(args=["points", "verify"]).exit_code == 0


def test_bad_rows_are_reported_with_reasons_and_good_rows_still_load(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "crm.csv",
        [
            HEADER,
            ["12345", "短号", "", "", "", ""],
            ["13800138000", "好人", "", "", "", ""],
            ["13900139000", "未来", "2999-01-01", "", "", ""],
            ["13700137000", "等级", "", "黑卡", "", ""],
            ["13600136000", "积分", "", "", "-5", ""],
            ["13500135000", "过期", "", "", "10", "2020-01-01"],
            ["", "无号", "", "", "", ""],
        ],
    )

    result = import_file(app, "members", path)

    assert result.exit_code == 0, result.output
    assert "1 created" in result.output and "6 rejected" in result.output
    assert set(members_by_phone(app, session)) == {"13800138000"}
    reasons = {row["行号"]: (row["结果"], row["原因"], row["手机号"]) for row in report_rows(path)}
    assert reasons["2"][0] == "未导入" and "手机号无效" in reasons["2"][1]
    assert "生日不在合理范围内" in reasons["4"][1]
    assert "未知会员等级「黑卡」" in reasons["5"][1]
    assert "积分须为非负整数" in reasons["6"][1]
    assert "积分已于 2020-01-01 到期" in reasons["7"][1]
    assert "缺少手机号" in reasons["8"][1]
    assert reasons["4"][2] == "139****9000"  # phones are masked in the report
    assert "13900139000" not in path.with_name("crm.import-report.csv").read_text(encoding="utf-8-sig")


def test_an_interrupted_import_resumes_after_its_last_committed_batch(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    phones = [f"1380013{n:04d}" for n in range(7)]
    path = write_csv(tmp_path / "crm.csv", [HEADER, *([phone, "", "", "", "10", ""] for phone in phones)])
    request = imports.ImportRequest(kind=ImportKind.MEMBERS, path=path, file_name="crm.csv")
    job = run_transaction(lambda s: imports.prepare(s, request, now=utcnow()), app=app)

    def stop_after_two_batches(progress: imports.Progress) -> None:
        if progress.rows_done >= 4:
            raise KeyboardInterrupt

    with app.app_context(), pytest.raises(KeyboardInterrupt):
        imports.run(
            job.id,
            path,
            run_in_transaction=lambda work: run_transaction(work, app=app),
            vault=extensions().phone_vault,
            clock=mall_time,
            batch_size=2,
            progress=stop_after_two_batches,
        )
    stopped = session.get(ImportJob, job.id)
    assert (stopped.status, stopped.rows_done, stopped.created) == (ImportStatus.INTERRUPTED, 4, 4)
    assert len(members_by_phone(app, session)) == 4

    resumed = import_file(app, "members", path, "--batch-size", "2")

    assert resumed.exit_code == 0, resumed.output
    assert "resuming import" in resumed.output
    session.expire_all()
    finished = session.get(ImportJob, job.id)
    assert (finished.status, finished.rows_done, finished.created, finished.unchanged) == (
        ImportStatus.FINISHED,
        7,
        7,
        0,
    )
    assert session.scalar(select(func.sum(Member.points_balance))) == 70
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_a_running_import_is_not_run_twice_but_a_silent_one_is_taken_over(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "crm.csv", [HEADER, ["13800138000", "", "", "", "", ""]])
    first = import_file(app, "members", path)
    assert first.exit_code == 0
    job = session.scalars(select(ImportJob)).one()
    job.status = ImportStatus.RUNNING
    job.heartbeat_at = datetime.now(job.created_at.tzinfo)
    session.flush()

    busy = import_file(app, "members", path)
    assert busy.exit_code != 0 and "该文件正在导入中" in busy.output

    job.heartbeat_at = datetime.now(job.created_at.tzinfo) - imports.HEARTBEAT_TIMEOUT * 2
    session.flush()
    assert import_file(app, "members", path).exit_code == 0
    session.expire_all()
    assert session.get(ImportJob, job.id).status is ImportStatus.FINISHED


def test_report_csv_lists_every_issue_in_row_order(
    app: Flask, session: Session, tiers: dict[str, Tier], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "crm.csv", [HEADER, ["x", "", "", "", "", ""], ["y", "", "", "", "", ""]])
    import_file(app, "members", path, "--report", str(tmp_path / "out.csv"))
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as report:
        rows = list(csv.reader(report))
    assert rows[0][:3] == ["行号", "结果", "原因"]
    assert [row[0] for row in rows[1:]] == ["2", "3"]

"""Real threads against MariaDB: two merges of one pair (either direction) serialise on the member rows
locked in id order: exactly one moves anything, no deadlock, and the ledger stays consistent."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import AuditEvent, Member, PointsEntry, PointsEntryKind, PointsSettings
from app.services import member_merge, points
from app.services.points import Posting
from tests import factories

pytestmark = pytest.mark.mariadb

NOW = MallTime(utcnow(), ZoneInfo("Asia/Shanghai"))


def _funded_pair(app: Flask, session: Session) -> tuple[int, int]:
    with app.app_context():
        vault = extensions().phone_vault
    tiers = factories.create_tiers(session)
    first = factories.create_member(session, vault, "13600136001", tiers[0]).id
    second = factories.create_member(session, vault, "13600136002", tiers[0]).id
    for member_id, amount in ((first, 300), (second, 700)):
        run_transaction(
            lambda s, m=member_id, n=amount: points.earn(
                s,
                Posting(m, n, PointsEntryKind.ADJUSTMENT, f"fund:{m}", "测试"),
                at=NOW,
                settings=PointsSettings.with_defaults(),
            ),
            app=app,
        )
    return first, second


def _race(app: Flask, merges: list[tuple[int, int]]) -> list[str]:
    start = threading.Barrier(len(merges))

    def attempt(pair: tuple[int, int]) -> str:
        survivor_id, source_id = pair
        start.wait()
        try:
            run_transaction(
                lambda s: member_merge.merge(s, survivor_id, source_id, operator_id=None, at=NOW), app=app
            )
        except member_merge.MergeRefused:
            return "refused"
        return "merged"

    with ThreadPoolExecutor(len(merges)) as pool:
        return list(pool.map(attempt, merges))


def _assert_consistent(app: Flask, session: Session, first: int, second: int) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output
    rows = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_([first, second])))}
    merged = [m for m in rows.values() if m.merged_into_member_id is not None]
    assert len(merged) == 1
    survivor = rows[merged[0].merged_into_member_id]
    assert survivor.merged_into_member_id is None
    assert survivor.points_balance == 1_000 and merged[0].points_balance == 0
    assert session.scalar(select(func.count()).where(AuditEvent.action == "member.merge")) == 1
    assert (
        session.scalar(
            select(func.count()).where(PointsEntry.kind == PointsEntryKind.MERGE, PointsEntry.delta < 0)
        )
        == 1
    )


@pytest.mark.parametrize("round_", range(3))
def test_merging_a_into_b_and_b_into_a_at_once_lets_exactly_one_through(
    app: Flask, session: Session, round_: int
) -> None:
    first, second = _funded_pair(app, session)

    outcomes = _race(app, [(first, second), (second, first)])

    assert sorted(outcomes) == ["merged", "refused"]
    _assert_consistent(app, session, first, second)


def test_the_same_merge_twice_at_once_moves_once(app: Flask, session: Session) -> None:
    first, second = _funded_pair(app, session)

    outcomes = _race(app, [(first, second)] * 4)

    assert sorted(outcomes) == ["merged", "refused", "refused", "refused"]
    _assert_consistent(app, session, first, second)

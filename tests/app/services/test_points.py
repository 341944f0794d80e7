"""The points ledger: lots, oldest-first spending, clawbacks and debt, expiry, idempotency, verification."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import run_transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import ExpiryPolicy, Member, PointsEntry, PointsEntryKind, PointsLot, PointsSettings
from app.services import points
from app.services.points import IdempotencyConflict, InsufficientPoints, Posting
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 12) -> MallTime:
    return MallTime(datetime(year, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC), SHANGHAI)


@pytest.fixture
def member_id(app: Flask, session: Session) -> int:
    tiers = factories.create_tiers(session)
    with app.app_context():
        vault = extensions().phone_vault
    return factories.create_member(session, vault, "13300133000", tiers[0]).id


def earn(
    app: Flask, member_id: int, amount: int, key: str, when: MallTime, **settings_overrides: object
) -> None:
    settings = PointsSettings.with_defaults()
    for name, value in settings_overrides.items():
        setattr(settings, name, value)
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(member_id, amount, PointsEntryKind.ADJUSTMENT, key, "测试获得"),
            at=when,
            settings=settings,
        ),
        app=app,
    )


def spend(app: Flask, member_id: int, amount: int, key: str, when: MallTime) -> None:
    run_transaction(
        lambda s: points.spend(
            s, Posting(member_id, amount, PointsEntryKind.REDEMPTION, key, "测试兑换"), at=when
        ),
        app=app,
    )


def balance_and_debt(session: Session, member_id: int) -> tuple[int, int]:
    member = session.get_one(Member, member_id, populate_existing=True)
    return member.points_balance, member.points_debt


def lots(session: Session, member_id: int) -> list[tuple[date, int]]:
    rows = session.execute(
        select(PointsLot.expires_on, PointsLot.remaining)
        .where(PointsLot.member_id == member_id)
        .order_by(PointsLot.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def verify(app: Flask) -> list[str]:
    with app.app_context():
        return run_transaction(points.verify_ledger, app=app)


def test_points_earned_in_a_year_expire_at_the_end_of_the_next(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(app, member_id, 100, "a", at(2026, 1, 1, 0))
    earn(app, member_id, 50, "b", at(2026, 12, 31, 23))

    assert lots(session, member_id) == [(date(2027, 12, 31), 100), (date(2027, 12, 31), 50)]
    assert balance_and_debt(session, member_id) == (150, 0)


def test_the_business_day_is_the_malls_not_utcs(app: Flask, session: Session, member_id: int) -> None:
    # 2026-12-31 17:00 UTC is already 2027-01-01 in Shanghai.
    earn(app, member_id, 10, "new-year", MallTime(datetime(2026, 12, 31, 17, tzinfo=UTC), SHANGHAI))

    assert lots(session, member_id) == [(date(2028, 12, 31), 10)]
    assert session.scalars(select(PointsEntry.business_date)).one() == date(2027, 1, 1)


def test_a_days_policy_expires_that_many_days_after_earning(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(
        app, member_id, 10, "k", at(2026, 3, 1), expiry_policy=ExpiryPolicy.DAYS_AFTER_EARNING, expiry_days=90
    )

    assert lots(session, member_id) == [(date(2026, 5, 30), 10)]


def test_spending_drains_the_oldest_lots_first(app: Flask, session: Session, member_id: int) -> None:
    earn(app, member_id, 100, "old", at(2025, 6, 1))
    earn(app, member_id, 100, "new", at(2026, 6, 1))

    spend(app, member_id, 130, "buy", at(2026, 7, 1))

    assert lots(session, member_id) == [(date(2026, 12, 31), 0), (date(2027, 12, 31), 70)]
    assert balance_and_debt(session, member_id) == (70, 0)
    assert verify(app) == []


def test_spending_more_than_the_balance_is_refused_and_changes_nothing(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(app, member_id, 100, "a", at(2026, 1, 5))

    with pytest.raises(InsufficientPoints):
        spend(app, member_id, 101, "too-much", at(2026, 1, 6))

    assert balance_and_debt(session, member_id) == (100, 0)
    assert session.scalars(select(PointsEntry.kind)).all() == [PointsEntryKind.ADJUSTMENT]


def test_repeating_a_posting_with_its_key_changes_nothing(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(app, member_id, 100, "same", at(2026, 1, 5))
    earn(app, member_id, 100, "same", at(2026, 1, 5))
    spend(app, member_id, 30, "buy", at(2026, 1, 6))
    spend(app, member_id, 30, "buy", at(2026, 1, 6))

    assert balance_and_debt(session, member_id) == (70, 0)
    assert len(session.scalars(select(PointsEntry.id)).all()) == 2


def test_a_key_reused_for_a_different_amount_is_a_conflict(app: Flask, member_id: int) -> None:
    earn(app, member_id, 100, "same", at(2026, 1, 5))

    with pytest.raises(IdempotencyConflict):
        earn(app, member_id, 999, "same", at(2026, 1, 5))


def test_clawing_back_spent_points_leaves_debt_never_a_negative_balance(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(app, member_id, 100, "purchase", at(2026, 1, 5))
    spend(app, member_id, 80, "buy", at(2026, 1, 6))

    run_transaction(
        lambda s: points.claw_back(
            s, Posting(member_id, 100, PointsEntryKind.REFUND, "refund", "退货"), at=at(2026, 1, 7)
        ),
        app=app,
    )

    assert balance_and_debt(session, member_id) == (0, 80)
    assert verify(app) == []


def test_new_points_pay_off_debt_first(app: Flask, session: Session, member_id: int) -> None:
    earn(app, member_id, 100, "purchase", at(2026, 1, 5))
    spend(app, member_id, 100, "buy", at(2026, 1, 6))
    run_transaction(
        lambda s: points.claw_back(
            s, Posting(member_id, 60, PointsEntryKind.REFUND, "r", "退货"), at=at(2026, 1, 7)
        ),
        app=app,
    )

    earn(app, member_id, 50, "small", at(2026, 1, 8))
    assert balance_and_debt(session, member_id) == (0, 10)
    earn(app, member_id, 50, "more", at(2026, 1, 9))
    assert balance_and_debt(session, member_id) == (40, 0)
    assert lots(session, member_id)[-1] == (date(2027, 12, 31), 40)
    assert verify(app) == []


def test_lots_expire_after_their_last_day_not_on_it(app: Flask, session: Session, member_id: int) -> None:
    earn(app, member_id, 100, "2025", at(2025, 3, 1))
    earn(app, member_id, 40, "2026", at(2026, 3, 1))

    on_last_day = run_transaction(
        lambda s: points.expire_due_lots(s, member_id=member_id, at=at(2026, 12, 31, 23)), app=app
    )
    next_day = run_transaction(
        lambda s: points.expire_due_lots(s, member_id=member_id, at=at(2027, 1, 1, 0)), app=app
    )
    again = run_transaction(
        lambda s: points.expire_due_lots(s, member_id=member_id, at=at(2027, 1, 2)), app=app
    )

    assert (on_last_day, next_day, again) == (0, 100, 0)
    assert balance_and_debt(session, member_id) == (40, 0)
    expiry = session.scalars(select(PointsEntry).where(PointsEntry.kind == PointsEntryKind.EXPIRY)).one()
    assert expiry.delta == -100 and "2026年12月31日" in expiry.description
    assert verify(app) == []


def test_verify_reports_a_balance_that_does_not_match_the_ledger(
    app: Flask, session: Session, member_id: int
) -> None:
    earn(app, member_id, 100, "a", at(2026, 1, 5))
    session.execute(update(Member).where(Member.id == member_id).values(points_balance=150))

    problems = verify(app)
    result = app.test_cli_runner().invoke(args=["points", "verify"])

    assert any("balance 150 != sum of lot remainders 100" in problem for problem in problems)
    assert result.exit_code == 1
    assert "sum of entries" in result.output


def test_verify_passes_a_clean_ledger(app: Flask, member_id: int) -> None:
    earn(app, member_id, 100, "a", at(2026, 1, 5))

    result = app.test_cli_runner().invoke(args=["points", "verify"])

    assert result.exit_code == 0
    assert "points ledger OK" in result.output

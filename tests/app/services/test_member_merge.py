"""Merging two members: everything moves to the survivor, the ledger stays provable, refusals are clear."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from app.db import Base, run_transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    AssignmentReason,
    AuditEvent,
    Coupon,
    CouponSource,
    Member,
    MemberConsent,
    MemberPlate,
    MemberTag,
    MemberTagHistory,
    ParkingPayment,
    ParkingPaymentStatus,
    ParkingQuote,
    PointsEntry,
    PointsEntryKind,
    PointsLot,
    PointsSettings,
    Purchase,
    PurchaseRefund,
    QrScene,
    SceneKind,
    StaffRole,
    Tag,
    TagKind,
    TagSource,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
    Tier,
    WeChatAccount,
)
from app.models.advisor import ExternalContact
from app.models.tag import MemberStatsQueue
from app.services import member_merge, points, tag_rules
from app.services.points import Posting
from tests import factories
from tests.flows import bearer, registered_shopper, shopper_login, sign_up

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = MallTime(datetime(2026, 11, 20, 4, tzinfo=UTC), SHANGHAI)
EARLIER = MallTime(datetime(2025, 3, 1, 4, tzinfo=UTC), SHANGHAI)


def merge(app: Flask, survivor_id: int, source_id: int, operator_id: int | None = None) -> Any:
    return run_transaction(
        lambda s: member_merge.merge(s, survivor_id, source_id, operator_id=operator_id, at=NOW), app=app
    )


def earn(app: Flask, member_id: int, amount: int, key: str, when: MallTime) -> None:
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(member_id, amount, PointsEntryKind.ADJUSTMENT, key, "测试获得"),
            at=when,
            settings=PointsSettings.with_defaults(),
        ),
        app=app,
    )


def claw_back(app: Flask, member_id: int, amount: int, key: str) -> None:
    run_transaction(
        lambda s: points.claw_back(
            s, Posting(member_id, amount, PointsEntryKind.REFUND, key, "退货"), at=NOW
        ),
        app=app,
    )


def assert_points_verify_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def vault(app: Flask) -> Any:
    with app.app_context():
        return extensions().phone_vault


@pytest.fixture
def pair(session: Session, vault: Any) -> tuple[Member, Member]:
    """(survivor, source)."""
    tiers = factories.create_tiers(session)
    survivor = factories.create_member(session, vault, "13800138001", tiers[0])
    source = factories.create_member(session, vault, "13800138002", tiers[0], nickname="旧号")
    return survivor, source


def test_the_fk_decisions_cover_every_foreign_key_to_members() -> None:
    """A new table referencing members must be decided on in member_merge.FK_DECISIONS."""
    in_metadata = {
        (table.name, fk.parent.name)
        for table in Base.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column.table.name == "members"
    }
    assert in_metadata == set(member_merge.FK_DECISIONS)


def test_points_move_lot_by_lot_keeping_their_expiry_with_entries_on_both_sides(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    earn(app, survivor.id, 50, "s1", NOW)
    earn(app, source.id, 300, "old", EARLIER)  # expires 2026-12-31
    earn(app, source.id, 200, "new", NOW)  # expires 2027-12-31

    outcome = merge(app, survivor.id, source.id)

    assert outcome.moved["points"] == 500 and outcome.moved["points_lots"] == 2
    session.expire_all()
    assert session.get(Member, survivor.id).points_balance == 550
    assert session.get(Member, source.id).points_balance == 0
    lots = session.execute(
        select(PointsLot.expires_on, PointsLot.remaining)
        .where(PointsLot.member_id == survivor.id, PointsLot.remaining > 0)
        .order_by(PointsLot.expires_on, PointsLot.remaining)
    ).all()
    assert [tuple(lot) for lot in lots] == [
        (date(2026, 12, 31), 300),
        (date(2027, 12, 31), 50),
        (date(2027, 12, 31), 200),
    ]
    merge_entries = session.execute(
        select(PointsEntry.member_id, PointsEntry.delta)
        .where(PointsEntry.kind == PointsEntryKind.MERGE)
        .order_by(PointsEntry.id)
    ).all()
    assert [tuple(e) for e in merge_entries] == [(source.id, -500), (survivor.id, 300), (survivor.id, 200)]
    assert_points_verify_clean(app)


def test_debt_moves_and_incoming_points_repay_the_survivors_debt_first(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    earn(app, survivor.id, 100, "s1", NOW)
    claw_back(app, survivor.id, 130, "s-refund")  # survivor: balance 0, debt 30
    earn(app, source.id, 80, "src", NOW)

    merge(app, survivor.id, source.id)

    session.expire_all()
    kept = session.get(Member, survivor.id)
    assert (kept.points_balance, kept.points_debt) == (50, 0)
    assert_points_verify_clean(app)


def test_the_sources_debt_is_clawed_back_from_the_survivor(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    earn(app, survivor.id, 100, "s1", NOW)
    earn(app, source.id, 20, "src", NOW)
    claw_back(app, source.id, 70, "src-refund")  # source: balance 0, debt 50

    outcome = merge(app, survivor.id, source.id)

    assert outcome.moved["points_debt"] == 50
    session.expire_all()
    kept, gone = session.get(Member, survivor.id), session.get(Member, source.id)
    assert (kept.points_balance, kept.points_debt) == (50, 0)
    assert (gone.points_balance, gone.points_debt) == (0, 0)
    assert_points_verify_clean(app)


def test_debt_larger_than_the_survivors_balance_stays_debt(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    earn(app, survivor.id, 10, "s1", NOW)
    earn(app, source.id, 10, "src", NOW)
    claw_back(app, source.id, 60, "src-refund")  # debt 50

    merge(app, survivor.id, source.id)

    session.expire_all()
    kept = session.get(Member, survivor.id)
    assert (kept.points_balance, kept.points_debt) == (0, 40)
    assert_points_verify_clean(app)


def test_every_kind_of_row_moves_to_the_survivor(
    app: Flask, session: Session, pair: tuple[Member, Member], vault: Any
) -> None:
    survivor, source = pair
    store = factories.create_store(session)
    advisor = factories.create_staff(session, "adv1", StaffRole.ADVISOR, store_id=store.id)
    source.advisor_id = advisor.id
    session.add(
        AdvisorAssignment(member_id=source.id, staff_id=advisor.id, reason=AssignmentReason.POOL_CLAIM)
    )
    template = factories.create_coupon_template(session)
    coupon = Coupon(
        template_id=template.id,
        member_id=source.id,
        source=CouponSource.CLAIM,
        idempotency_key="c1",
        valid_from=NOW.now,
        valid_until=NOW.now + timedelta(days=30),
        issued_on=NOW.today,
        **template.terms(),
    )
    session.add(coupon)
    purchase = factories.create_purchase(session, store, 10_000, NOW.now, source)
    session.add(
        PurchaseRefund(purchase_id=purchase.id, refund_no="RF1", amount_fen=1_000, points_clawed_back=0)
    )
    plate = MemberPlate(member_id=source.id, plate="沪A12345")
    account = WeChatAccount(appid="wxapp", openid="o-source", member_id=source.id)
    session.add_all([plate, account])
    session.flush()
    consent = MemberConsent(member_id=source.id, wechat_account_id=account.id, policy_version="2026-11")
    referred = factories.create_member(session, vault, "13800138003", session.get(Tier, survivor.tier_id))
    referred.referred_by_member_id = source.id
    scene = QrScene(kind=SceneKind.POSTER, name="推荐码", scene="ref-src", referrer_member_id=source.id)
    contact = ExternalContact(external_userid="wm-1", staff_id=advisor.id, member_id=source.id)
    quote = ParkingQuote(
        member_id=source.id,
        plate="沪A12345",
        entry_time=NOW.now,
        parking_minutes=60,
        fee_fen=1_000,
        amount_due_fen=1_000,
        expires_at=NOW.now,
    )
    session.add_all([consent, scene, contact, quote])
    session.flush()
    paid = ParkingPayment(
        order_no="P1",
        idempotency_key=f"{source.id}:k",
        quote_id=quote.id,
        member_id=source.id,
        plate="沪A12345",
        entry_time=NOW.now,
        parking_minutes=60,
        fee_fen=1_000,
        amount_due_fen=0,
        status=ParkingPaymentStatus.PAID,
        business_date=NOW.today,
    )
    session.add(paid)
    session.flush()

    outcome = merge(app, survivor.id, source.id)

    for model, row_id in [
        (Coupon, coupon.id),
        (Purchase, purchase.id),
        (MemberPlate, plate.id),
        (WeChatAccount, account.id),
        (MemberConsent, consent.id),
        (ExternalContact, contact.id),
        (ParkingQuote, quote.id),
        (ParkingPayment, paid.id),
    ]:
        assert session.scalar(select(model.member_id).where(model.id == row_id)) == survivor.id, model
    assert session.scalar(select(QrScene.referrer_member_id).where(QrScene.id == scene.id)) == survivor.id
    assert session.scalar(select(Member.referred_by_member_id).where(Member.id == referred.id)) == survivor.id
    # The survivor had no advisor: it takes the source's, with the open assignment.
    assert session.scalar(select(Member.advisor_id).where(Member.id == survivor.id)) == advisor.id
    assert session.scalar(select(Member.advisor_id).where(Member.id == source.id)) is None
    assert session.scalar(select(AdvisorAssignment.member_id)) == survivor.id
    # What the survivor lacked of the profile is filled in.
    assert session.scalar(select(Member.nickname).where(Member.id == survivor.id)) == "旧号"
    assert outcome.moved["coupons"] == 1 and outcome.moved["purchases"] == 1 and outcome.moved["plates"] == 1


def test_the_survivor_keeps_their_advisor_and_the_sources_assignment_ends(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    mine = factories.create_staff(session, "adv-mine", StaffRole.ADVISOR)
    theirs = factories.create_staff(session, "adv-theirs", StaffRole.ADVISOR)
    survivor.advisor_id, source.advisor_id = mine.id, theirs.id
    session.add(
        AdvisorAssignment(member_id=source.id, staff_id=theirs.id, reason=AssignmentReason.POOL_CLAIM)
    )
    session.flush()

    merge(app, survivor.id, source.id)

    assert session.scalar(select(Member.advisor_id).where(Member.id == survivor.id)) == mine.id
    ended = session.scalars(select(AdvisorAssignment)).one()
    assert ended.member_id == source.id and ended.end_reason == AssignmentEnd.RETURNED_TO_POOL
    assert ended.ended_at is not None


def _tag(session: Session, code: str) -> Tag:
    tag = Tag(code=code, name=code, kind=TagKind.MANUAL)
    session.add(tag)
    session.flush()
    return tag


def test_tags_are_united_and_a_tag_both_hold_goes_to_history(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    both, only_source, only_survivor = _tag(session, "both"), _tag(session, "src"), _tag(session, "kept")
    session.add_all(
        [
            MemberTag(member_id=survivor.id, tag_id=both.id, source=TagSource.MANUAL),
            MemberTag(member_id=survivor.id, tag_id=only_survivor.id, source=TagSource.MANUAL),
            MemberTag(member_id=source.id, tag_id=both.id, source=TagSource.MANUAL),
            MemberTag(member_id=source.id, tag_id=only_source.id, source=TagSource.MANUAL),
            MemberTagHistory(
                member_id=source.id,
                tag_id=only_survivor.id,
                source=TagSource.MANUAL,
                since=NOW.now,
                until=NOW.now,
            ),
        ]
    )
    session.flush()

    merge(app, survivor.id, source.id)

    held = set(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == survivor.id)))
    assert held == {both.id, only_source.id, only_survivor.id}
    assert session.scalar(select(func.count()).where(MemberTag.member_id == source.id)) == 0
    history = set(
        session.scalars(select(MemberTagHistory.tag_id).where(MemberTagHistory.member_id == survivor.id))
    )
    assert history == {both.id, only_survivor.id}


def test_tasks_move_unless_the_survivor_has_the_same_task_that_day(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    rule = TaskRule(
        name="生日",
        trigger_kind=TaskTrigger.TAG,
        task_type=TaskType.BIRTHDAY_GREETING,
        message_template="生日快乐",
        priority=1,
        cool_down_days=7,
        due_in_days=3,
    )
    session.add(rule)
    session.flush()

    def task(member_id: int, task_type: TaskType) -> AdvisorTask:
        row = AdvisorTask(
            business_date=NOW.today,
            member_id=member_id,
            rule_id=rule.id,
            task_type=task_type,
            priority=1,
            trigger_kind=TaskTrigger.TAG,
            trigger_value="birthday",
            due_date=NOW.today,
            status=TaskStatus.OPEN,
        )
        session.add(row)
        session.flush()
        return row

    task(survivor.id, TaskType.BIRTHDAY_GREETING)
    clash = task(source.id, TaskType.BIRTHDAY_GREETING)
    moving = task(source.id, TaskType.VIP_INVITATION)

    outcome = merge(app, survivor.id, source.id)

    assert session.scalar(select(AdvisorTask.member_id).where(AdvisorTask.id == moving.id)) == survivor.id
    assert session.scalar(select(AdvisorTask.member_id).where(AdvisorTask.id == clash.id)) == source.id
    assert (outcome.moved["tasks"], outcome.moved["tasks_kept"]) == (1, 1)


def test_the_source_is_marked_merged_queued_for_stats_and_the_merge_is_audited(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    operator = factories.create_operator(session)
    session.add(MemberStatsQueue(member_id=survivor.id))  # already queued: no duplicate error
    session.flush()
    earn(app, source.id, 40, "src", NOW)

    merge(app, survivor.id, source.id, operator_id=operator.id)

    gone = session.get(Member, source.id)
    session.refresh(gone)
    assert gone.merged_into_member_id == survivor.id and gone.merged_at is not None
    assert set(session.scalars(select(MemberStatsQueue.member_id))) == {survivor.id, source.id}
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "member.merge")).one()
    assert event.operator_id == operator.id and event.target_id == str(survivor.id)
    assert event.detail["source_member_id"] == source.id
    assert event.detail["survivor_member_id"] == survivor.id
    assert event.detail["moved"]["points"] == 40


@pytest.mark.parametrize("status", [ParkingPaymentStatus.PENDING, ParkingPaymentStatus.UNKNOWN])
def test_an_open_parking_payment_on_either_member_refuses_the_merge(
    app: Flask, session: Session, pair: tuple[Member, Member], status: ParkingPaymentStatus
) -> None:
    survivor, source = pair
    quote = ParkingQuote(
        member_id=survivor.id,
        plate="沪B12345",
        entry_time=NOW.now,
        parking_minutes=60,
        fee_fen=1_000,
        amount_due_fen=1_000,
        expires_at=NOW.now,
    )
    session.add(quote)
    session.flush()
    session.add(
        ParkingPayment(
            order_no="P9",
            idempotency_key=f"{survivor.id}:k",
            quote_id=quote.id,
            member_id=survivor.id,
            plate="沪B12345",
            entry_time=NOW.now,
            parking_minutes=60,
            fee_fen=1_000,
            amount_due_fen=1_000,
            status=status,
            business_date=NOW.today,
        )
    )
    session.flush()
    earn(app, source.id, 40, "src", NOW)

    with pytest.raises(member_merge.MergeRefused) as refused:
        merge(app, survivor.id, source.id)

    assert "停车缴费" in refused.value.message
    assert session.scalar(select(Member.points_balance).where(Member.id == source.id)) == 40
    assert session.scalar(select(Member.merged_into_member_id).where(Member.id == source.id)) is None


def test_merging_again_or_into_a_merged_member_or_with_itself_is_refused(
    app: Flask, session: Session, pair: tuple[Member, Member], vault: Any
) -> None:
    survivor, source = pair
    third = factories.create_member(session, vault, "13800138009", session.get(Tier, survivor.tier_id))
    earn(app, source.id, 40, "src", NOW)
    merge(app, survivor.id, source.id)

    with pytest.raises(member_merge.MergeRefused, match="已合并到会员"):
        merge(app, survivor.id, source.id)
    with pytest.raises(member_merge.MergeRefused, match="已合并到会员"):
        merge(app, source.id, third.id)
    with pytest.raises(member_merge.SameMember):
        merge(app, survivor.id, survivor.id)
    assert session.scalar(select(Member.points_balance).where(Member.id == survivor.id)) == 40
    assert session.scalar(select(func.count()).where(AuditEvent.action == "member.merge")) == 1
    assert_points_verify_clean(app)


def test_the_source_cannot_sign_in_as_itself_afterwards(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.create_tiers(session)
    old_token, old = registered_shopper(client, "o-old-phone", "13900139001")
    _, new = registered_shopper(client, "o-new-phone", "13900139002")
    source_id, survivor_id = old["id"], new["id"]

    merge(app, survivor_id, source_id)

    # The old openid (and its token) now stands for the survivor, never for the merged member.
    again = shopper_login(client, "o-old-phone")
    assert again["member"]["id"] == survivor_id
    for token in (old_token, again["token"]):
        me = client.get("/api/mp/v1/me", headers=bearer(token))
        assert me.status_code == 200 and me.get_json()["id"] == survivor_id
    # Signing up again with the old phone joins the survivor, it does not revive the merged member.
    fresh = shopper_login(client, "o-third-device")["token"]
    joined = sign_up(client, fresh, "13900139001")
    assert joined.status_code in (200, 201) and joined.get_json()["id"] == survivor_id


def test_a_merged_member_is_no_target_of_rules_segments_or_campaigns(
    app: Flask, session: Session, pair: tuple[Member, Member]
) -> None:
    survivor, source = pair
    merge(app, survivor.id, source.id)

    everyone = set(session.scalars(tag_rules.members_matching(true())))

    assert everyone == {survivor.id}

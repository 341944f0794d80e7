"""Everything operators see about one member (会员 360): profile, tier history, points ledger, coupons,
purchases and refunds, parking, tags, advisor history, tasks and notes.

Each section is one explicit query with its names joined in (relationships stay `lazy="raise"`), and
long histories are cut to their most recent rows; the ledger is paged. Phones appear masked only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.errors import NotFound
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    AssignmentReason,
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    Member,
    MemberPlate,
    MemberSource,
    MemberTag,
    Operator,
    ParkingPayment,
    ParkingPaymentStatus,
    PointsEntry,
    PointsEntryKind,
    Purchase,
    PurchaseRefund,
    QrScene,
    SceneKind,
    Staff,
    Store,
    Tag,
    TagKind,
    TagSource,
    Tier,
    TierChange,
)
from app.models.task import TaskOutcome, TaskStatus, TaskType
from app.pii import PhoneVault

LEDGER_PAGE_SIZE = 20
RECENT_TIER_CHANGES = 20
RECENT_COUPONS = 50
RECENT_PURCHASES = 20
RECENT_PARKING_PAYMENTS = 10
RECENT_ASSIGNMENTS = 50
RECENT_TASKS = 20


@dataclass(frozen=True)
class Profile:
    id: int
    phone_masked: str
    nickname: str | None
    birthday: date | None
    tier_name: str
    points_balance: int
    points_debt: int
    joined_at: datetime
    source: MemberSource
    scene_name: str | None
    scene_kind: SceneKind | None
    scene_store_name: str | None
    referrer_id: int | None
    referrer_phone_masked: str | None
    referrer_nickname: str | None
    advisor_name: str | None
    advisor_store_name: str | None
    advisor_note: str | None
    # Set once the member was merged into another (app.services.member_merge).
    merged_into_member_id: int | None = None
    merged_at: datetime | None = None
    # Set once the member deleted the account or was purged (app.services.personal_data).
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class TierStep:
    at: datetime
    from_tier: str | None
    to_tier: str
    reason: str
    rolling_spend_fen: int


@dataclass(frozen=True)
class LedgerLine:
    id: int
    at: datetime
    kind: PointsEntryKind
    delta: int
    balance_after: int
    description: str
    operator_name: str | None
    staff_name: str | None


@dataclass(frozen=True)
class CouponLine:
    id: int
    name: str
    kind: CouponKind
    template_id: int
    template_name: str
    status: CouponStatus
    source: CouponSource
    issued_at: datetime
    valid_until: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class RefundLine:
    refund_no: str
    amount_fen: int
    points_clawed_back: int
    at: datetime


@dataclass(frozen=True)
class PurchaseLine:
    id: int
    at: datetime
    store_name: str
    receipt_no: str
    amount_fen: int
    refunded_fen: int
    points_earned: int
    points_clawed_back: int
    refunds: list[RefundLine]


@dataclass(frozen=True)
class PlateLine:
    plate: str
    bound_at: datetime


@dataclass(frozen=True)
class ParkingLine:
    id: int
    at: datetime
    plate: str
    fee_fen: int
    points: int
    deduction_fen: int
    amount_due_fen: int
    status: ParkingPaymentStatus


@dataclass(frozen=True)
class TagLine:
    name: str
    kind: TagKind
    source: TagSource
    since: datetime


@dataclass(frozen=True)
class AssignmentLine:
    advisor_name: str
    store_name: str | None
    reason: AssignmentReason
    assigned_at: datetime
    ended_at: datetime | None
    end_reason: AssignmentEnd | None


@dataclass(frozen=True)
class TaskLine:
    id: int
    business_date: date
    task_type: TaskType
    advisor_name: str | None  # None: the store's pool
    status: TaskStatus
    due_date: date
    outcome: TaskOutcome | None
    note: str | None
    completed_at: datetime | None


@dataclass(frozen=True)
class MemberOverview:
    profile: Profile
    tier_history: list[TierStep]
    ledger: list[LedgerLine]
    ledger_next_cursor: int | None
    coupons: list[CouponLine]
    purchases: list[PurchaseLine]
    plates: list[PlateLine]
    parking: list[ParkingLine]
    tags: list[TagLine]
    assignments: list[AssignmentLine]
    tasks: list[TaskLine]


def overview(
    session: Session,
    member_id: int,
    *,
    ledger_before: int | None = None,
    ledger_limit: int = LEDGER_PAGE_SIZE,
) -> MemberOverview:
    """The member's 360 view; NotFound for an unknown member. Scope (which operator may see whom) is
    the caller's to check first (`member_scope.check_member_in_scope`)."""
    ledger, ledger_next = ledger_page(session, member_id, before_id=ledger_before, limit=ledger_limit)
    return MemberOverview(
        profile=profile(session, member_id),
        tier_history=tier_history(session, member_id),
        ledger=ledger,
        ledger_next_cursor=ledger_next,
        coupons=coupons(session, member_id),
        purchases=purchases(session, member_id),
        plates=plates(session, member_id),
        parking=parking_payments(session, member_id),
        tags=tags(session, member_id),
        assignments=assignments(session, member_id),
        tasks=tasks(session, member_id),
    )


def profile(session: Session, member_id: int) -> Profile:
    referrer = aliased(Member)
    advisor_store = aliased(Store)
    row = session.execute(
        select(
            Member.id,
            Member.phone_masked,
            Member.nickname,
            Member.birthday,
            Tier.name.label("tier_name"),
            Member.points_balance,
            Member.points_debt,
            Member.joined_at,
            Member.source,
            QrScene.name.label("scene_name"),
            QrScene.kind.label("scene_kind"),
            Store.name.label("scene_store_name"),
            referrer.id.label("referrer_id"),
            referrer.phone_masked.label("referrer_phone_masked"),
            referrer.nickname.label("referrer_nickname"),
            Staff.name.label("advisor_name"),
            advisor_store.name.label("advisor_store_name"),
            Member.advisor_note,
            Member.merged_into_member_id,
            Member.merged_at,
            Member.deleted_at,
        )
        .join(Tier, Tier.id == Member.tier_id)
        .outerjoin(QrScene, QrScene.id == Member.signup_scene_id)
        .outerjoin(Store, Store.id == QrScene.store_id)
        .outerjoin(referrer, referrer.id == Member.referred_by_member_id)
        .outerjoin(Staff, Staff.id == Member.advisor_id)
        .outerjoin(advisor_store, advisor_store.id == Staff.store_id)
        .where(Member.id == member_id)
    ).one_or_none()
    if row is None:
        raise NotFound("会员不存在")
    return Profile(**row._mapping)


def tier_history(session: Session, member_id: int) -> list[TierStep]:
    from_tier, to_tier = aliased(Tier), aliased(Tier)
    rows = session.execute(
        select(
            TierChange.created_at.label("at"),
            from_tier.name.label("from_tier"),
            to_tier.name.label("to_tier"),
            TierChange.reason,
            TierChange.rolling_spend_fen,
        )
        .outerjoin(from_tier, from_tier.id == TierChange.from_tier_id)
        .join(to_tier, to_tier.id == TierChange.to_tier_id)
        .where(TierChange.member_id == member_id)
        .order_by(TierChange.id.desc())
        .limit(RECENT_TIER_CHANGES)
    )
    return [TierStep(**row._mapping) for row in rows]


def ledger_page(
    session: Session, member_id: int, *, before_id: int | None, limit: int = LEDGER_PAGE_SIZE
) -> tuple[list[LedgerLine], int | None]:
    """Newest first; the cursor is the entry id to continue below (None: no more)."""
    statement = (
        select(
            PointsEntry.id,
            PointsEntry.created_at.label("at"),
            PointsEntry.kind,
            PointsEntry.delta,
            PointsEntry.balance_after,
            PointsEntry.description,
            Operator.display_name.label("operator_name"),
            Staff.name.label("staff_name"),
        )
        .outerjoin(Operator, Operator.id == PointsEntry.operator_id)
        .outerjoin(Staff, Staff.id == PointsEntry.staff_id)
        .where(PointsEntry.member_id == member_id)
        .order_by(PointsEntry.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        statement = statement.where(PointsEntry.id < before_id)
    lines = [LedgerLine(**row._mapping) for row in session.execute(statement)]
    more = len(lines) > limit
    lines = lines[:limit]
    return lines, (lines[-1].id if more else None)


def coupons(session: Session, member_id: int) -> list[CouponLine]:
    rows = session.execute(
        select(
            Coupon.id,
            Coupon.name,
            Coupon.kind,
            Coupon.template_id,
            CouponTemplate.name.label("template_name"),
            Coupon.status,
            Coupon.source,
            Coupon.issued_at,
            Coupon.valid_until,
            Coupon.used_at,
        )
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.member_id == member_id)
        .order_by(Coupon.id.desc())
        .limit(RECENT_COUPONS)
    )
    return [CouponLine(**row._mapping) for row in rows]


def purchases(session: Session, member_id: int) -> list[PurchaseLine]:
    rows = session.execute(
        select(
            Purchase.id,
            Purchase.purchased_at.label("at"),
            Store.name.label("store_name"),
            Purchase.receipt_no,
            Purchase.amount_fen,
            Purchase.refunded_fen,
            Purchase.points_earned,
            Purchase.points_clawed_back,
        )
        .join(Store, Store.id == Purchase.store_id)
        .where(Purchase.member_id == member_id)
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
        .limit(RECENT_PURCHASES)
    ).all()
    refunds: dict[int, list[RefundLine]] = defaultdict(list)
    if rows:
        for refund in session.execute(
            select(
                PurchaseRefund.purchase_id,
                PurchaseRefund.refund_no,
                PurchaseRefund.amount_fen,
                PurchaseRefund.points_clawed_back,
                PurchaseRefund.created_at,
            )
            .where(PurchaseRefund.purchase_id.in_([row.id for row in rows]))
            .order_by(PurchaseRefund.id)
        ):
            refunds[refund.purchase_id].append(
                RefundLine(refund.refund_no, refund.amount_fen, refund.points_clawed_back, refund.created_at)
            )
    return [PurchaseLine(**row._mapping, refunds=refunds[row.id]) for row in rows]


def plates(session: Session, member_id: int) -> list[PlateLine]:
    rows = session.execute(
        select(MemberPlate.plate, MemberPlate.created_at)
        .where(MemberPlate.member_id == member_id)
        .order_by(MemberPlate.id)
    )
    return [PlateLine(plate, bound_at) for plate, bound_at in rows]


def parking_payments(session: Session, member_id: int) -> list[ParkingLine]:
    payments = session.scalars(
        select(ParkingPayment)
        .where(ParkingPayment.member_id == member_id)
        .order_by(ParkingPayment.id.desc())
        .limit(RECENT_PARKING_PAYMENTS)
    )
    return [
        ParkingLine(
            id=payment.id,
            at=payment.created_at,
            plate=payment.plate,
            fee_fen=payment.fee_fen,
            points=payment.points,
            deduction_fen=payment.deduction_fen,
            amount_due_fen=payment.amount_due_fen,
            status=payment.status,
        )
        for payment in payments
    ]


def tags(session: Session, member_id: int) -> list[TagLine]:
    rows = session.execute(
        select(Tag.name, Tag.kind, MemberTag.source, MemberTag.since)
        .join(MemberTag, MemberTag.tag_id == Tag.id)
        .where(MemberTag.member_id == member_id)
        .order_by(Tag.kind, Tag.id)
    )
    return [TagLine(**row._mapping) for row in rows]


def assignments(session: Session, member_id: int) -> list[AssignmentLine]:
    rows = session.execute(
        select(
            Staff.name.label("advisor_name"),
            Store.name.label("store_name"),
            AdvisorAssignment.reason,
            AdvisorAssignment.assigned_at,
            AdvisorAssignment.ended_at,
            AdvisorAssignment.end_reason,
        )
        .join(Staff, Staff.id == AdvisorAssignment.staff_id)
        .outerjoin(Store, Store.id == Staff.store_id)
        .where(AdvisorAssignment.member_id == member_id)
        .order_by(AdvisorAssignment.id.desc())
        .limit(RECENT_ASSIGNMENTS)
    )
    return [AssignmentLine(**row._mapping) for row in rows]


def tasks(session: Session, member_id: int) -> list[TaskLine]:
    rows = session.execute(
        select(
            AdvisorTask.id,
            AdvisorTask.business_date,
            AdvisorTask.task_type,
            Staff.name.label("advisor_name"),
            AdvisorTask.status,
            AdvisorTask.due_date,
            AdvisorTask.outcome,
            AdvisorTask.note,
            AdvisorTask.completed_at,
        )
        .outerjoin(Staff, Staff.id == AdvisorTask.advisor_id)
        .where(AdvisorTask.member_id == member_id)
        .order_by(AdvisorTask.business_date.desc(), AdvisorTask.id.desc())
        .limit(RECENT_TASKS)
    )
    return [TaskLine(**row._mapping) for row in rows]


def full_phone(session: Session, member_id: int, vault: PhoneVault) -> str:
    """The member's unmasked phone. Callers record who looked (audit `member.view_phone`)."""
    row = session.execute(
        select(Member.phone_ciphertext, Member.deleted_at).where(Member.id == member_id)
    ).one_or_none()
    if row is None:
        raise NotFound("会员不存在")
    ciphertext, deleted_at = row
    if deleted_at is not None:
        raise NotFound("该会员已注销，手机号已删除")
    return vault.reveal(ciphertext)

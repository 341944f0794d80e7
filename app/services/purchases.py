"""Crediting purchases scanned at the counter, and clawing points back on refunds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import reference_cache
from app.db import RetryableConflict, insert_row
from app.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from app.mall_time import MallTime
from app.models import (
    EarningRate,
    Member,
    PointsEntry,
    PointsEntryKind,
    PointsPromotion,
    PointsSettings,
    Purchase,
    PurchaseRefund,
    Staff,
    StaffRole,
    Store,
    TierChange,
)
from app.services import member_codes, points, tiers
from app.services.member_codes import MemberCodeSigner

# 1 point per full yuan when an operator has configured nothing.
_FALLBACK_RATE = EarningRate(category=EarningRate.DEFAULT_CATEGORY, spend_unit_fen=100, points_per_unit=1)


class ReceiptConflict(Conflict):
    code, message = "RECEIPT_CONFLICT", "该小票号已登记过一笔金额或会员不同的消费"


class MemberMergedAway(Conflict):
    code = "MEMBER_MERGED"


class MemberDeleted(Conflict):
    code, message = "MEMBER_DELETED", "该会员已注销，消费请按非会员登记"


class RefundConflict(Conflict):
    code, message = "REFUND_CONFLICT", "该退货单号已登记过一笔金额不同的退货"


class RefundExceedsPurchase(DomainError):
    code, status, message = "REFUND_EXCEEDS_PURCHASE", 422, "退货金额超过了该笔消费的可退金额"


class StoreNotAllowed(Forbidden):
    code, message = "STORE_NOT_ALLOWED", "只能为本门店登记消费或退货"


# What recording a purchase by member code or member id may refuse with, for the APIs' documentation.
RECORDING_ERRORS: tuple[type[DomainError], ...] = (
    member_codes.MemberCodeInvalid,
    member_codes.MemberCodeUsed,
    StoreNotAllowed,
    NotFound,
    points.IdempotencyConflict,
    MemberDeleted,
    MemberMergedAway,
    ReceiptConflict,
    ValidationFailed,
)


@dataclass(frozen=True)
class NewPurchase:
    store_id: int
    receipt_no: str
    amount_fen: int
    member_id: int | None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class PurchaseResult:
    purchase: Purchase
    created: bool
    member: Member | None
    tier_change: TierChange | None = None


@dataclass(frozen=True)
class RefundResult:
    refund: PurchaseRefund
    purchase: Purchase
    created: bool


def check_store_access(staff: Staff, store_id: int) -> None:
    """Counter staff work for one store; managers for the whole mall."""
    if staff.role is not StaffRole.MANAGER and staff.store_id != store_id:
        raise StoreNotAllowed()


_PURCHASE_BY_RECEIPT = select(Purchase).where(
    Purchase.store_id == bindparam("store_id"), Purchase.receipt_no == bindparam("receipt_no")
)


def find_purchase(session: Session, store_id: int, receipt_no: str) -> Purchase | None:
    params = {"store_id": store_id, "receipt_no": receipt_no}
    return session.scalars(_PURCHASE_BY_RECEIPT, params).one_or_none()


def check_repeat(existing: Purchase, new: NewPurchase) -> None:
    """A receipt may be sent again (a retry), but only with the same content."""
    same_member = new.member_id is None or new.member_id == existing.member_id
    if existing.amount_fen != new.amount_fen or not same_member:
        raise ReceiptConflict()


def record_purchase(
    session: Session,
    new: NewPurchase,
    *,
    staff: Staff | None,
    at: MallTime,
    settings: PointsSettings,
    pos_terminal_id: int | None = None,
) -> PurchaseResult:
    """Record a sale once per (store, receipt); for a member, credit its points and maybe upgrade the tier.

    Recorded by a staff member (limited to their store) or by a POS terminal (whose caller has
    already fixed the store to the terminal's). A repeat (a retry, or a concurrent request for the
    same receipt) returns the recorded purchase.
    """
    _check_recorder(staff, pos_terminal_id, new.store_id)
    store = store_by_id(session, new.store_id)
    if store is None:
        raise NotFound("门店不存在")
    # Lock the member before inserting rows that reference it: the foreign key check
    # takes a shared lock on the member row, and upgrading it later would deadlock.
    member = points.lock_member(session, new.member_id) if new.member_id is not None else None
    if member is not None and member.merged_into_member_id is not None:
        raise MemberMergedAway(f"该会员已合并到会员 {member.merged_into_member_id}，请为合并后的会员登记")
    if member is not None and member.deleted_at is not None:
        raise MemberDeleted()
    earned = (
        purchase_points(session, member, store, new.amount_fen, at=at, settings=settings) if member else 0
    )
    purchase = _insert_purchase(
        session, new, staff=staff, pos_terminal_id=pos_terminal_id, at=at, points_earned=earned
    )
    if purchase is None:  # a repeat: the receipt is known
        existing = find_purchase(session, new.store_id, new.receipt_no)
        if existing is None:
            raise RetryableConflict()
        check_repeat(existing, new)
        return PurchaseResult(existing, created=False, member=_member(session, existing.member_id))
    if member is None:
        return PurchaseResult(purchase, created=True, member=None)

    if earned:
        points.earn(
            session,
            points.Posting(
                member_id=member.id,
                points=earned,
                kind=PointsEntryKind.PURCHASE,
                idempotency_key=f"purchase:{purchase.id}",
                description=f"{store.name} 消费 ¥{_yuan(purchase.amount_fen)}",
                reference=f"purchase:{purchase.id}",
                staff_id=staff.id if staff else None,
            ),
            at=at,
            settings=settings,
            locked_member=member,
        )
    tier_change = tiers.upgrade_after_purchase(session, member, at=at)
    session.flush()
    return PurchaseResult(purchase, created=True, member=member, tier_change=tier_change)


def _check_recorder(staff: Staff | None, pos_terminal_id: int | None, store_id: int) -> None:
    """Exactly one of a staff member and a POS terminal records a sale or refund."""
    if (staff is None) == (pos_terminal_id is None):
        raise ValueError("a purchase is recorded by either a staff member or a POS terminal")
    if staff is not None:
        check_store_access(staff, store_id)


def _insert_purchase(
    session: Session,
    new: NewPurchase,
    *,
    staff: Staff | None,
    pos_terminal_id: int | None,
    at: MallTime,
    points_earned: int,
) -> Purchase | None:
    """The new purchase, or None when its (store, receipt) is already recorded.

    Inserting first and looking up only on a duplicate saves the lookup on every new receipt;
    a concurrent first insert of the same receipt makes this one wait, then fail as a duplicate.
    """
    purchase = Purchase(
        member_id=new.member_id,
        store_id=new.store_id,
        receipt_no=new.receipt_no,
        amount_fen=new.amount_fen,
        staff_id=staff.id if staff else None,
        pos_terminal_id=pos_terminal_id,
        purchased_at=new.paid_at or at.now,
        points_earned=points_earned,
        created_at=at.now,
    )
    session.flush()  # rows added earlier fail on their own, never as a "duplicate receipt"
    try:
        return insert_row(session, purchase)
    except IntegrityError:
        return None


def store_by_id(session: Session, store_id: int) -> Store | None:
    """A store, read-only (cached with the other reference data)."""
    return reference_cache.cached(session, "stores", reference_cache.STORES, _load_stores).get(store_id)


def _load_stores(session: Session) -> dict[int, Store]:
    return {store.id: store for store in session.scalars(select(Store))}


def credit_scanned_purchase(
    session: Session,
    new: NewPurchase,
    *,
    member_code: str | None,
    signer: MemberCodeSigner,
    staff: Staff | None,
    at: MallTime,
    settings: PointsSettings,
    pos_terminal_id: int | None = None,
) -> PurchaseResult:
    """A purchase identified by a scanned member code (spent only when the receipt is new),
    by a member id, or by neither (a non-member sale)."""
    if member_code and new.member_id:
        raise ValidationFailed(details={"member_code": ["会员码与会员编号只能填写一个"]})
    _check_recorder(staff, pos_terminal_id, new.store_id)
    if member_code:
        if existing := find_purchase(session, new.store_id, new.receipt_no):
            check_repeat(existing, replace(new, member_id=signer.member_id_of(member_code)))
            return PurchaseResult(existing, created=False, member=_member(session, existing.member_id))
        member = member_codes.redeem_member_code(
            session, signer, member_code, staff_id=staff.id if staff else None, at=at.now
        )
        new = replace(new, member_id=member.id)
    return record_purchase(
        session, new, staff=staff, at=at, settings=settings, pos_terminal_id=pos_terminal_id
    )


def purchase_points(
    session: Session, member: Member, store: Store, amount_fen: int, *, at: MallTime, settings: PointsSettings
) -> int:
    """Points for a purchase: category rate × tier multiplier × best promotion, within the daily cap.

    Call with the member's account locked: the cap reads today's postings.
    """
    if amount_fen < settings.purchase_min_amount_fen:
        return 0
    rate = earning_rate_for(session, store.category)
    base = amount_fen // rate.spend_unit_fen * rate.points_per_unit
    tier_percent = tiers.tier_of(session, member.tier_id).points_multiplier_percent
    earned = base * tier_percent * _promotion_percent(session, store.category, at) // 10_000
    if settings.purchase_daily_cap_points:
        already = points.locked_sum(session, member.id, PointsEntryKind.PURCHASE, at.today)
        earned = max(min(earned, settings.purchase_daily_cap_points - already), 0)
    return earned


def refund_purchase(
    session: Session,
    purchase_id: int,
    refund_no: str,
    amount_fen: int,
    *,
    staff: Staff | None,
    at: MallTime,
    pos_terminal_id: int | None = None,
) -> RefundResult:
    """Refund part or all of a purchase once per refund number, clawing back proportional points.

    By a staff member (limited to their store) or a POS terminal (its caller checks the store).
    """
    member_id = session.scalar(select(Purchase.member_id).where(Purchase.id == purchase_id))
    if member_id is not None:
        points.lock_account(session, member_id)  # members first, then their purchases: one lock order
    purchase = session.get(Purchase, purchase_id, with_for_update=True, populate_existing=True)
    if purchase is None:
        raise NotFound("消费记录不存在")
    _check_recorder(staff, pos_terminal_id, purchase.store_id)
    existing = session.scalars(
        select(PurchaseRefund).where(
            PurchaseRefund.purchase_id == purchase.id, PurchaseRefund.refund_no == refund_no
        )
    ).one_or_none()
    if existing is not None:
        if existing.amount_fen != amount_fen:
            raise RefundConflict()
        return RefundResult(existing, purchase, created=False)
    if purchase.refunded_fen + amount_fen > purchase.amount_fen:
        raise RefundExceedsPurchase(details={"refundable_fen": purchase.amount_fen - purchase.refunded_fen})

    purchase.refunded_fen += amount_fen
    # Cumulative and rounded down, so that partial refunds never claw back more than a full one.
    clawed_total = purchase.points_earned * purchase.refunded_fen // purchase.amount_fen
    claw = clawed_total - purchase.points_clawed_back
    purchase.points_clawed_back = clawed_total
    refund = PurchaseRefund(
        purchase_id=purchase.id,
        refund_no=refund_no,
        amount_fen=amount_fen,
        points_clawed_back=claw,
        staff_id=staff.id if staff else None,
        pos_terminal_id=pos_terminal_id,
    )
    session.add(refund)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    if claw and purchase.member_id is not None:
        earned_entry = session.scalars(
            select(PointsEntry.id).where(PointsEntry.idempotency_key == f"purchase:{purchase.id}")
        ).one_or_none()
        points.claw_back(
            session,
            points.Posting(
                member_id=purchase.member_id,
                points=claw,
                kind=PointsEntryKind.REFUND,
                idempotency_key=f"refund:{refund.id}",
                description=f"退货 ¥{_yuan(amount_fen)}，扣回消费积分",
                reference=f"purchase:{purchase.id}",
                staff_id=staff.id if staff else None,
            ),
            at=at,
            from_entry_id=earned_entry,
        )
    return RefundResult(refund, purchase, created=True)


def _member(session: Session, member_id: int | None) -> Member | None:
    return session.get(Member, member_id) if member_id is not None else None


def earning_rate_for(session: Session, category: str) -> EarningRate:
    """The rate of a store category, else the default one, else 1 point per yuan."""
    rates = reference_cache.cached(session, "earning_rates", reference_cache.RULES, _load_rates)
    return rates.get(category) or rates.get(EarningRate.DEFAULT_CATEGORY) or _FALLBACK_RATE


def _load_rates(session: Session) -> dict[str, EarningRate]:
    return {rate.category: rate for rate in session.scalars(select(EarningRate))}


def _promotion_percent(session: Session, category: str, at: MallTime) -> int:
    """The best running promotion for this category; promotions do not stack."""
    promotions = reference_cache.cached(
        session, "active_promotions", reference_cache.RULES, _load_active_promotions
    )
    running = [
        promotion.multiplier_percent
        for promotion in promotions
        if promotion.starts_on <= at.today <= promotion.ends_on and promotion.category in (None, category)
    ]
    return max(running, default=100)


def _load_active_promotions(session: Session) -> list[PointsPromotion]:
    return list(session.scalars(select(PointsPromotion).where(PointsPromotion.is_active.is_(True))))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"

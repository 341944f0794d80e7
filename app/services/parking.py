"""Paying parking down (积分抵停车费): rules, quotes, payments, refunds and reconciliation.

Deductions apply in the mall's order: the tier's free minutes for the day, free minutes earned by
the day's spending, parking coupons (minutes, then money), then points at the configured rate
up to a cap per visit. Minutes are priced by the car park (its tariff is the truth), so pricing
takes a `fees` callable that asks it; nothing here talks HTTP or holds a lock while it does.

A payment is one transaction that locks the member row first, then debits points (via
app.services.points), uses coupons by conditional UPDATE and records the free minutes; the car
park is told afterwards, outside the transaction. A refusal refunds everything in one more
transaction; a lost answer leaves the payment `unknown` for `reconcile` to settle from the car
park's own record. Every settlement is a conditional UPDATE on the payment's status, so nothing is
settled twice.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.errors import Conflict, DomainError, NotFound, ValidationFailed
from app.integrations.carpark import DiscountNotice, ParkingFee
from app.mall_time import MallTime
from app.models import (
    Coupon,
    CouponKind,
    CouponStatus,
    Member,
    ParkingPayment,
    ParkingPaymentCoupon,
    ParkingPaymentStatus,
    ParkingQuote,
    ParkingRules,
    PointsEntryKind,
    Purchase,
    Tier,
)
from app.services import coupons, plates, points

# Statuses whose points, coupons and free minutes are taken (everything but a refund).
ACTIVE = (ParkingPaymentStatus.PENDING, ParkingPaymentStatus.PAID, ParkingPaymentStatus.UNKNOWN)
OPEN = (ParkingPaymentStatus.PENDING, ParkingPaymentStatus.UNKNOWN)


class QuoteNotFound(DomainError):
    code, status, message = "PARKING_QUOTE_NOT_FOUND", 404, "停车费报价不存在，请重新查询"


class QuoteExpired(DomainError):
    code, status, message = "PARKING_QUOTE_EXPIRED", 409, "报价已过期，请重新查询停车费"


class FeeChanged(DomainError):
    code, status, message = "PARKING_FEE_CHANGED", 409, "停车费或可用优惠已变化，请重新查询后再支付"


class QuoteUsed(Conflict):
    code, message = "PARKING_QUOTE_USED", "该报价已提交支付，请勿重复支付"


class VisitAlreadyPaid(Conflict):
    code, message = "PARKING_VISIT_ALREADY_PAID", "本次停车已使用会员抵扣，剩余费用请在出口支付"


class NothingToPay(Conflict):
    code, message = "PARKING_NOTHING_TO_PAY", "当前停车免费，无需缴费"


class CouponNotForParking(DomainError):
    code, status, message = "PARKING_COUPON_NOT_APPLICABLE", 422, "只能使用停车券抵扣停车费"


class CouponNotNeeded(DomainError):
    code, status, message = "PARKING_COUPON_NOT_NEEDED", 422, "停车费已抵扣完，无需再使用这张停车券"


class PointsOverLimit(DomainError):
    code, status, message = "PARKING_POINTS_OVER_LIMIT", 422, "超出本次可用于抵扣的积分"


class PaymentKeyConflict(Conflict):
    code, message = "IDEMPOTENCY_CONFLICT", "该请求编号已用于另一笔停车缴费"


class PaymentRefused(DomainError):
    code, status, message = (
        "PARKING_PAYMENT_REFUSED",
        409,
        "停车场未接受本次抵扣，积分、停车券和免费时长已全部退回",
    )


class PaymentNotDelivered(DomainError):
    code, status, message = (
        "PARKING_PAYMENT_FAILED",
        503,
        "停车场系统暂时无法连接，积分、停车券和免费时长已全部退回，请稍后再试",
    )


# --- rules --------------------------------------------------------------------------------------------


def parking_rules(session: Session) -> ParkingRules:
    """The mall's parking rules; the defaults until an operator saves their own."""
    return session.get(ParkingRules, 1) or ParkingRules.with_defaults()


@dataclass(frozen=True)
class RulesValues:
    quote_ttl_seconds: int
    points_per_yuan: int
    points_max_fen_per_visit: int
    spending_free_minutes: list[dict[str, int]]


def save_rules(session: Session, values: RulesValues, *, operator_id: int, at: MallTime) -> ParkingRules:
    """Replace the parking rules (the single row, created on the first save); applies to new quotes.

    Raises RetryableConflict if a concurrent first save inserted the row first.
    """
    thresholds = [row["min_spend_fen"] for row in values.spending_free_minutes]
    if len(set(thresholds)) != len(thresholds):
        raise ValidationFailed(details={"spending_free_minutes": ["消费门槛不能重复"]})
    rules = session.get(ParkingRules, 1, with_for_update=True)
    if rules is None:
        rules = ParkingRules(id=1)
        session.add(rules)
    rules.quote_ttl_seconds = values.quote_ttl_seconds
    rules.points_per_yuan = values.points_per_yuan
    rules.points_max_fen_per_visit = values.points_max_fen_per_visit
    rules.spending_free_minutes = sorted(
        (
            {"min_spend_fen": r["min_spend_fen"], "free_minutes": r["free_minutes"]}
            for r in values.spending_free_minutes
        ),
        key=lambda row: row["min_spend_fen"],
    )
    rules.updated_by_operator_id = operator_id
    rules.updated_at = at.now
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    return rules


# --- pricing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CouponCandidate:
    id: int
    name: str
    minutes: int
    value_fen: int
    valid_until: datetime


@dataclass(frozen=True)
class CouponUse:
    coupon_id: int
    name: str
    minutes: int
    value_fen: int


@dataclass(frozen=True)
class Breakdown:
    tier_minutes: int = 0
    spending_minutes: int = 0
    coupon_minutes: int = 0
    minutes_value_fen: int = 0
    coupons: list[CouponUse] = field(default_factory=list)
    coupon_value_fen: int = 0
    points: int = 0
    points_value_fen: int = 0
    amount_due_fen: int = 0

    @property
    def free_minutes(self) -> int:
        return self.tier_minutes + self.spending_minutes + self.coupon_minutes

    @property
    def deduction_fen(self) -> int:
        return self.minutes_value_fen + self.coupon_value_fen + self.points_value_fen


@dataclass(frozen=True)
class PricingContext:
    """What a member may use on one car's fee, read before the car park is asked."""

    member_id: int
    plate: str
    points_per_yuan: int
    points_max_fen_per_visit: int
    quote_ttl_seconds: int
    tier_minutes_left: int
    spending_minutes_left: int
    points_balance: int
    # The member's usable parking coupons (a quote suggests among them), or the ones chosen to pay with.
    coupons: list[CouponCandidate]
    # A payment's choices: fixed coupons (in the order given) and points; None suggests.
    coupons_chosen: bool = False
    points_chosen: int | None = None
    # The points are the quote's suggestion rather than the member's own number: trimmed, not refused.
    points_from_quote: bool = False
    quote: ParkingQuote | None = None
    existing_payment: ParkingPayment | None = None


@dataclass(frozen=True)
class Priced:
    fee: ParkingFee
    breakdown: Breakdown
    # Points the cap and the fee allow (the balance aside).
    points_limit: int


def price(context: PricingContext, fees: Callable[[int], ParkingFee]) -> Priced:
    """Apply the deductions in the mall's order to the car's fee. `fees(m)` asks the car park for the
    fee with m free minutes. Raises FeeChanged if the fee moved between the two questions."""
    fee = fees(0)
    if fee.total_fee_fen == 0:
        return Priced(fee, Breakdown(), 0)
    duration = fee.parking_minutes
    tier = min(context.tier_minutes_left, duration)
    spending = min(context.spending_minutes_left, duration - tier)
    covered = tier + spending

    minute_coupons = [c for c in context.coupons if c.minutes > 0]
    value_coupons = [c for c in context.coupons if c.minutes == 0]
    uses: list[CouponUse] = []
    for coupon in minute_coupons:
        if covered >= duration:
            if context.coupons_chosen:
                raise CouponNotNeeded(details={"coupon_id": coupon.id})
            break
        minutes = min(coupon.minutes, duration - covered)
        covered += minutes
        uses.append(CouponUse(coupon.id, coupon.name, minutes, 0))

    remaining = fee.total_fee_fen
    if covered:
        after = fees(covered)
        if (after.total_fee_fen, after.entry_time) != (fee.total_fee_fen, fee.entry_time):
            raise FeeChanged()
        remaining = after.fee_after_minutes_fen
    minutes_value = fee.total_fee_fen - remaining

    coupon_value = 0
    for coupon in value_coupons:
        if remaining == 0:
            if context.coupons_chosen:
                raise CouponNotNeeded(details={"coupon_id": coupon.id})
            break
        value = min(coupon.value_fen, remaining)
        remaining -= value
        coupon_value += value
        uses.append(CouponUse(coupon.id, coupon.name, 0, value))

    points_fen_cap = min(remaining, context.points_max_fen_per_visit)
    points_limit = math.ceil(points_fen_cap * context.points_per_yuan / 100)
    if context.points_chosen is None:
        spent = min(context.points_balance, points_limit)
    elif context.points_from_quote:
        spent = min(context.points_chosen, points_limit)
    else:
        spent = context.points_chosen
        if spent > points_limit:
            raise PointsOverLimit(
                f"本次最多可用 {points_limit} 积分抵扣", details={"max_points": points_limit}
            )
    points_value = min(points_fen_cap, spent * 100 // context.points_per_yuan)
    breakdown = Breakdown(
        tier_minutes=tier,
        spending_minutes=spending,
        coupon_minutes=sum(use.minutes for use in uses),
        minutes_value_fen=minutes_value,
        coupons=uses,
        coupon_value_fen=coupon_value,
        points=spent,
        points_value_fen=points_value,
        amount_due_fen=remaining - points_value,
    )
    return Priced(fee, breakdown, points_limit)


# --- quotes ---------------------------------------------------------------------------------------------


def quote_context(session: Session, member_id: int, raw_plate: str, *, at: MallTime) -> PricingContext:
    """What the member could use on the plate's fee now. The plate must be theirs."""
    plate = plates.own_plate(session, member_id, raw_plate)
    rules = parking_rules(session)
    tier_left, spending_left = free_minutes_left(session, member_id, rules, at=at)
    member = session.get_one(Member, member_id)
    return PricingContext(
        member_id=member_id,
        plate=plate,
        points_per_yuan=rules.points_per_yuan,
        points_max_fen_per_visit=rules.points_max_fen_per_visit,
        quote_ttl_seconds=rules.quote_ttl_seconds,
        tier_minutes_left=tier_left,
        spending_minutes_left=spending_left,
        points_balance=member.points_balance,
        coupons=usable_parking_coupons(session, member_id, at=at),
    )


def save_quote(session: Session, context: PricingContext, priced: Priced, *, at: MallTime) -> ParkingQuote:
    """Record a quote for the member; it can be paid until it expires."""
    fee, breakdown = priced.fee, priced.breakdown
    _check_visit_unpaid(session, context.plate, fee.entry_time)
    quote = ParkingQuote(
        member_id=context.member_id,
        plate=context.plate,
        entry_time=fee.entry_time,
        parking_minutes=fee.parking_minutes,
        fee_fen=fee.total_fee_fen,
        tier_minutes=breakdown.tier_minutes,
        spending_minutes=breakdown.spending_minutes,
        coupon_ids=[use.coupon_id for use in breakdown.coupons],
        points=breakdown.points,
        amount_due_fen=breakdown.amount_due_fen,
        created_at=at.now,
        expires_at=at.now + timedelta(seconds=context.quote_ttl_seconds),
    )
    session.add(quote)
    session.flush()
    return quote


def free_minutes_left(
    session: Session, member_id: int, rules: ParkingRules, *, at: MallTime
) -> tuple[int, int]:
    """(tier minutes, spending minutes) the member has left today; minutes of refunded payments are back."""
    tier_minutes = session.scalar(
        select(Tier.free_parking_minutes_per_day)
        .join(Member, Member.tier_id == Tier.id)
        .where(Member.id == member_id)
    )
    used_tier, used_spending = session.execute(
        select(
            func.coalesce(func.sum(ParkingPayment.tier_minutes), 0),
            func.coalesce(func.sum(ParkingPayment.spending_minutes), 0),
        ).where(
            ParkingPayment.member_id == member_id,
            ParkingPayment.business_date == at.today,
            ParkingPayment.status.in_(ACTIVE),
        )
    ).one()
    spent_today = session.scalar(
        select(func.coalesce(func.sum(Purchase.amount_fen - Purchase.refunded_fen), 0)).where(
            Purchase.member_id == member_id,
            Purchase.purchased_at >= at.start_of(at.today),
            Purchase.purchased_at < at.start_of(at.today + timedelta(days=1)),
        )
    )
    earned = max(
        (
            row["free_minutes"]
            for row in rules.spending_free_minutes
            if (spent_today or 0) >= row["min_spend_fen"]
        ),
        default=0,
    )
    return max(0, (tier_minutes or 0) - int(used_tier)), max(0, earned - int(used_spending))


def usable_parking_coupons(session: Session, member_id: int, *, at: MallTime) -> list[CouponCandidate]:
    """The member's parking coupons usable now, soonest to expire first."""
    rows = session.scalars(
        select(Coupon)
        .where(
            Coupon.member_id == member_id,
            Coupon.kind == CouponKind.PARKING,
            Coupon.status == CouponStatus.AVAILABLE,
            Coupon.valid_from <= at.now,
            Coupon.valid_until > at.now,
        )
        .order_by(Coupon.valid_until, Coupon.id)
    )
    return [_candidate(coupon) for coupon in rows]


def _candidate(coupon: Coupon) -> CouponCandidate:
    return CouponCandidate(
        coupon.id, coupon.name, coupon.parking_minutes, coupon.parking_value_fen, coupon.valid_until
    )


def _check_visit_unpaid(session: Session, plate: str, entry_time: datetime) -> None:
    paid = session.scalar(
        select(ParkingPayment.id)
        .where(
            ParkingPayment.plate == plate,
            ParkingPayment.entry_time == entry_time,
            ParkingPayment.status.in_(ACTIVE),
        )
        .limit(1)
    )
    if paid is not None:
        raise VisitAlreadyPaid()


# --- payments -------------------------------------------------------------------------------------------


def _quote_paid(session: Session, quote_id: int) -> bool:
    return session.scalar(select(ParkingPayment.id).where(ParkingPayment.quote_id == quote_id)) is not None


def payment_key(member_id: int, idempotency_key: str) -> str:
    return f"{member_id}:{idempotency_key}"


def payment_context(
    session: Session,
    member_id: int,
    quote_id: int,
    *,
    coupon_ids: list[int] | None,
    points_chosen: int | None,
    idempotency_key: str,
    at: MallTime,
) -> PricingContext:
    """What paying the quote would use: the member's choices, or the quote's suggestions where none.

    A request seen before (same key) carries its payment in `existing_payment` and needs nothing else.
    """
    existing = _payment_by_key(session, payment_key(member_id, idempotency_key))
    if existing is not None:
        if existing.quote_id != quote_id:
            raise PaymentKeyConflict()
        context_quote = session.get_one(ParkingQuote, quote_id)
        return _bare_context(context_quote, existing)
    quote = _own_quote(session, member_id, quote_id, at=at)
    # Before the coupons: a quote paid a moment ago says so, rather than "coupon used".
    if _quote_paid(session, quote.id):
        raise QuoteUsed()
    rules = parking_rules(session)
    tier_left, spending_left = free_minutes_left(session, member_id, rules, at=at)
    chosen_ids = quote.coupon_ids if coupon_ids is None else coupon_ids
    if len(set(chosen_ids)) != len(chosen_ids):
        raise ValidationFailed(details={"coupon_ids": ["不能重复"]})
    chosen = []
    for coupon_id in chosen_ids:
        coupon = coupons.own_coupon(session, member_id, coupon_id)
        try:
            coupons.check_usable(coupon, at)
        except coupons.CouponUsed:
            # Reads are READ COMMITTED: a concurrent payment of this quote may have just committed.
            if _quote_paid(session, quote.id):
                raise QuoteUsed() from None
            raise
        if coupon.kind is not CouponKind.PARKING:
            raise CouponNotForParking(details={"coupon_id": coupon_id})
        chosen.append(_candidate(coupon))
    # Once more, after every read: a payment of this quote committed while we were reading would
    # otherwise show up here as changed free minutes (reads are READ COMMITTED; its commit is atomic).
    if _quote_paid(session, quote.id):
        raise QuoteUsed()
    return PricingContext(
        member_id=member_id,
        plate=quote.plate,
        points_per_yuan=rules.points_per_yuan,
        points_max_fen_per_visit=rules.points_max_fen_per_visit,
        quote_ttl_seconds=rules.quote_ttl_seconds,
        # Exactly the minutes the member was quoted, if they are still there: checked again under lock.
        tier_minutes_left=min(tier_left, quote.tier_minutes),
        spending_minutes_left=min(spending_left, quote.spending_minutes),
        points_balance=session.get_one(Member, member_id).points_balance,
        coupons=chosen,
        coupons_chosen=True,
        points_chosen=quote.points if points_chosen is None else points_chosen,
        points_from_quote=points_chosen is None,
        quote=quote,
    )


def check_as_quoted(context: PricingContext, priced: Priced) -> None:
    """The fee and free minutes must be what the member was quoted; otherwise they must ask again."""
    quote = context.quote
    assert quote is not None
    fee, breakdown = priced.fee, priced.breakdown
    if (fee.total_fee_fen, fee.entry_time, breakdown.tier_minutes, breakdown.spending_minutes) != (
        quote.fee_fen,
        quote.entry_time,
        quote.tier_minutes,
        quote.spending_minutes,
    ):
        raise FeeChanged(details={"quoted_fee_fen": quote.fee_fen, "current_fee_fen": fee.total_fee_fen})
    if fee.total_fee_fen == 0:
        raise NothingToPay()


def reserve(
    session: Session, context: PricingContext, priced: Priced, *, idempotency_key: str, at: MallTime
) -> tuple[ParkingPayment, bool]:
    """Take the points, coupons and free minutes for a payment and record it as pending, all or nothing.

    Returns (payment, created); a repeated key returns the first payment. The member row is locked
    before anything else is read, so the reads after it are current whatever the isolation level
    (READ COMMITTED, or a REPEATABLE READ snapshot taken once the lock is held).
    """
    quote, breakdown = context.quote, priced.breakdown
    assert quote is not None
    member_id = context.member_id
    points.lock_account(session, member_id)
    key = payment_key(member_id, idempotency_key)
    if (existing := _payment_by_key(session, key)) is not None:
        if existing.quote_id != quote.id:
            raise PaymentKeyConflict()
        return existing, False
    if at.now >= quote.expires_at:
        raise QuoteExpired()
    if _quote_paid(session, quote.id):
        raise QuoteUsed()
    _check_visit_unpaid(session, quote.plate, quote.entry_time)
    tier_left, spending_left = free_minutes_left(session, member_id, parking_rules(session), at=at)
    if tier_left < breakdown.tier_minutes or spending_left < breakdown.spending_minutes:
        raise FeeChanged()
    payment = ParkingPayment(
        order_no=f"MP{uuid.uuid4().hex[:30].upper()}",
        idempotency_key=key,
        quote_id=quote.id,
        member_id=member_id,
        plate=quote.plate,
        entry_time=quote.entry_time,
        parking_minutes=priced.fee.parking_minutes,
        fee_fen=quote.fee_fen,
        tier_minutes=breakdown.tier_minutes,
        spending_minutes=breakdown.spending_minutes,
        coupon_minutes=breakdown.coupon_minutes,
        minutes_value_fen=breakdown.minutes_value_fen,
        coupon_value_fen=breakdown.coupon_value_fen,
        points=breakdown.points,
        points_value_fen=breakdown.points_value_fen,
        amount_due_fen=breakdown.amount_due_fen,
        status=ParkingPaymentStatus.PENDING,
        business_date=at.today,
        created_at=at.now,
    )
    session.add(payment)
    try:
        session.flush()
    except IntegrityError as exc:
        # The same key or quote, committed concurrently: the retry finds it.
        raise RetryableConflict() from exc
    for use in breakdown.coupons:
        used = session.execute(
            update(Coupon)
            .where(
                Coupon.id == use.coupon_id,
                Coupon.member_id == member_id,
                Coupon.status == CouponStatus.AVAILABLE,
                Coupon.valid_until > at.now,
            )
            .values(status=CouponStatus.USED, used_at=at.now)
            .execution_options(synchronize_session=False)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise coupons.CouponUsed(details={"coupon_id": use.coupon_id})
        session.add(
            ParkingPaymentCoupon(
                payment_id=payment.id, coupon_id=use.coupon_id, minutes=use.minutes, value_fen=use.value_fen
            )
        )
    if breakdown.points:
        points.spend(
            session,
            points.Posting(
                member_id,
                breakdown.points,
                PointsEntryKind.REDEMPTION,
                f"parking:{payment.id}",
                f"积分抵停车费：{quote.plate}",
                reference=f"parking:{payment.id}",
            ),
            at=at,
        )
    session.flush()
    return payment, True


def discount_notice(payment: ParkingPayment) -> DiscountNotice:
    return DiscountNotice(
        order_no=payment.order_no,
        plate=payment.plate,
        total_fee_fen=payment.fee_fen,
        discount_fen=payment.deduction_fen,
        discount_minutes=payment.free_minutes,
    )


def mark_paid(session: Session, payment_id: int, *, at: MallTime) -> ParkingPayment:
    """The car park applied the payment. No effect on a payment already settled."""
    return _settle(session, payment_id, ParkingPaymentStatus.PAID, at=at)


def mark_unknown(session: Session, payment_id: int, *, reason: str, at: MallTime) -> ParkingPayment:
    """The car park's answer was lost: leave the payment for reconciliation."""
    payment = session.get_one(ParkingPayment, payment_id)
    points.lock_account(session, payment.member_id)
    session.execute(
        update(ParkingPayment)
        .where(ParkingPayment.id == payment_id, ParkingPayment.status == ParkingPaymentStatus.PENDING)
        .values(status=ParkingPaymentStatus.UNKNOWN, failure_message=reason[:200])
        .execution_options(synchronize_session=False)
    )
    session.refresh(payment)
    return payment


def refund(session: Session, payment_id: int, *, code: str, message: str, at: MallTime) -> ParkingPayment:
    """The car park did not apply the payment: give back points and coupons (free minutes come back
    with the status). Only the first settlement of a payment does anything."""
    payment = session.get_one(ParkingPayment, payment_id)
    settled = _flip(session, payment, ParkingPaymentStatus.REFUNDED, at=at, code=code, message=message)
    if not settled:
        return payment
    if payment.points:
        points.earn(
            session,
            points.Posting(
                payment.member_id,
                payment.points,
                PointsEntryKind.REDEMPTION,
                f"parking-refund:{payment.id}",
                f"停车缴费未成功，退还积分：{payment.plate}",
                reference=f"parking:{payment.id}",
            ),
            at=at,
            settings=points.points_settings(session),
        )
    coupon_ids = session.scalars(
        select(ParkingPaymentCoupon.coupon_id).where(ParkingPaymentCoupon.payment_id == payment.id)
    ).all()
    if coupon_ids:
        session.execute(
            update(Coupon)
            .where(
                Coupon.id.in_(coupon_ids),
                Coupon.member_id == payment.member_id,
                Coupon.status == CouponStatus.USED,
            )
            .values(status=CouponStatus.AVAILABLE, used_at=None)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return payment


def _settle(
    session: Session, payment_id: int, status: ParkingPaymentStatus, *, at: MallTime
) -> ParkingPayment:
    payment = session.get_one(ParkingPayment, payment_id)
    _flip(session, payment, status, at=at)
    return payment


def _flip(
    session: Session,
    payment: ParkingPayment,
    status: ParkingPaymentStatus,
    *,
    at: MallTime,
    code: str | None = None,
    message: str | None = None,
) -> bool:
    """Move an open payment to its final status; False if someone settled it first."""
    points.lock_account(session, payment.member_id)
    values: dict[str, object] = {"status": status, "settled_at": at.now}
    if code is not None:
        values.update(failure_code=code[:32], failure_message=(message or "")[:200])
    flipped = session.execute(
        update(ParkingPayment)
        .where(ParkingPayment.id == payment.id, ParkingPayment.status.in_(OPEN))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(payment)
    return flipped.rowcount == 1  # type: ignore[attr-defined]


def payments_to_reconcile(
    session: Session, *, at: MallTime, pending_grace: timedelta, limit: int
) -> list[tuple[int, str]]:
    """(id, order number) of payments whose outcome is unknown, and of pending ones left behind
    (older than `pending_grace`: the request that made them is long over)."""
    return [
        (row.id, row.order_no)
        for row in session.execute(
            select(ParkingPayment.id, ParkingPayment.order_no)
            .where(
                (ParkingPayment.status == ParkingPaymentStatus.UNKNOWN)
                | (
                    (ParkingPayment.status == ParkingPaymentStatus.PENDING)
                    & (ParkingPayment.created_at < at.now - pending_grace)
                )
            )
            .order_by(ParkingPayment.id)
            .limit(limit)
        )
    ]


def _payment_by_key(session: Session, key: str) -> ParkingPayment | None:
    return session.scalars(select(ParkingPayment).where(ParkingPayment.idempotency_key == key)).one_or_none()


def _own_quote(session: Session, member_id: int, quote_id: int, *, at: MallTime) -> ParkingQuote:
    quote = session.get(ParkingQuote, quote_id)
    if quote is None or quote.member_id != member_id:
        raise QuoteNotFound()
    if at.now >= quote.expires_at:
        raise QuoteExpired()
    return quote


def _bare_context(quote: ParkingQuote, payment: ParkingPayment) -> PricingContext:
    return PricingContext(
        member_id=payment.member_id,
        plate=payment.plate,
        points_per_yuan=1,
        points_max_fen_per_visit=0,
        quote_ttl_seconds=0,
        tier_minutes_left=0,
        spending_minutes_left=0,
        points_balance=0,
        coupons=[],
        quote=quote,
        existing_payment=payment,
    )


# --- operators and staff ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFilter:
    status: ParkingPaymentStatus | None = None
    plate: str | None = None
    member_id: int | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None


def list_payments(
    session: Session, filters: PaymentFilter, *, offset: int, limit: int
) -> tuple[list[ParkingPayment], int]:
    """Payments matching the filters, newest first, and how many match in all."""
    query = select(ParkingPayment)
    if filters.status is not None:
        query = query.where(ParkingPayment.status == filters.status)
    if filters.plate is not None:
        query = query.where(ParkingPayment.plate == plates.normalize_plate(filters.plate))
    if filters.member_id is not None:
        query = query.where(ParkingPayment.member_id == filters.member_id)
    if filters.created_from is not None:
        query = query.where(ParkingPayment.created_at >= filters.created_from)
    if filters.created_before is not None:
        query = query.where(ParkingPayment.created_at < filters.created_before)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ParkingPayment.id.desc()).offset(offset).limit(limit))
    return list(rows), int(total)


@dataclass(frozen=True)
class PlateRecord:
    plate: str
    member: Member | None
    payments: list[ParkingPayment]


def plate_record(session: Session, raw_plate: str, *, limit: int = 20) -> PlateRecord:
    """For the information desk: who holds the plate and its latest payments."""
    plate = plates.normalize_plate(raw_plate)
    binding = plates.plate_binding(session, plate)
    member = session.get(Member, binding.member_id) if binding else None
    payments = list(
        session.scalars(
            select(ParkingPayment)
            .where(ParkingPayment.plate == plate)
            .order_by(ParkingPayment.id.desc())
            .limit(limit)
        )
    )
    if member is None and not payments:
        raise NotFound("没有该车牌的绑定或缴费记录")
    return PlateRecord(plate, member, payments)

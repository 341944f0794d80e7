"""Claiming, issuing, showing and redeeming (核销) coupons.

Stock only ever moves by conditional UPDATE (`... WHERE remaining_stock > 0`), a
coupon is used by conditional UPDATE (`... WHERE status = 'available'`), and a
member's claims serialise on the member row, so limits hold under concurrency.
Lock order, as everywhere: the member row first, then the template row; once the
member row is locked, a plain (READ COMMITTED, see app.db) count of their coupons is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import reference_cache
from app.db import RetryableConflict, insert_row
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.mall_time import MallTime
from app.models import (
    Coupon,
    CouponKind,
    CouponRedemption,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    Member,
    ParkingPayment,
    ParkingPaymentCoupon,
    ParkingPaymentStatus,
    PointsEntryKind,
    PointsSettings,
    Staff,
    Store,
    TemplateStatus,
)
from app.services import points
from app.services.member_codes import MemberCodeExpired, MemberCodeInvalid, MemberCodeSigner
from app.services.purchases import check_store_access

UNDO_WINDOW = timedelta(minutes=10)


class CouponTemplateNotFound(DomainError):
    code, status, message = "COUPON_TEMPLATE_NOT_FOUND", 404, "优惠券不存在"


class CouponNotAvailable(DomainError):
    code, status, message = "COUPON_NOT_AVAILABLE", 409, "该优惠券暂不可领取"


class OutsideClaimWindow(DomainError):
    code, status, message = "COUPON_NOT_IN_CLAIM_WINDOW", 409, "不在领取时间内"


class SoldOut(DomainError):
    code, status, message = "COUPON_SOLD_OUT", 409, "优惠券已抢光"


class LimitReached(DomainError):
    code, status, message = "COUPON_LIMIT_REACHED", 409, "您已达到该优惠券的领取上限"


class DailyLimitReached(DomainError):
    code, status, message = "COUPON_DAILY_LIMIT_REACHED", 409, "今日领取次数已达上限，明天再来吧"


class NotEligible(DomainError):
    code, status, message = "COUPON_NOT_ELIGIBLE", 403, "您的会员等级暂不可领取该优惠券"


class CouponNotFound(DomainError):
    code, status, message = "COUPON_NOT_FOUND", 404, "优惠券不存在"


class CouponCodeInvalid(DomainError):
    code, status, message = "COUPON_CODE_INVALID", 400, "券码无效，请让顾客重新出示"


class CouponCodeExpired(DomainError):
    code, status, message = "COUPON_CODE_EXPIRED", 400, "券码已过期，请让顾客刷新后重新出示"


class CouponUsed(DomainError):
    code, status, message = "COUPON_USED", 409, "该优惠券已使用"


class CouponExpired(DomainError):
    code, status, message = "COUPON_EXPIRED", 409, "该优惠券已过期"


class CouponNotYetValid(DomainError):
    code, status, message = "COUPON_NOT_YET_VALID", 409, "该优惠券尚未到使用时间"


class StoreNotEligible(DomainError):
    code, status, message = "COUPON_STORE_NOT_ELIGIBLE", 422, "该优惠券不适用于本门店"


class MinimumSpendNotMet(DomainError):
    code, status, message = "COUPON_MIN_SPEND_NOT_MET", 422, "订单金额未达到优惠券使用门槛"


class OrderAmountRequired(DomainError):
    code, status, message = "COUPON_ORDER_AMOUNT_REQUIRED", 422, "请填写订单金额"


class NotForCounter(DomainError):
    code, status, message = "COUPON_NOT_FOR_COUNTER", 422, "停车券请在停车缴费时使用"


class RedemptionNotFound(DomainError):
    code, status, message = "REDEMPTION_NOT_FOUND", 404, "核销记录不存在"


class UndoWindowPassed(Conflict):
    code, message = "REDEMPTION_UNDO_EXPIRED", "核销已超过 10 分钟，无法撤销"


class UndoOtherStore(Forbidden):
    code, message = "REDEMPTION_OTHER_STORE", "只能撤销本门店的核销"


class IssueKeyConflict(Conflict):
    code, message = "IDEMPOTENCY_CONFLICT", "该请求编号已用于领取另一张优惠券"


@dataclass(frozen=True)
class Redemption:
    redemption: CouponRedemption
    coupon: Coupon


def claim(
    session: Session,
    template_id: int,
    member_id: int,
    *,
    request_key: str,
    at: MallTime,
) -> tuple[Coupon, bool]:
    """A shopper claims (or buys with points) one coupon. Returns (coupon, created); a retry
    with the same request key returns the first coupon.

    Points and stock move in this one transaction: both or neither.
    """
    key = f"claim:{member_id}:{request_key}"
    # Most of a flash claim's requests end in this one narrow read: sold out, or a retry.
    glance = (
        session.connection().execute(_CLAIM_GLANCE, {"template_id": template_id, "key": key}).one_or_none()
    )
    if glance is not None and glance.coupon_id is not None:
        if glance.coupon_template_id != template_id:
            raise IssueKeyConflict()
        return session.get_one(Coupon, glance.coupon_id), False
    if glance is None or glance.status is TemplateStatus.DRAFT:
        raise CouponTemplateNotFound()
    if glance.status is not TemplateStatus.ACTIVE:
        raise CouponNotAvailable()
    if (glance.claim_starts_at and at.now < glance.claim_starts_at) or (
        glance.claim_ends_at and at.now >= glance.claim_ends_at
    ):
        raise OutsideClaimWindow()
    if glance.remaining_stock <= 0:
        raise SoldOut()  # without taking any lock
    template = _template_at(session, template_id, glance.revision)
    # A concurrent request with the same key loses on the unique key below and is retried.
    tier_id = _lock_member_tier(session, member_id)
    if template.eligible_tier_ids and tier_id not in template.eligible_tier_ids:
        raise NotEligible()
    _check_member_limits(session, template, member_id, at)
    _take_stock(session, template.id)
    coupon = _issue(
        session,
        template,
        member_id,
        source=CouponSource.POINTS_MALL if template.points_price else CouponSource.CLAIM,
        key=key,
        at=at,
    )
    if template.points_price:
        points.spend(
            session,
            points.Posting(
                member_id,
                template.points_price,
                PointsEntryKind.REDEMPTION,
                f"coupon:{coupon.id}",
                f"积分兑换：{template.name}",
                reference=f"coupon:{coupon.id}",
            ),
            at=at,
        )
        coupon.points_paid = template.points_price
    session.flush()
    return coupon, True


def issue_by_system(
    session: Session, template_id: int, member_id: int, *, source: CouponSource, key: str, at: MallTime
) -> Coupon | None:
    """Issue a coupon outside a claim (welcome, birthday, campaign), once per key.

    Respects stock but not claim windows or per-member limits. None when sold out or not active.
    """
    if existing := _coupon_by_key(session, key):
        return existing
    template = session.get(CouponTemplate, template_id)
    if template is None or template.status is not TemplateStatus.ACTIVE:
        return None
    try:
        _take_stock(session, template.id)
    except SoldOut:
        return None
    return _issue(session, template, member_id, source=source, key=key, at=at)


def claimable_templates(session: Session, *, at: MallTime) -> list[CouponTemplate]:
    """Active templates with stock whose claim window is open now."""
    return list(
        session.scalars(
            select(CouponTemplate)
            .where(
                CouponTemplate.status == TemplateStatus.ACTIVE,
                CouponTemplate.remaining_stock > 0,
                (CouponTemplate.claim_starts_at.is_(None)) | (CouponTemplate.claim_starts_at <= at.now),
                (CouponTemplate.claim_ends_at.is_(None)) | (CouponTemplate.claim_ends_at > at.now),
            )
            .order_by(CouponTemplate.id.desc())
        )
    )


def member_coupons(
    session: Session, member_id: int, *, status: CouponStatus | None, at: MallTime
) -> list[Coupon]:
    """A member's own coupons. Coupons past their last moment count as expired even before the job runs."""
    query = select(Coupon).where(Coupon.member_id == member_id)
    if status is CouponStatus.AVAILABLE:
        query = query.where(Coupon.status == CouponStatus.AVAILABLE, Coupon.valid_until > at.now)
    elif status is CouponStatus.EXPIRED:
        query = query.where(
            (Coupon.status == CouponStatus.EXPIRED)
            | ((Coupon.status == CouponStatus.AVAILABLE) & (Coupon.valid_until <= at.now))
        )
    elif status is CouponStatus.USED:
        query = query.where(Coupon.status == CouponStatus.USED)
    return list(session.scalars(query.order_by(Coupon.valid_until, Coupon.id)))


def own_coupon(session: Session, member_id: int, coupon_id: int) -> Coupon:
    """The member's coupon; someone else's is indistinguishable from a missing one."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None or coupon.member_id != member_id:
        raise CouponNotFound()
    return coupon


def check_usable(coupon: Coupon, at: MallTime) -> None:
    if coupon.status is CouponStatus.USED:
        raise CouponUsed()
    if coupon.status is CouponStatus.EXPIRED or at.now >= coupon.valid_until:
        raise CouponExpired()
    if at.now < coupon.valid_from:
        raise CouponNotYetValid()


def redeem(
    session: Session,
    code: str,
    store_id: int,
    order_amount_fen: int | None,
    *,
    staff: Staff,
    signer: MemberCodeSigner,
    at: MallTime,
) -> Redemption:
    """Verify a coupon at the counter: ownership is in the signed code, then validity, store scope
    and minimum spend. Single use: the status flips by conditional UPDATE."""
    check_store_access(staff, store_id)
    try:
        coupon_id, _ = signer.read(code, at.now)
    except MemberCodeInvalid as exc:
        raise CouponCodeInvalid() from exc
    except MemberCodeExpired as exc:
        raise CouponCodeExpired() from exc
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise CouponCodeInvalid()
    check_usable(coupon, at)
    if coupon.kind is CouponKind.PARKING:
        raise NotForCounter()
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound("门店不存在")
    if (coupon.store_ids and store.id not in coupon.store_ids) or (
        coupon.store_categories and store.category not in coupon.store_categories
    ):
        raise StoreNotEligible()
    deduction = deduction_fen(coupon, order_amount_fen)
    used = session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id, Coupon.status == CouponStatus.AVAILABLE)
        .values(status=CouponStatus.USED, used_at=at.now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise CouponUsed()
    redemption = CouponRedemption(
        coupon_id=coupon.id,
        store_id=store.id,
        staff_id=staff.id,
        order_amount_fen=order_amount_fen,
        deduction_fen=deduction,
        redeemed_at=at.now,
    )
    session.add(redemption)
    session.flush()
    session.refresh(coupon)
    return Redemption(redemption, coupon)


def deduction_fen(coupon: Coupon, order_amount_fen: int | None) -> int:
    """What the counter takes off the order. Gifts deduct nothing: the counter hands over the gift."""
    if coupon.kind is CouponKind.GIFT:
        return 0
    if order_amount_fen is None:
        raise OrderAmountRequired()
    if order_amount_fen < coupon.min_spend_fen:
        raise MinimumSpendNotMet(details={"min_spend_fen": coupon.min_spend_fen})
    if coupon.kind is CouponKind.CASH_OFF:
        return min(coupon.face_value_fen, order_amount_fen)
    saving = order_amount_fen * (100 - coupon.discount_percent) // 100
    return min(saving, coupon.max_discount_fen) if coupon.max_discount_fen else saving


def undo_redemption(session: Session, redemption_id: int, *, staff: Staff, at: MallTime) -> Redemption:
    """Undo a mistaken verification: same store, within ten minutes; the coupon is usable again."""
    redemption = session.get(CouponRedemption, redemption_id, with_for_update=True)
    if redemption is None:
        raise RedemptionNotFound()
    coupon = session.get_one(Coupon, redemption.coupon_id)
    if redemption.undone_at is not None:
        return Redemption(redemption, coupon)
    if staff.store_id != redemption.store_id:
        raise UndoOtherStore()
    if at.now - redemption.redeemed_at > UNDO_WINDOW:
        raise UndoWindowPassed()
    session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id, Coupon.status == CouponStatus.USED)
        .values(status=CouponStatus.AVAILABLE, used_at=None)
        .execution_options(synchronize_session=False)
    )
    redemption.undone_at = at.now
    redemption.undone_by_staff_id = staff.id
    session.flush()
    session.refresh(coupon)
    return Redemption(redemption, coupon)


def expire_due(session: Session, *, at: MallTime, settings: PointsSettings, limit: int = 500) -> int:
    """Lapse coupons past their validity; refund points where the template promised it. Returns count."""
    due = session.scalars(
        select(Coupon)
        .where(Coupon.status == CouponStatus.AVAILABLE, Coupon.valid_until <= at.now)
        .order_by(Coupon.id)
        .limit(limit)
    ).all()
    expired = 0
    for coupon in due:
        lapsed = session.execute(
            update(Coupon)
            .where(Coupon.id == coupon.id, Coupon.status == CouponStatus.AVAILABLE)
            .values(status=CouponStatus.EXPIRED)
            .execution_options(synchronize_session=False)
        )
        if lapsed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        expired += 1
        if coupon.refund_points_on_expiry and coupon.points_paid:
            points.earn(
                session,
                points.Posting(
                    coupon.member_id,
                    coupon.points_paid,
                    PointsEntryKind.REDEMPTION,
                    f"coupon-expiry-refund:{coupon.id}",
                    f"优惠券过期退还积分：{coupon.name}",
                    reference=f"coupon:{coupon.id}",
                ),
                at=at,
                settings=settings,
            )
    return expired


def verify_coupons(session: Session) -> list[str]:
    """Every violated coupon invariant: stock + issued == total; each coupon used at most once."""
    problems = []
    issued = select(Coupon.template_id, func.count().label("issued")).group_by(Coupon.template_id).subquery()
    for template_id, total, remaining, count in session.execute(
        select(
            CouponTemplate.id,
            CouponTemplate.total_stock,
            CouponTemplate.remaining_stock,
            func.coalesce(issued.c.issued, 0),
        ).outerjoin(issued, issued.c.template_id == CouponTemplate.id)
    ):
        if remaining + count != total:
            problems.append(
                f"template {template_id}: remaining {remaining} + issued {count} != total {total}"
            )
    at_counter = select(CouponRedemption.coupon_id).where(CouponRedemption.undone_at.is_(None))
    # Parking coupons are used by parking payments instead, as long as the payment is not refunded.
    for_parking = (
        select(ParkingPaymentCoupon.coupon_id)
        .join(ParkingPayment, ParkingPayment.id == ParkingPaymentCoupon.payment_id)
        .where(ParkingPayment.status != ParkingPaymentStatus.REFUNDED)
    )
    all_uses = union_all(at_counter, for_parking).subquery()
    active = (
        select(all_uses.c.coupon_id, func.count().label("uses")).group_by(all_uses.c.coupon_id).subquery()
    )
    for coupon_id, status, uses in session.execute(
        select(Coupon.id, Coupon.status, func.coalesce(active.c.uses, 0)).outerjoin(
            active, active.c.coupon_id == Coupon.id
        )
    ):
        if uses > 1:
            problems.append(f"coupon {coupon_id}: redeemed {uses} times")
        if (uses == 1) != (status is CouponStatus.USED):
            problems.append(f"coupon {coupon_id}: status {status} but {uses} active redemptions")
    return problems


# The template's claimability and any coupon already issued under the request's key, in one row.
_CLAIM_GLANCE = (
    select(
        CouponTemplate.status,
        CouponTemplate.remaining_stock,
        CouponTemplate.claim_starts_at,
        CouponTemplate.claim_ends_at,
        CouponTemplate.revision,
        Coupon.id.label("coupon_id"),
        Coupon.template_id.label("coupon_template_id"),
    )
    .outerjoin(Coupon, Coupon.idempotency_key == bindparam("key"))
    .where(CouponTemplate.id == bindparam("template_id"))
)
_LOCK_MEMBER_TIER = select(Member.tier_id).where(Member.id == bindparam("member_id")).with_for_update()
_COUPON_BY_KEY = select(Coupon).where(Coupon.idempotency_key == bindparam("key"))
_HELD_OF_TEMPLATE = select(Coupon.issued_on).where(
    Coupon.template_id == bindparam("template_id"), Coupon.member_id == bindparam("member_id")
)
_TAKE_STOCK = (
    update(CouponTemplate)
    .where(
        CouponTemplate.id == bindparam("template_id"),
        CouponTemplate.remaining_stock > 0,
        CouponTemplate.status == TemplateStatus.ACTIVE,
    )
    .values(remaining_stock=CouponTemplate.remaining_stock - 1)
)


def _template_at(session: Session, template_id: int, revision: int) -> CouponTemplate:
    """The template's terms and limits, from this process's copy while its revision holds (a flash
    claim's winners would otherwise each read the whole row). Its stock and status are stale: read
    those fresh."""
    return reference_cache.cached_at_revision(
        session,
        f"coupon_template:{template_id}",
        revision,
        lambda loader: loader.get_one(CouponTemplate, template_id),
    )


def _lock_member_tier(session: Session, member_id: int) -> int:
    """The member's tier, with the member row locked until the transaction ends (claims of one
    member serialise here)."""
    tier_id = session.connection().scalar(_LOCK_MEMBER_TIER, {"member_id": member_id})
    if tier_id is None:
        raise NotFound("会员不存在")
    return tier_id


def _coupon_by_key(session: Session, key: str) -> Coupon | None:
    return session.scalars(_COUPON_BY_KEY, {"key": key}).one_or_none()


def _check_member_limits(session: Session, template: CouponTemplate, member_id: int, at: MallTime) -> None:
    """Call with the member row locked (see `claim`).

    A plain read, on purpose: a locking read here would take gap locks on the coupons index
    that other members' inserts wait for while holding the template row: a deadlock.
    """
    if not (template.per_member_limit or template.per_member_daily_limit):
        return
    params = {"template_id": template.id, "member_id": member_id}
    held = session.connection().scalars(_HELD_OF_TEMPLATE, params).all()
    if template.per_member_limit and len(held) >= template.per_member_limit:
        raise LimitReached()
    if template.per_member_daily_limit and held.count(at.today) >= template.per_member_daily_limit:
        raise DailyLimitReached()


def _take_stock(session: Session, template_id: int) -> None:
    taken = session.connection().execute(_TAKE_STOCK, {"template_id": template_id})
    if taken.rowcount != 1:
        raise SoldOut()


def _issue(
    session: Session,
    template: CouponTemplate,
    member_id: int,
    *,
    source: CouponSource,
    key: str,
    at: MallTime,
) -> Coupon:
    valid_from, valid_until = _validity(template, at)
    coupon = Coupon(
        template_id=template.id,
        member_id=member_id,
        source=source,
        idempotency_key=key,
        refund_points_on_expiry=template.refund_points_on_expiry,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_at=at.now,
        issued_on=at.today,
        **template.terms(),
    )
    try:
        return insert_row(session, coupon)
    except IntegrityError as exc:
        raise RetryableConflict() from exc


def _validity(template: CouponTemplate, at: MallTime) -> tuple[datetime, datetime]:
    if template.valid_days_after_issue:
        # Valid through the end of the Nth business day, counting today as the first.
        return at.now, at.start_of(at.today + timedelta(days=template.valid_days_after_issue))
    assert template.valid_from is not None and template.valid_until is not None
    return template.valid_from, template.valid_until

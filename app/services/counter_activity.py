"""What a store's counter did today: the purchases it credited and the coupons it verified (the
merchant assistant page lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.mall_time import MallTime
from app.models import Coupon, CouponRedemption, CouponTemplate, Member, Purchase

DAY_LIMIT = 200


@dataclass(frozen=True)
class CreditedPurchase:
    purchase: Purchase
    member_phone_masked: str | None


@dataclass(frozen=True)
class VerifiedCoupon:
    redemption: CouponRedemption
    template_name: str


def store_today(
    session: Session, store_id: int, at: MallTime
) -> tuple[list[CreditedPurchase], list[VerifiedCoupon]]:
    """The store's purchases credited and coupons verified (not undone) on `at`'s business day,
    newest first."""
    start = at.start_of(at.today)
    end = start + timedelta(days=1)
    purchases = session.execute(
        select(Purchase, Member.phone_masked)
        .outerjoin(Member, Member.id == Purchase.member_id)
        .where(Purchase.store_id == store_id, Purchase.created_at >= start, Purchase.created_at < end)
        .order_by(Purchase.created_at.desc(), Purchase.id.desc())
        .limit(DAY_LIMIT)
    ).all()
    redemptions = session.execute(
        select(CouponRedemption, CouponTemplate.name)
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(
            CouponRedemption.store_id == store_id,
            CouponRedemption.redeemed_at >= start,
            CouponRedemption.redeemed_at < end,
            CouponRedemption.undone_at.is_(None),
        )
        .order_by(CouponRedemption.redeemed_at.desc(), CouponRedemption.id.desc())
        .limit(DAY_LIMIT)
    ).all()
    return (
        [CreditedPurchase(purchase, phone) for purchase, phone in purchases],
        [VerifiedCoupon(redemption, name) for redemption, name in redemptions],
    )

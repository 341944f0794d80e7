"""Points for engagement: welcome, referral, daily check-in, sharing, birthday month, and adjustments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import extract, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.errors import DomainError
from app.mall_time import MallTime
from app.models import (
    CheckIn,
    CheckInStreakBonus,
    CouponSource,
    Member,
    PointsEntry,
    PointsEntryKind,
    PointsSettings,
    Tier,
)
from app.services import coupons, points
from app.services.points import Posting


class AdjustmentInvalid(DomainError):
    code, status, message = "ADJUSTMENT_INVALID", 422, "调整积分不能为 0"


@dataclass(frozen=True)
class ShareResult:
    points: int
    shares_rewarded_today: int
    daily_limit: int


def reward_sign_up(session: Session, member: Member, *, at: MallTime, settings: PointsSettings) -> None:
    """Welcome points (and coupon) for a new member, and referral points for both sides when a member
    referred them."""
    if settings.welcome_coupon_template_id:
        coupons.issue_by_system(
            session,
            settings.welcome_coupon_template_id,
            member.id,
            source=CouponSource.WELCOME,
            key=f"welcome-coupon:{member.id}",
            at=at,
        )
    if settings.welcome_points:
        points.earn(
            session,
            Posting(
                member.id,
                settings.welcome_points,
                PointsEntryKind.WELCOME,
                f"welcome:{member.id}",
                "新会员注册礼",
            ),
            at=at,
            settings=settings,
        )
    if member.referred_by_member_id is None:
        return
    if settings.referee_points:
        points.earn(
            session,
            Posting(
                member.id,
                settings.referee_points,
                PointsEntryKind.REFERRAL,
                f"referral:{member.id}:referee",
                "受邀注册奖励",
                reference=f"member:{member.referred_by_member_id}",
            ),
            at=at,
            settings=settings,
        )
    if settings.referrer_points:
        points.earn(
            session,
            Posting(
                member.referred_by_member_id,
                settings.referrer_points,
                PointsEntryKind.REFERRAL,
                f"referral:{member.id}:referrer",
                "推荐好友注册奖励",
                reference=f"member:{member.id}",
            ),
            at=at,
            settings=settings,
        )


def check_in(
    session: Session, member_id: int, *, at: MallTime, settings: PointsSettings
) -> tuple[CheckIn, bool]:
    """Today's check-in (created once per business day) and whether this call created it."""
    points.lock_account(session, member_id)
    today = _check_in_on(session, member_id, at.today)
    if today is not None:
        return today, False
    yesterday = _check_in_on(session, member_id, at.today - timedelta(days=1))
    streak = yesterday.streak + 1 if yesterday else 1
    bonus = session.scalar(
        select(CheckInStreakBonus.bonus_points).where(CheckInStreakBonus.streak_days == streak)
    )
    record = CheckIn(
        member_id=member_id,
        business_date=at.today,
        streak=streak,
        points=settings.checkin_points,
        bonus_points=bonus or 0,
        created_at=at.now,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    total = record.points + record.bonus_points
    if total:
        description = f"每日签到（连续 {streak} 天）" + (f"，连签奖励 {bonus} 分" if bonus else "")
        points.earn(
            session,
            Posting(
                member_id, total, PointsEntryKind.CHECK_IN, f"check_in:{member_id}:{at.today}", description
            ),
            at=at,
            settings=settings,
        )
    return record, True


def reward_share(session: Session, member_id: int, *, at: MallTime, settings: PointsSettings) -> ShareResult:
    """Points for a share, up to the daily limit; beyond it the share is welcome but earns nothing."""
    points.lock_account(session, member_id)
    # The member row is locked, so this READ COMMITTED count is current.
    rewarded = int(
        session.scalar(
            select(func.count()).where(
                PointsEntry.member_id == member_id,
                PointsEntry.kind == PointsEntryKind.SHARE,
                PointsEntry.business_date == at.today,
            )
        )
        or 0
    )
    if rewarded >= settings.share_daily_limit or not settings.share_points:
        return ShareResult(0, rewarded, settings.share_daily_limit)
    points.earn(
        session,
        Posting(
            member_id,
            settings.share_points,
            PointsEntryKind.SHARE,
            f"share:{member_id}:{at.today}:{rewarded + 1}",
            "分享小程序",
        ),
        at=at,
        settings=settings,
    )
    return ShareResult(settings.share_points, rewarded + 1, settings.share_daily_limit)


def birthday_members(session: Session, *, at: MallTime) -> list[int]:
    """Members whose birthday falls in this month (29 February counts as February)."""
    return list(
        session.scalars(
            select(Member.id).where(extract("month", Member.birthday) == at.today.month).order_by(Member.id)
        )
    )


def reward_birthday(session: Session, member_id: int, *, at: MallTime, settings: PointsSettings) -> bool:
    """The birthday-month gifts, at most once per member per year: bonus points, and the coupon
    of the member's tier if it has one. True if the points were granted now."""
    tier = session.get_one(Tier, session.get_one(Member, member_id).tier_id)
    if tier.birthday_coupon_template_id:
        coupons.issue_by_system(
            session,
            tier.birthday_coupon_template_id,
            member_id,
            source=CouponSource.BIRTHDAY,
            key=f"birthday-coupon:{member_id}:{at.today.year}",
            at=at,
        )
    if not settings.birthday_points:
        return False
    posting = Posting(
        member_id,
        settings.birthday_points,
        PointsEntryKind.BIRTHDAY,
        f"birthday:{member_id}:{at.today.year}",
        f"{at.today.year}年生日月礼遇",
    )
    if points.existing_entry(session, posting):
        return False
    points.earn(session, posting, at=at, settings=settings)
    return True


def adjust(
    session: Session,
    member_id: int,
    delta: int,
    reason: str,
    *,
    operator_id: int,
    idempotency_key: str,
    at: MallTime,
    settings: PointsSettings,
) -> PointsEntry:
    """An operator's manual correction, recorded with who and why. A debit never overdraws."""
    if delta == 0:
        raise AdjustmentInvalid()
    posting = Posting(
        member_id,
        abs(delta),
        PointsEntryKind.ADJUSTMENT,
        _adjust_key(idempotency_key),
        f"人工调整：{reason}",
        operator_id=operator_id,
    )
    if delta > 0:
        return points.earn(session, posting, at=at, settings=settings)
    return points.spend(session, posting, at=at)


@dataclass(frozen=True)
class OperatorAdjustment:
    entry: PointsEntry
    repeated: bool  # the key had been used already: nothing changed this time


def adjust_by_operator(
    session: Session,
    member_id: int,
    delta: int,
    reason: str,
    *,
    operator_id: int,
    idempotency_key: str,
    at: MallTime,
) -> OperatorAdjustment:
    """An operator's adjustment (admin API and console alike): NotFound for an unknown member whatever
    the sign; a repeat of the key returns the first entry (`repeated`), and a repeat with another
    amount is an IdempotencyConflict; a debit never overdraws (InsufficientPoints)."""
    # Locked first, so that the member is known and a concurrent repeat waits for the first.
    points.lock_account(session, member_id)
    merged_into, deleted_at = session.execute(
        select(Member.merged_into_member_id, Member.deleted_at).where(Member.id == member_id)
    ).one()
    if merged_into is not None:
        raise AdjustmentInvalid(f"该会员已合并到会员 {merged_into}，请在会员 {merged_into} 名下调整积分")
    if deleted_at is not None:
        raise AdjustmentInvalid("该会员已注销，不能再调整积分")
    repeated = (
        session.scalar(
            select(PointsEntry.id).where(PointsEntry.idempotency_key == _adjust_key(idempotency_key))
        )
        is not None
    )
    entry = adjust(
        session,
        member_id,
        delta,
        reason,
        operator_id=operator_id,
        idempotency_key=idempotency_key,
        at=at,
        settings=points.points_settings(session),
    )
    # The ledger matches a repeat on the amount, not its sign: +100 replayed as -100 is another request.
    if entry.delta != delta:
        raise points.IdempotencyConflict()
    # What was stored (MySQL keeps whole seconds), so that a retry is answered with the same values.
    session.refresh(entry)
    return OperatorAdjustment(entry, repeated)


def _adjust_key(idempotency_key: str) -> str:
    return f"adjust:{idempotency_key}"


def _check_in_on(session: Session, member_id: int, day: date) -> CheckIn | None:
    return session.scalars(
        select(CheckIn).where(CheckIn.member_id == member_id, CheckIn.business_date == day).with_for_update()
    ).one_or_none()

"""The rules operators set for points and tiers: settings, earning rates, promotions, streak bonuses, tiers.

Each function checks its rule itself, whoever calls it, so the database's constraints are the
last line of defence and never the error a caller sees. A unique key lost to a concurrent
request raises RetryableConflict; run again by `run_transaction`, the check before the write
sees the winner and reports the domain's 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date
from itertools import pairwise
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.errors import Conflict, DomainError, NotFound, ValidationFailed
from app.mall_time import MallTime
from app.models import (
    CheckInStreakBonus,
    CouponTemplate,
    EarningRate,
    ExpiryPolicy,
    Member,
    PointsPromotion,
    PointsSettings,
    Tier,
    TierChange,
)

Rule = TypeVar("Rule", EarningRate, PointsPromotion, CheckInStreakBonus)


class EarningRateExists(Conflict):
    code, message = "EARNING_RATE_EXISTS", "该业态的积分规则已存在"


class CheckInBonusExists(Conflict):
    code, message = "CHECK_IN_BONUS_EXISTS", "该连续签到天数的奖励已存在"


class TierCodeExists(Conflict):
    code, message = "TIER_CODE_EXISTS", "等级代码已存在"


class TierRankExists(Conflict):
    code, message = "TIER_RANK_EXISTS", "该等级序号已被其他等级使用"


class TierThresholdsInvalid(DomainError):
    code, status, message = "TIER_THRESHOLDS_INVALID", 422, "等级越高，升级所需的年消费必须越高"


class TierInUse(Conflict):
    code, message = "TIER_IN_USE", "仍有会员处于该等级，不能删除"


class LastTier(Conflict):
    code, message = "TIER_LAST_REMAINING", "至少需要保留一个会员等级"


# --- points settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsValues:
    welcome_points: int
    checkin_points: int
    share_points: int
    share_daily_limit: int
    referrer_points: int
    referee_points: int
    birthday_points: int
    purchase_min_amount_fen: int
    purchase_daily_cap_points: int
    expiry_policy: ExpiryPolicy
    expiry_days: int
    welcome_coupon_template_id: int | None = None


def save_settings(
    session: Session, values: SettingsValues, *, operator_id: int, at: MallTime
) -> PointsSettings:
    """Replace the mall's points rules (the single row, created on the first save), recording who did it.

    Takes effect for postings from now on: lots already earned keep their expiry date.
    Raises RetryableConflict if a concurrent first save inserted the row first.
    """
    negative = [name for name, value in asdict(values).items() if isinstance(value, int) and value < 0]
    if negative:
        raise ValidationFailed(details={name: ["不能小于 0"] for name in negative})
    if values.expiry_days < 1:
        raise ValidationFailed(details={"expiry_days": ["有效天数至少为 1 天"]})
    _check_coupon_template(session, "welcome_coupon_template_id", values.welcome_coupon_template_id)
    settings = session.get(PointsSettings, 1, with_for_update=True)
    if settings is None:
        settings = PointsSettings(id=1)
        session.add(settings)
    for name, value in asdict(values).items():
        setattr(settings, name, value)
    settings.updated_by_operator_id = operator_id
    settings.updated_at = at.now
    _flush(session)
    return settings


def locked_settings(session: Session) -> PointsSettings:
    """The settings row, locked for a change; the defaults (not in the session) until the first save."""
    return session.get(PointsSettings, 1, with_for_update=True) or PointsSettings.with_defaults()


def change_settings(
    session: Session, changes: Mapping[str, Any], *, operator_id: int, at: MallTime
) -> PointsSettings:
    """Change some of the settings and keep the others as they are.

    The others are read under the row's lock, so two operators saving different fields at once
    both keep their change. Raises RetryableConflict like `save_settings`.
    """
    unknown = set(changes) - {field.name for field in fields(SettingsValues)}
    if unknown:
        raise ValueError(f"not settings: {sorted(unknown)}")
    current = locked_settings(session)
    kept = {field.name: getattr(current, field.name) for field in fields(SettingsValues)}
    return save_settings(session, SettingsValues(**{**kept, **changes}), operator_id=operator_id, at=at)


# --- earning rates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarningRateValues:
    category: str
    spend_unit_fen: int
    points_per_unit: int


def list_earning_rates(session: Session) -> list[EarningRate]:
    return list(session.scalars(select(EarningRate).order_by(EarningRate.id)))


def create_earning_rate(session: Session, values: EarningRateValues) -> EarningRate:
    """A rate for a category that has none yet (409 otherwise)."""
    _check_earning_rate(session, values, rate_id=None)
    rate = EarningRate(**asdict(values))
    session.add(rate)
    _flush(session)
    return rate


def update_earning_rate(session: Session, rate_id: int, values: EarningRateValues) -> EarningRate:
    rate = _get(session, EarningRate, rate_id, "积分规则不存在")
    _check_earning_rate(session, values, rate_id=rate.id)
    _assign(rate, values)
    _flush(session)
    return rate


def delete_earning_rate(session: Session, rate_id: int) -> None:
    """Purchases in that category fall back to the "*" rate (or 1 point per yuan without one)."""
    session.delete(_get(session, EarningRate, rate_id, "积分规则不存在"))
    session.flush()


def _check_earning_rate(session: Session, values: EarningRateValues, *, rate_id: int | None) -> None:
    if values.spend_unit_fen < 1:
        raise ValidationFailed(details={"spend_unit_fen": ["不能小于 1"]})
    if values.points_per_unit < 0:
        raise ValidationFailed(details={"points_per_unit": ["不能小于 0"]})
    # Compared by the database, so that its collation decides what counts as the same category.
    taken = session.scalar(
        select(EarningRate.id).where(
            EarningRate.category == values.category, EarningRate.id != (rate_id or 0)
        )
    )
    if taken is not None:
        raise EarningRateExists(details={"category": values.category})


# --- promotions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionValues:
    name: str
    starts_on: date
    ends_on: date
    multiplier_percent: int
    category: str | None = None
    is_active: bool = True


def list_promotions(session: Session) -> list[PointsPromotion]:
    """Latest first."""
    return list(
        session.scalars(
            select(PointsPromotion).order_by(PointsPromotion.starts_on.desc(), PointsPromotion.id)
        )
    )


def create_promotion(session: Session, values: PromotionValues) -> PointsPromotion:
    _check_promotion(values)
    promotion = PointsPromotion(**asdict(values))
    session.add(promotion)
    session.flush()
    return promotion


def update_promotion(session: Session, promotion_id: int, values: PromotionValues) -> PointsPromotion:
    promotion = _get(session, PointsPromotion, promotion_id, "积分活动不存在")
    _check_promotion(values)
    _assign(promotion, values)
    session.flush()
    return promotion


def delete_promotion(session: Session, promotion_id: int) -> None:
    session.delete(_get(session, PointsPromotion, promotion_id, "积分活动不存在"))
    session.flush()


def _check_promotion(values: PromotionValues) -> None:
    if values.multiplier_percent < 100:
        raise ValidationFailed(details={"multiplier_percent": ["积分倍率不能低于 100（1 倍）"]})
    if values.ends_on < values.starts_on:
        raise ValidationFailed(details={"ends_on": ["结束日期不能早于开始日期"]})


# --- check-in streak bonuses ---------------------------------------------------------------------


def list_check_in_bonuses(session: Session) -> list[CheckInStreakBonus]:
    return list(session.scalars(select(CheckInStreakBonus).order_by(CheckInStreakBonus.streak_days)))


def create_check_in_bonus(session: Session, *, streak_days: int, bonus_points: int) -> CheckInStreakBonus:
    """Extra points on the Nth consecutive check-in; one bonus per N (409 otherwise)."""
    if streak_days < 2:
        # Day 1 is an ordinary check-in: its points are the settings' checkin_points.
        raise ValidationFailed(details={"streak_days": ["连续签到天数至少为 2"]})
    if bonus_points < 1:
        raise ValidationFailed(details={"bonus_points": ["奖励积分至少为 1"]})
    if session.scalar(select(CheckInStreakBonus.id).where(CheckInStreakBonus.streak_days == streak_days)):
        raise CheckInBonusExists(details={"streak_days": streak_days})
    bonus = CheckInStreakBonus(streak_days=streak_days, bonus_points=bonus_points)
    session.add(bonus)
    _flush(session)
    return bonus


def delete_check_in_bonus(session: Session, bonus_id: int) -> None:
    session.delete(_get(session, CheckInStreakBonus, bonus_id, "连续签到奖励不存在"))
    session.flush()


# --- tiers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierValues:
    code: str
    name: str
    rank: int
    min_annual_spend_fen: int
    points_multiplier_percent: int
    free_parking_minutes_per_day: int
    birthday_coupon_template_id: int | None = None


def _check_coupon_template(session: Session, field: str, template_id: int | None) -> None:
    if template_id is not None and session.get(CouponTemplate, template_id) is None:
        raise ValidationFailed(details={field: ["优惠券模板不存在"]})


def create_tier(session: Session, values: TierValues) -> Tier:
    """A new tier, provided code and rank are free and thresholds still rise with rank.

    Members move into it at their next purchase (upgrades) or at the periodic review.
    """
    others = _lock_tiers(session)
    _check_tier(values, others)
    _check_coupon_template(session, "birthday_coupon_template_id", values.birthday_coupon_template_id)
    tier = Tier(**asdict(values))
    session.add(tier)
    _flush(session)
    return tier


def update_tier(session: Session, tier_id: int, values: TierValues) -> Tier:
    """Change a tier; its members keep it, and new thresholds apply from the next purchase or review."""
    tiers = _lock_tiers(session)
    tier = next((tier for tier in tiers if tier.id == tier_id), None)
    if tier is None:
        raise NotFound("会员等级不存在")
    _check_tier(values, [other for other in tiers if other is not tier])
    _check_coupon_template(session, "birthday_coupon_template_id", values.birthday_coupon_template_id)
    _assign(tier, values)
    _flush(session)
    return tier


def delete_tier(session: Session, tier_id: int) -> None:
    """Delete a tier no member holds, nor ever held (the tier history must stay readable)."""
    tiers = _lock_tiers(session)
    tier = next((tier for tier in tiers if tier.id == tier_id), None)
    if tier is None:
        raise NotFound("会员等级不存在")
    if len(tiers) == 1:
        raise LastTier()
    if session.scalar(select(Member.id).where(Member.tier_id == tier.id).limit(1)) is not None:
        raise TierInUse()
    history = select(TierChange.id).where(
        (TierChange.from_tier_id == tier.id) | (TierChange.to_tier_id == tier.id)
    )
    if session.scalar(history.limit(1)) is not None:
        raise TierInUse("该等级有会员升降级记录，不能删除")
    session.delete(tier)
    # A member signing up or upgrading into this tier at this very moment loses on the foreign key.
    _flush(session)


def _lock_tiers(session: Session) -> list[Tier]:
    """Every tier, locked: tier changes are checked against all the others, so they take turns."""
    return list(session.scalars(select(Tier).order_by(Tier.rank).with_for_update()))


def _check_tier(values: TierValues, others: list[Tier]) -> None:
    if values.points_multiplier_percent < 100:
        raise ValidationFailed(details={"points_multiplier_percent": ["积分倍率不能低于 100（1 倍）"]})
    if values.min_annual_spend_fen < 0:
        raise ValidationFailed(details={"min_annual_spend_fen": ["不能小于 0"]})
    if not 0 <= values.free_parking_minutes_per_day <= 1440:
        raise ValidationFailed(details={"free_parking_minutes_per_day": ["应在 0 到 1440 之间"]})
    # Case-insensitive, as MySQL's collation compares the unique key.
    if any(other.code.casefold() == values.code.casefold() for other in others):
        raise TierCodeExists(details={"code": values.code})
    if any(other.rank == values.rank for other in others):
        raise TierRankExists(details={"rank": values.rank})
    ladder = sorted(
        [(other.rank, other.name, other.min_annual_spend_fen) for other in others]
        + [(values.rank, values.name, values.min_annual_spend_fen)]
    )
    for (_, lower_name, lower_fen), (_, higher_name, higher_fen) in pairwise(ladder):
        if higher_fen <= lower_fen:
            raise TierThresholdsInvalid(
                details={
                    "min_annual_spend_fen": [
                        f"「{higher_name}」的升级门槛（¥{_yuan(higher_fen)}）"
                        f"须高于较低等级「{lower_name}」的门槛（¥{_yuan(lower_fen)}）"
                    ]
                }
            )


# --- helpers -------------------------------------------------------------------------------------


def _get(session: Session, model: type[Rule], row_id: int, message: str) -> Rule:
    """The row, locked: a concurrent update or delete of it waits, then finds it changed or gone."""
    row = session.get(model, row_id, with_for_update=True)
    if row is None:
        raise NotFound(message)
    return row


def _assign(row: object, values: EarningRateValues | PromotionValues | TierValues) -> None:
    for name, value in asdict(values).items():
        setattr(row, name, value)


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"

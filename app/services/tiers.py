"""Tiers by rolling 12-month spend: upgrade at once on a purchase, downgrade only at the review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app import reference_cache
from app.mall_time import MallTime
from app.models import Member, Purchase, Tier, TierChange

ROLLING_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class TierProgress:
    tier: Tier
    rolling_spend_fen: int
    next_tier: Tier | None

    @property
    def spend_to_next_fen(self) -> int:
        return max(self.next_tier.min_annual_spend_fen - self.rolling_spend_fen, 0) if self.next_tier else 0


def tiers_by_rank(session: Session) -> list[Tier]:
    """Every tier, lowest first. Read-only (cached): edit tiers through rows you load yourself."""
    return reference_cache.cached(session, "tiers_by_rank", reference_cache.TIERS, _load_tiers)


def tier_of(session: Session, tier_id: int) -> Tier:
    return next(tier for tier in tiers_by_rank(session) if tier.id == tier_id)


def _load_tiers(session: Session) -> list[Tier]:
    return list(session.scalars(select(Tier).order_by(Tier.rank)))


_ROLLING_SPEND = select(func.coalesce(func.sum(Purchase.amount_fen - Purchase.refunded_fen), 0)).where(
    Purchase.member_id == bindparam("member_id"), Purchase.purchased_at >= bindparam("since")
)


def rolling_spend_fen(session: Session, member_id: int, *, at: MallTime) -> int:
    """Net spend (after refunds) over the last 12 months."""
    params = {"member_id": member_id, "since": at.now - ROLLING_WINDOW}
    return int(session.connection().scalar(_ROLLING_SPEND, params) or 0)


def qualifying_tier(tiers: list[Tier], spend_fen: int) -> Tier:
    """The best tier whose threshold the spend reaches (tiers sorted by rank)."""
    reached = [tier for tier in tiers if tier.min_annual_spend_fen <= spend_fen]
    return reached[-1] if reached else tiers[0]


def upgrade_after_purchase(session: Session, member: Member, *, at: MallTime) -> TierChange | None:
    """Move the member up at once if their rolling spend now reaches a better tier; never down."""
    tiers = tiers_by_rank(session)
    current = next(tier for tier in tiers if tier.id == member.tier_id)
    if current is tiers[-1]:
        return None  # nothing above: no need to sum the year's spend
    spend = rolling_spend_fen(session, member.id, at=at)
    target = qualifying_tier(tiers, spend)
    if target.rank <= current.rank:
        return None
    return _change_tier(session, member, current, target, reason="purchase", spend=spend, at=at)


def review_members(session: Session, *, first_id: int, last_id: int, at: MallTime) -> dict[str, int]:
    """The periodic review for members with ids in [first_id, last_id]: each gets the tier
    their rolling spend qualifies for, up or down. Batched so that no transaction locks everyone."""
    tiers = tiers_by_rank(session)
    by_id = {tier.id: tier for tier in tiers}
    in_batch = Member.id.between(first_id, last_id)
    members = session.scalars(select(Member).where(in_batch).order_by(Member.id).with_for_update()).all()
    spend_by_member = {
        member_id: int(spend or 0)
        for member_id, spend in session.execute(
            select(Purchase.member_id, func.sum(Purchase.amount_fen - Purchase.refunded_fen))
            .where(
                Purchase.member_id.between(first_id, last_id),
                Purchase.purchased_at >= at.now - ROLLING_WINDOW,
            )
            .group_by(Purchase.member_id)
        )
    }
    counts = {"upgraded": 0, "downgraded": 0, "unchanged": 0}
    for member in members:
        spend = spend_by_member.get(member.id, 0)
        current, target = by_id[member.tier_id], qualifying_tier(tiers, spend)
        if target.id == current.id:
            counts["unchanged"] += 1
            continue
        counts["upgraded" if target.rank > current.rank else "downgraded"] += 1
        _change_tier(session, member, current, target, reason="review", spend=spend, at=at)
    return counts


def member_id_range(session: Session) -> tuple[int, int] | None:
    low, high = session.execute(select(func.min(Member.id), func.max(Member.id))).one()
    return None if low is None else (low, high)


def progress(session: Session, member: Member, *, at: MallTime) -> TierProgress:
    tiers = tiers_by_rank(session)
    current = next(tier for tier in tiers if tier.id == member.tier_id)
    better = [tier for tier in tiers if tier.rank > current.rank]
    return TierProgress(current, rolling_spend_fen(session, member.id, at=at), better[0] if better else None)


def change_tier(
    session: Session, member: Member, current: Tier, target: Tier, *, reason: str, at: MallTime
) -> None:
    """Move a member to `target` for a reason other than spending (an import), recorded in their history
    with the rolling spend at the time."""
    _change_tier(
        session,
        member,
        current,
        target,
        reason=reason,
        spend=rolling_spend_fen(session, member.id, at=at),
        at=at,
    )


def _change_tier(
    session: Session, member: Member, current: Tier, target: Tier, *, reason: str, spend: int, at: MallTime
) -> TierChange:
    member.tier_id = target.id
    change = TierChange(
        member_id=member.id,
        from_tier_id=current.id,
        to_tier_id=target.id,
        reason=reason,
        rolling_spend_fen=spend,
        created_at=at.now,
    )
    session.add(change)
    session.flush()
    return change


def benefits(tier: Tier) -> list[str]:
    """What a tier gives, in the words shown to shoppers; read from the tier, never hard-coded per tier."""
    lines = []
    if tier.points_multiplier_percent > 100:
        whole, percent = divmod(tier.points_multiplier_percent, 100)
        multiplier = f"{whole}.{percent:02d}".rstrip("0").rstrip(".")
        lines.append(f"消费积分 {multiplier} 倍")
    if tier.free_parking_minutes_per_day:
        hours, minutes = divmod(tier.free_parking_minutes_per_day, 60)
        lines.append(
            "每日免费停车 " + (f"{hours} 小时" if hours else "") + (f"{minutes} 分钟" if minutes else "")
        )
    return lines


def member_counts(session: Session) -> dict[int, int]:
    """tier id → how many members hold it now (tiers nobody holds are absent)."""
    counted = select(Member.tier_id, func.count()).group_by(Member.tier_id)
    return {tier_id: count for tier_id, count in session.execute(counted)}

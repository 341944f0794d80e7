"""Coupon campaigns: one template issued to a list of members, in batches that survive interruption.

Each member is issued in a transaction of their own (member row first, then the
template's stock, the lock order everywhere), with the idempotency key
`campaign:<id>:<member>`, so re-running an interrupted batch never issues twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.mall_time import MallTime
from app.models import CampaignStatus, Coupon, CouponCampaign, CouponSource, CouponTemplate, Member
from app.services import coupons, points, segments

MAX_MEMBERS = 100_000


class CampaignNotRunnable(Conflict):
    code, message = "CAMPAIGN_NOT_RUNNABLE", "该发券活动已取消"


@dataclass(frozen=True)
class CampaignProgress:
    campaign: CouponCampaign
    total: int
    processed: int
    issued: int

    @property
    def skipped(self) -> int:
        """Processed members who got nothing: stock ran out or the template was not active."""
        return self.processed - self.issued


def create_campaign(
    session: Session,
    *,
    name: str,
    template_id: int,
    member_ids: list[int],
    operator_id: int | None,
    segment_id: int | None = None,
) -> CouponCampaign:
    if session.get(CouponTemplate, template_id) is None:
        raise NotFound("券模板不存在")
    unique_ids = list(dict.fromkeys(member_ids))
    if not unique_ids or len(unique_ids) > MAX_MEMBERS:
        raise ValidationFailed(details={"member_ids": [f"需要 1 到 {MAX_MEMBERS} 位会员"]})
    known = set(session.scalars(select(Member.id).where(Member.id.in_(unique_ids))))
    if unknown := [member_id for member_id in unique_ids if member_id not in known]:
        raise ValidationFailed(details={"member_ids": [f"会员不存在：{unknown[:10]}"]})
    campaign = CouponCampaign(
        name=name,
        template_id=template_id,
        member_ids=unique_ids,
        segment_id=segment_id,
        created_by_operator_id=operator_id,
    )
    session.add(campaign)
    session.flush()
    return campaign


def create_segment_campaign(
    session: Session, *, name: str, template_id: int, segment_id: int, operator_id: int | None, at: MallTime
) -> CouponCampaign:
    """A campaign to the members a segment holds now (its list is fixed at creation)."""
    segment = segments.get_segment(session, segment_id)
    audience = segments.member_ids(session, segment, at, limit=MAX_MEMBERS + 1)
    if not audience or len(audience) > MAX_MEMBERS:
        size = f"{MAX_MEMBERS} 以上" if len(audience) > MAX_MEMBERS else str(len(audience))
        raise ValidationFailed(
            f"人群「{segment.name}」当前有 {size} 位会员，需要 1 到 {MAX_MEMBERS} 位",
            details={"segment_id": [f"需要 1 到 {MAX_MEMBERS} 位会员"]},
        )
    return create_campaign(
        session,
        name=name,
        template_id=template_id,
        member_ids=audience,
        operator_id=operator_id,
        segment_id=segment_id,
    )


def next_batch(session: Session, campaign_id: int, *, size: int, at: MallTime) -> tuple[int, list[int]]:
    """Claim the next slice of members to process: (start index, member ids); empty when done."""
    campaign = session.get(CouponCampaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise NotFound("发券活动不存在")
    if campaign.status is CampaignStatus.CANCELLED:
        raise CampaignNotRunnable()
    if campaign.status is CampaignStatus.COMPLETED:
        return campaign.next_index, []
    if campaign.status is CampaignStatus.PENDING:
        campaign.status = CampaignStatus.RUNNING
        campaign.started_at = at.now
    return campaign.next_index, campaign.member_ids[campaign.next_index : campaign.next_index + size]


def issue_to_member(
    session: Session, campaign_id: int, template_id: int, member_id: int, *, at: MallTime
) -> bool:
    points.lock_account(session, member_id)
    if session.scalar(select(Member.deleted_at).where(Member.id == member_id)) is not None:
        return False  # deleted after the campaign was created: nothing more is sent to them
    coupon = coupons.issue_by_system(
        session,
        template_id,
        member_id,
        source=CouponSource.CAMPAIGN,
        key=f"campaign:{campaign_id}:{member_id}",
        at=at,
    )
    if coupon is None:
        return False
    coupon.campaign_id = campaign_id
    return True


def advance(session: Session, campaign_id: int, *, from_index: int, to_index: int, at: MallTime) -> None:
    """Record progress; only moves forward from where this batch started (a rival run cannot rewind it)."""
    session.execute(
        update(CouponCampaign)
        .where(CouponCampaign.id == campaign_id, CouponCampaign.next_index == from_index)
        .values(next_index=to_index)
        .execution_options(synchronize_session=False)
    )
    campaign = session.get_one(CouponCampaign, campaign_id, populate_existing=True, with_for_update=True)
    if campaign.next_index >= len(campaign.member_ids) and campaign.status is CampaignStatus.RUNNING:
        campaign.status = CampaignStatus.COMPLETED
        campaign.finished_at = at.now


def cancel(session: Session, campaign_id: int, *, at: MallTime) -> None:
    """Stop a campaign before it finishes; coupons already issued stay with their members."""
    cancelled = session.execute(
        update(CouponCampaign)
        .where(
            CouponCampaign.id == campaign_id,
            CouponCampaign.status.in_([CampaignStatus.PENDING, CampaignStatus.RUNNING]),
        )
        .values(status=CampaignStatus.CANCELLED, finished_at=at.now)
        .execution_options(synchronize_session=False)
    )
    if cancelled.rowcount != 1:  # type: ignore[attr-defined]
        progress(session, campaign_id)  # 404 if it does not exist
        raise CampaignNotRunnable("该发券活动已结束或已取消")


def progress(session: Session, campaign_id: int) -> CampaignProgress:
    campaign = session.get(CouponCampaign, campaign_id)
    if campaign is None:
        raise NotFound("发券活动不存在")
    issued = session.scalar(select(func.count()).select_from(Coupon).where(Coupon.campaign_id == campaign_id))
    return CampaignProgress(campaign, len(campaign.member_ids), campaign.next_index, int(issued or 0))


@dataclass(frozen=True)
class CampaignRow:
    progress: CampaignProgress
    template_name: str


def campaigns_with_progress(session: Session, *, offset: int, limit: int) -> tuple[list[CampaignRow], int]:
    """A page of campaigns (newest first) with their progress, and how many there are.

    One statement for the page: its campaigns are chosen first, then their coupons counted.
    """
    page = select(CouponCampaign.id).order_by(CouponCampaign.id.desc()).offset(offset).limit(limit).subquery()
    counts = (
        select(page.c.id.label("campaign_id"), func.count(Coupon.id).label("issued"))
        .select_from(page)
        .outerjoin(Coupon, Coupon.campaign_id == page.c.id)
        .group_by(page.c.id)
        .subquery()
    )
    rows = session.execute(
        select(CouponCampaign, CouponTemplate.name, counts.c.issued)
        .join(counts, counts.c.campaign_id == CouponCampaign.id)
        .join(CouponTemplate, CouponTemplate.id == CouponCampaign.template_id)
        .order_by(CouponCampaign.id.desc())
    ).all()
    total = session.scalar(select(func.count()).select_from(CouponCampaign))
    return [
        CampaignRow(
            CampaignProgress(campaign, len(campaign.member_ids), campaign.next_index, int(issued)), name
        )
        for campaign, name, issued in rows
    ], int(total or 0)


def runnable_campaigns(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(CouponCampaign.id)
            .where(CouponCampaign.status.in_([CampaignStatus.PENDING, CampaignStatus.RUNNING]))
            .order_by(CouponCampaign.id)
        )
    )

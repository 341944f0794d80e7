"""My points, their history, daily check-in, sharing, and my tier."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from app import idempotency
from app.auth import BEARER_SECURITY, current_wechat_account_id, wechat_account_required
from app.db import run_transaction, transaction
from app.errors import NotFound, raises
from app.extensions import mall_time
from app.ratelimit import LimitKind
from app.services import members, points, rewards, tiers
from app.throttling import rate_limited
from miniprogram_api.schemas import (
    CheckInOut,
    EntriesPageArgs,
    PointsEntriesOut,
    PointsSummaryOut,
    ShareOut,
    TierProgressOut,
)
from miniprogram_api.views.privacy import acting_member_id

blp = Blueprint("mp_points", __name__, url_prefix="/api/mp/v1", description="小程序：积分、签到与等级")
idempotency.enable(blp)


@blp.route("/me/points", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, PointsSummaryOut)
@raises(members.MemberNotRegistered, NotFound)
def my_points() -> points.PointsSummary:
    """积分余额、30 天内将过期的积分、待抵扣欠分"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        return points.summary(session, member_id, at=mall_time())


@blp.route("/me/points/entries", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.arguments(EntriesPageArgs(), location="query")
@blp.response(200, PointsEntriesOut)
@raises(members.MemberNotRegistered)
def my_points_entries(args: dict[str, Any]) -> dict[str, Any]:
    """积分明细（新的在前）；用 next_cursor 翻页"""
    with transaction() as session:
        member_id = members.member_id_of_account(session, current_wechat_account_id())
        items, next_cursor = points.entries_page(
            session, member_id, before_id=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/me/check-ins", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@rate_limited(LimitKind.CHECKIN)
@blp.response(200, CheckInOut)
@raises(NotFound, points.IdempotencyConflict)
def check_in() -> dict[str, Any]:
    """每日签到；同一天重复签到返回当天的结果"""
    at = mall_time()

    def work(session: Any) -> dict[str, Any]:
        member_id = acting_member_id(session)
        record, created = rewards.check_in(
            session, member_id, at=at, settings=points.points_settings(session)
        )
        return {"check_in": record, "already_checked_in": not created}

    result = run_transaction(work)
    record = result["check_in"]
    return {
        "date": record.business_date,
        "streak": record.streak,
        "points": record.points,
        "bonus_points": record.bonus_points,
        "already_checked_in": result["already_checked_in"],
    }


@blp.route("/me/shares", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, ShareOut)
@raises(NotFound, points.IdempotencyConflict)
def share() -> rewards.ShareResult:
    """分享小程序得积分（每日有上限）"""
    at = mall_time()

    def work(session: Session) -> rewards.ShareResult:
        member_id = acting_member_id(session)
        return rewards.reward_share(session, member_id, at=at, settings=points.points_settings(session))

    return run_transaction(work)


@blp.route("/me/tier", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@wechat_account_required
@blp.response(200, TierProgressOut)
@raises(members.MemberNotRegistered, NotFound)
def my_tier() -> tiers.TierProgress:
    """当前等级、升级进度与等级权益"""
    with transaction() as session:
        member = members.member_profile(
            session, members.member_id_of_account(session, current_wechat_account_id())
        )
        return tiers.progress(session, member, at=mall_time())

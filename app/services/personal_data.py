"""A member's personal data under PIPL: exporting all of it, deleting the account, and the retention purge.

Deletion anonymises rather than removes the member row: what identifies the person (phone, openid,
unionid, nickname, birthday, advisor notes, licence plates, tags, the WeCom binding) is erased, and
what the mall must keep for accounting (points ledger, purchases and refunds, parking payments,
coupons) stays attached to a row that no longer says who it was. So foreign keys, `points verify`
and `coupons verify` hold, and the figures (sales, points issued and spent) do not change.

Every foreign key to `members.id` has a decision in `FK_DECISIONS`; a test compares it with the
model's metadata, so a new table referencing members cannot be forgotten here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, aliased

from app import reference_cache
from app.errors import Conflict, NotFound
from app.mall_time import MallTime
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    CheckIn,
    Coupon,
    CouponStatus,
    Member,
    MemberConsent,
    MemberPlate,
    MemberTag,
    MemberTagHistory,
    ParkingPayment,
    ParkingPaymentStatus,
    ParkingQuote,
    PointsEntry,
    Purchase,
    PurchaseRefund,
    QrScene,
    Staff,
    Store,
    Tag,
    Tier,
    TierChange,
    UsedMemberCode,
    WeChatAccount,
)
from app.models.advisor import CorpTagSync, ExternalContact
from app.models.task import TaskStatus
from app.pii import PhoneVault
from app.services import audit, points


class Decision(enum.StrEnum):
    ERASE = "erase"  # rows deleted: they identify the person and serve no accounting purpose
    UNLINK = "unlink"  # the link to the member is cut (member_id NULL): the row is not theirs to delete
    ANONYMISE = "anonymise"  # kept, with the identifying columns cleared
    KEEP = "keep"  # kept as it is: accounting or evidence, about a member row that is now anonymous


# (table, column) of every foreign key to members.id, and what deleting a member does with its rows.
FK_DECISIONS: dict[tuple[str, str], Decision] = {
    ("members", "referred_by_member_id"): Decision.KEEP,  # referral points were paid: accounting
    ("members", "merged_into_member_id"): Decision.ANONYMISE,  # old records of the same person
    ("wechat_accounts", "member_id"): Decision.UNLINK,  # openid erased, account revoked (tokens → 401)
    ("member_consents", "member_id"): Decision.ANONYMISE,  # evidence of consent kept, client IP cleared
    ("member_plates", "member_id"): Decision.ERASE,
    ("used_member_codes", "member_id"): Decision.ERASE,
    ("member_tags", "member_id"): Decision.ERASE,  # profiling
    ("member_tag_history", "member_id"): Decision.ERASE,
    ("wecom_corp_tag_syncs", "member_id"): Decision.ERASE,
    ("wecom_external_contacts", "member_id"): Decision.UNLINK,  # the advisor's WeCom contact, not ours
    ("advisor_assignments", "member_id"): Decision.KEEP,  # open ones end (advisor KPIs keep the history)
    ("advisor_tasks", "member_id"): Decision.ANONYMISE,  # open ones deleted, advisors' notes cleared
    ("parking_quotes", "member_id"): Decision.ANONYMISE,  # plate cleared
    ("parking_payments", "member_id"): Decision.ANONYMISE,  # plate cleared; points paid are accounting
    ("coupons", "member_id"): Decision.KEEP,  # unused ones voided (status expired); stock accounting
    ("purchases", "member_id"): Decision.KEEP,  # sales figures; refunds still claw back correctly
    ("points_entries", "member_id"): Decision.KEEP,  # the ledger; the balance is forfeited by an entry
    ("points_lots", "member_id"): Decision.KEEP,  # drained by the forfeit
    ("partner_activity_credits", "member_id"): Decision.KEEP,  # points a partner paid for
    ("check_ins", "member_id"): Decision.KEEP,  # points accounting (the entries refer to them)
    ("tier_changes", "member_id"): Decision.KEEP,
    ("lifecycle_transitions", "member_id"): Decision.KEEP,  # anonymous counts for the KPIs
    ("member_stats", "member_id"): Decision.KEEP,  # anonymous figures; no longer refreshed
    ("qr_scenes", "referrer_member_id"): Decision.KEEP,  # a printed referral code; it credits nobody now
}

DELETED_PHONE_MASK = "已注销"
ERASED_PLATE = "******"

_OPEN_PARKING = (ParkingPaymentStatus.PENDING, ParkingPaymentStatus.UNKNOWN)


class DeletionRefused(Conflict):
    code, message = "MEMBER_DELETION_REFUSED", "暂时无法注销会员账号"


class AlreadyDeleted(Conflict):
    code, message = "MEMBER_ALREADY_DELETED", "该会员账号已注销"


# What the member is told: in Chinese, what is gone, what stays and why (the API response).
DELETION_EXPLANATION = {
    "deleted": [
        "手机号（加密存储的号码及其检索索引）",
        "昵称、生日、专属顾问为您记录的备注",
        "微信身份（openid、unionid）与小程序登录状态：此前的登录凭证立即失效",
        "绑定的车牌，以及停车缴费记录中的车牌号",
        "会员标签与画像",
        "与专属顾问的企业微信绑定及尚未完成的回访任务",
        "未使用的优惠券（已作废）与剩余积分（已清零）",
    ],
    "kept": [
        "消费、退货、积分流水、优惠券与停车缴费的记录：依照会计与税务法规须保存，"
        "它们只与一个已匿名、无法再识别您的会员编号关联，仅用于商场的汇总统计与对账",
        "您同意隐私政策的记录（版本与时间）：作为依法取得您同意的证明",
    ],
    "note": "注销后可以用同一手机号重新注册，但将成为新会员，原有积分、等级与优惠券不会恢复。",
}


@dataclass(frozen=True)
class Erasure:
    member_id: int
    deleted_at: datetime
    points_forfeited: int
    counts: dict[str, int] = field(default_factory=dict)


def erase(
    session: Session,
    member_id: int,
    *,
    at: MallTime,
    reason: str,
    client_ip: str | None = None,
    operator_id: int | None = None,
) -> Erasure:
    """Delete the member's account: anonymise the member (and the members merged into it), erase
    what identifies them, revoke their WeChat accounts, end their WeCom binding, void their unused
    coupons and forfeit their points; audited as `member.delete` (`reason`: "member" or "retention").

    Refuses (DeletionRefused, 409) while a parking payment is not settled, so points the car park
    may give back are not lost; AlreadyDeleted (409) for a deleted member; a merged-away member is
    deleted through the member it was merged into. Only flushes: the caller's transaction commits.
    """
    member = session.scalars(
        select(Member)
        .where(Member.id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if member is None:
        raise NotFound("会员不存在")
    if member.deleted_at is not None:
        raise AlreadyDeleted()
    if member.merged_into_member_id is not None:
        raise DeletionRefused(f"该会员已合并到会员 {member.merged_into_member_id}，请注销合并后的会员")
    open_payment = session.scalar(
        select(ParkingPayment.status)
        .where(ParkingPayment.member_id == member_id, ParkingPayment.status.in_(_OPEN_PARKING))
        .limit(1)
    )
    if open_payment is not None:
        raise DeletionRefused(
            "您有一笔停车缴费尚未完成（可能退回积分），请在缴费完成或对账结束后再注销"
            if open_payment == ParkingPaymentStatus.UNKNOWN
            else "您有一笔停车缴费尚未完成，请完成后再注销",
        )

    # The rows of members merged into this one are old records of the same person.
    ids = [member_id, *session.scalars(select(Member.id).where(Member.merged_into_member_id == member_id))]
    counts: dict[str, int] = {}
    forfeited = points.forfeit_balance(
        session,
        member_id=member_id,
        description="会员注销，剩余积分作废",
        key=f"deletion:member:{member_id}",
        at=at,
    )

    def run(name: str, statement: Any) -> None:
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[name] = result.rowcount  # type: ignore[attr-defined]

    run(
        "coupons_voided",
        update(Coupon)
        .where(Coupon.member_id.in_(ids), Coupon.status == CouponStatus.AVAILABLE)
        .values(status=CouponStatus.EXPIRED),
    )
    run("plates", delete(MemberPlate).where(MemberPlate.member_id.in_(ids)))
    run(
        "parking_quotes",
        update(ParkingQuote).where(ParkingQuote.member_id.in_(ids)).values(plate=ERASED_PLATE),
    )
    run(
        "parking_payments",
        update(ParkingPayment).where(ParkingPayment.member_id.in_(ids)).values(plate=ERASED_PLATE),
    )
    run("tags", delete(MemberTag).where(MemberTag.member_id.in_(ids)))
    run("tag_history", delete(MemberTagHistory).where(MemberTagHistory.member_id.in_(ids)))
    run("wecom_tag_syncs", delete(CorpTagSync).where(CorpTagSync.member_id.in_(ids)))
    run("member_codes", delete(UsedMemberCode).where(UsedMemberCode.member_id.in_(ids)))
    run(
        "wecom_contacts",
        update(ExternalContact).where(ExternalContact.member_id.in_(ids)).values(member_id=None),
    )
    run(
        "advisor_assignments_ended",
        update(AdvisorAssignment)
        .where(AdvisorAssignment.member_id.in_(ids), AdvisorAssignment.ended_at.is_(None))
        .values(ended_at=at.now, end_reason=AssignmentEnd.MEMBER_DELETED),
    )
    run(
        "open_tasks",
        delete(AdvisorTask).where(AdvisorTask.member_id.in_(ids), AdvisorTask.status == TaskStatus.OPEN),
    )
    run(
        "task_notes",
        update(AdvisorTask)
        .where(AdvisorTask.member_id.in_(ids), AdvisorTask.note.is_not(None))
        .values(note=None),
    )
    run("consents", update(MemberConsent).where(MemberConsent.member_id.in_(ids)).values(client_ip=None))
    accounts = session.scalars(
        select(WeChatAccount).where(WeChatAccount.member_id.in_(ids)).with_for_update()
    ).all()
    for account in accounts:
        # The openid is erased; the row stays (consents point at it) and refuses its tokens.
        account.openid = f"deleted:{account.id}"
        account.unionid = None
        account.member_id = None
        account.revoked_at = at.now
    counts["wechat_accounts"] = len(accounts)
    session.flush()
    run(
        "members",
        update(Member)
        .where(Member.id.in_(ids))
        .values(
            phone_ciphertext=b"",
            phone_masked=DELETED_PHONE_MASK,
            nickname=None,
            birthday=None,
            advisor_note=None,
            advisor_id=None,
            deleted_at=at.now,
        ),
    )
    # A tombstone per member keeps the unique index and frees the phone for a new sign-up.
    reference_cache.bump_versions(session, [reference_cache.MEMBER_IDENTITIES])
    for each_id in ids:
        session.execute(
            update(Member)
            .where(Member.id == each_id)
            .values(phone_index=f"deleted:{each_id}")
            .execution_options(synchronize_session=False)
        )
    session.flush()
    audit.record(
        session,
        operator_id=operator_id,
        action="member.delete",
        target_type="member",
        target_id=member_id,
        detail={"reason": reason, "member_ids": ids, "points_forfeited": forfeited, "counts": counts},
        client_ip=client_ip,
    )
    return Erasure(member_id=member_id, deleted_at=at.now, points_forfeited=forfeited, counts=counts)


def inactive_member_ids(
    session: Session, *, inactive_since: datetime, after_id: int = 0, limit: int = 500
) -> list[int]:
    """Members (not deleted, not merged away) with no login, purchase or points entry since
    `inactive_since`, who joined before it: the retention purge's candidates, in id order."""
    recent_login = exists().where(
        WeChatAccount.member_id == Member.id, WeChatAccount.last_login_at >= inactive_since
    )
    recent_purchase = exists().where(Purchase.member_id == Member.id, Purchase.purchased_at >= inactive_since)
    recent_points = exists().where(
        PointsEntry.member_id == Member.id, PointsEntry.created_at >= inactive_since
    )
    return list(
        session.scalars(
            select(Member.id)
            .where(
                Member.id > after_id,
                Member.deleted_at.is_(None),
                Member.merged_into_member_id.is_(None),
                Member.joined_at < inactive_since,
                ~recent_login,
                ~recent_purchase,
                ~recent_points,
            )
            .order_by(Member.id)
            .limit(limit)
        )
    )


def retention_cutoff(at: MallTime, inactive_days: int) -> datetime:
    return at.now - timedelta(days=inactive_days)


# --- export -----------------------------------------------------------------------------------------


def export(session: Session, member_id: int, vault: PhoneVault) -> dict[str, Any]:
    """Everything we hold about the member, as one JSON-ready document (PIPL right of access).

    One query per section, each ordered oldest first. Sections about the member only: nothing of
    another member appears (a referrer or a referred member is given by id at most)."""
    tier, advisor, scene = aliased(Tier), aliased(Staff), aliased(QrScene)
    row = session.execute(
        select(Member, tier.name, advisor.name, scene.name)
        .join(tier, tier.id == Member.tier_id)
        .outerjoin(advisor, advisor.id == Member.advisor_id)
        .outerjoin(scene, scene.id == Member.signup_scene_id)
        .where(Member.id == member_id)
    ).one_or_none()
    if row is None:
        raise NotFound("会员不存在")
    member, tier_name, advisor_name, scene_name = row
    profile = {
        "id": member.id,
        "phone": vault.reveal(member.phone_ciphertext),
        "nickname": member.nickname,
        "birthday": member.birthday,
        "tier": tier_name,
        "points_balance": member.points_balance,
        "points_debt": member.points_debt,
        "source": member.source.value,
        "joined_at": member.joined_at,
        "signup_scene": scene_name,
        "advisor": advisor_name,
        "advisor_note": member.advisor_note,
    }
    return {
        "profile": profile,
        "consents": _rows(
            session,
            select(MemberConsent.policy_version, MemberConsent.granted_at, MemberConsent.client_ip)
            .where(MemberConsent.member_id == member_id)
            .order_by(MemberConsent.id),
        ),
        "wechat_accounts": _rows(
            session,
            select(
                WeChatAccount.appid,
                WeChatAccount.openid,
                WeChatAccount.unionid,
                WeChatAccount.created_at,
                WeChatAccount.last_login_at,
            )
            .where(WeChatAccount.member_id == member_id)
            .order_by(WeChatAccount.id),
        ),
        "points_entries": _rows(
            session,
            select(
                PointsEntry.id,
                PointsEntry.kind,
                PointsEntry.delta,
                PointsEntry.balance_after,
                PointsEntry.description,
                PointsEntry.business_date,
                PointsEntry.created_at,
            )
            .where(PointsEntry.member_id == member_id)
            .order_by(PointsEntry.id),
        ),
        "coupons": _rows(
            session,
            select(
                Coupon.id,
                Coupon.name,
                Coupon.kind,
                Coupon.status,
                Coupon.source,
                Coupon.points_paid,
                Coupon.valid_from,
                Coupon.valid_until,
                Coupon.issued_at,
                Coupon.used_at,
            )
            .where(Coupon.member_id == member_id)
            .order_by(Coupon.id),
        ),
        "purchases": _purchases(session, member_id),
        "plates": _rows(
            session,
            select(MemberPlate.plate, MemberPlate.created_at)
            .where(MemberPlate.member_id == member_id)
            .order_by(MemberPlate.id),
        ),
        "parking_payments": _rows(
            session,
            select(
                ParkingPayment.order_no,
                ParkingPayment.plate,
                ParkingPayment.entry_time,
                ParkingPayment.parking_minutes,
                ParkingPayment.fee_fen,
                ParkingPayment.points,
                ParkingPayment.amount_due_fen,
                ParkingPayment.status,
                ParkingPayment.created_at,
            )
            .where(ParkingPayment.member_id == member_id)
            .order_by(ParkingPayment.id),
        ),
        "tags": _rows(
            session,
            select(Tag.name, MemberTag.source, MemberTag.since)
            .join(Tag, Tag.id == MemberTag.tag_id)
            .where(MemberTag.member_id == member_id)
            .order_by(MemberTag.since, Tag.id),
        ),
        "tag_history": _rows(
            session,
            select(Tag.name, MemberTagHistory.source, MemberTagHistory.since, MemberTagHistory.until)
            .join(Tag, Tag.id == MemberTagHistory.tag_id)
            .where(MemberTagHistory.member_id == member_id)
            .order_by(MemberTagHistory.id),
        ),
        "tier_changes": _tier_changes(session, member_id),
        "advisor_assignments": _rows(
            session,
            select(
                Staff.name.label("advisor"),
                AdvisorAssignment.reason,
                AdvisorAssignment.assigned_at,
                AdvisorAssignment.ended_at,
                AdvisorAssignment.end_reason,
            )
            .join(Staff, Staff.id == AdvisorAssignment.staff_id)
            .where(AdvisorAssignment.member_id == member_id)
            .order_by(AdvisorAssignment.id),
        ),
        "wecom_contacts": _rows(
            session,
            select(
                Staff.name.label("advisor"),
                ExternalContact.name,
                ExternalContact.added_at,
                ExternalContact.removed_at,
            )
            .join(Staff, Staff.id == ExternalContact.staff_id)
            .where(ExternalContact.member_id == member_id)
            .order_by(ExternalContact.id),
        ),
        "advisor_tasks": _rows(
            session,
            select(
                AdvisorTask.task_type,
                AdvisorTask.business_date,
                AdvisorTask.status,
                AdvisorTask.outcome,
                AdvisorTask.note,
                AdvisorTask.completed_at,
            )
            .where(AdvisorTask.member_id == member_id)
            .order_by(AdvisorTask.id),
        ),
        "check_ins": _rows(
            session,
            select(CheckIn.business_date, CheckIn.streak, CheckIn.points, CheckIn.bonus_points)
            .where(CheckIn.member_id == member_id)
            .order_by(CheckIn.business_date),
        ),
    }


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _rows(session: Session, statement: Any) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in session.execute(statement)]


def _purchases(session: Session, member_id: int) -> list[dict[str, Any]]:
    purchases = _rows(
        session,
        select(
            Purchase.id,
            Store.name.label("store"),
            Purchase.receipt_no,
            Purchase.amount_fen,
            Purchase.refunded_fen,
            Purchase.points_earned,
            Purchase.points_clawed_back,
            Purchase.purchased_at,
        )
        .join(Store, Store.id == Purchase.store_id)
        .where(Purchase.member_id == member_id)
        .order_by(Purchase.purchased_at, Purchase.id),
    )
    refunds = _rows(
        session,
        select(
            PurchaseRefund.purchase_id,
            PurchaseRefund.refund_no,
            PurchaseRefund.amount_fen,
            PurchaseRefund.points_clawed_back,
            PurchaseRefund.created_at,
        )
        .join(Purchase, Purchase.id == PurchaseRefund.purchase_id)
        .where(Purchase.member_id == member_id)
        .order_by(PurchaseRefund.id),
    )
    by_purchase: dict[int, list[dict[str, Any]]] = {}
    for refund in refunds:
        by_purchase.setdefault(refund.pop("purchase_id"), []).append(refund)
    for purchase in purchases:
        purchase["refunds"] = by_purchase.get(purchase["id"], [])
    return purchases


def _tier_changes(session: Session, member_id: int) -> list[dict[str, Any]]:
    from_tier, to_tier = aliased(Tier), aliased(Tier)
    return _rows(
        session,
        select(
            from_tier.name.label("from_tier"),
            to_tier.name.label("to_tier"),
            TierChange.reason,
            TierChange.created_at,
        )
        .outerjoin(from_tier, from_tier.id == TierChange.from_tier_id)
        .join(to_tier, to_tier.id == TierChange.to_tier_id)
        .where(TierChange.member_id == member_id)
        .order_by(TierChange.id),
    )

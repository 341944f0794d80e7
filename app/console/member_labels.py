"""Chinese labels of the member pages' codes (enums and free-form reasons), for display only."""

from __future__ import annotations

from typing import Any

from app.models import (
    AssignmentEnd,
    AssignmentReason,
    CouponKind,
    CouponSource,
    CouponStatus,
    MemberSource,
    ParkingPaymentStatus,
    PointsEntryKind,
    SceneKind,
    TagKind,
    TagSource,
)
from app.models.task import TaskOutcome, TaskStatus, TaskType
from app.services.member_search import SearchBy

LABELS: dict[str, dict[Any, str]] = {
    "search_by": {
        SearchBy.AUTO: "自动识别",
        SearchBy.PHONE: "手机号",
        SearchBy.NAME: "昵称",
        SearchBy.ID: "会员ID",
    },
    "member_source": {
        MemberSource.WECHAT: "小程序注册",
        MemberSource.POS: "收银台",
        MemberSource.IMPORT: "导入",
    },
    "scene_kind": {
        SceneKind.STORE: "门店码",
        SceneKind.ADVISOR: "导购码",
        SceneKind.EVENT: "活动码",
        SceneKind.POSTER: "海报码",
        SceneKind.REFERRAL: "推荐码",
    },
    "tier_reason": {"purchase": "消费升级", "review": "定期评定", "manual": "人工调整", "import": "数据导入"},
    "points_kind": {
        PointsEntryKind.PURCHASE: "消费",
        PointsEntryKind.REFUND: "退货扣回",
        PointsEntryKind.CHECK_IN: "签到",
        PointsEntryKind.SHARE: "分享",
        PointsEntryKind.REFERRAL: "推荐",
        PointsEntryKind.WELCOME: "注册礼",
        PointsEntryKind.BIRTHDAY: "生日礼",
        PointsEntryKind.PARTNER: "合作方",
        PointsEntryKind.ADJUSTMENT: "人工调整",
        PointsEntryKind.REDEMPTION: "兑换",
        PointsEntryKind.EXPIRY: "过期",
        PointsEntryKind.MERGE: "会员合并",
        PointsEntryKind.OPENING: "期初积分",
    },
    "coupon_kind": {
        CouponKind.CASH_OFF: "满减券",
        CouponKind.DISCOUNT: "折扣券",
        CouponKind.GIFT: "礼品券",
        CouponKind.PARKING: "停车券",
    },
    "coupon_status": {
        CouponStatus.AVAILABLE: "未使用",
        CouponStatus.USED: "已核销",
        CouponStatus.EXPIRED: "已过期",
    },
    "coupon_source": {
        CouponSource.CLAIM: "领取",
        CouponSource.POINTS_MALL: "积分兑换",
        CouponSource.WELCOME: "注册礼",
        CouponSource.BIRTHDAY: "生日礼",
        CouponSource.CAMPAIGN: "营销活动",
    },
    "parking_status": {
        ParkingPaymentStatus.PENDING: "处理中",
        ParkingPaymentStatus.PAID: "已支付",
        ParkingPaymentStatus.UNKNOWN: "待对账",
        ParkingPaymentStatus.REFUNDED: "已退回",
    },
    "tag_kind": {TagKind.RULE: "规则标签", TagKind.SYSTEM: "系统标签", TagKind.MANUAL: "手工标签"},
    "tag_source": {TagSource.RULE: "规则", TagSource.SYSTEM: "系统", TagSource.MANUAL: "手工"},
    "assignment_reason": {
        AssignmentReason.SIGNUP_SCENE: "扫导购码注册",
        AssignmentReason.CONTACT_WAY: "添加企业微信",
        AssignmentReason.POOL_CLAIM: "从门店池认领",
        AssignmentReason.REASSIGNMENT: "转派",
    },
    "assignment_end": {
        AssignmentEnd.REASSIGNED: "已转派",
        AssignmentEnd.RETURNED_TO_POOL: "退回门店池",
        AssignmentEnd.MEMBER_DELETED: "会员已注销",
    },
    "task_type": {
        TaskType.BIRTHDAY_GREETING: "生日祝福",
        TaskType.WIN_BACK_DORMANT: "唤醒沉睡会员",
        TaskType.VIP_INVITATION: "VIP 邀约",
        TaskType.COUPON_EXPIRING_REMINDER: "优惠券到期提醒",
        TaskType.NEW_MEMBER_WELCOME: "新会员欢迎",
        TaskType.POST_PURCHASE_FOLLOW_UP: "购后回访",
    },
    "task_status": {TaskStatus.OPEN: "待办", TaskStatus.DONE: "已完成", TaskStatus.EXPIRED: "已过期"},
    "task_outcome": {
        TaskOutcome.CONTACTED: "已联系",
        TaskOutcome.NO_ANSWER: "未接通",
        TaskOutcome.NOT_INTERESTED: "无意向",
        TaskOutcome.BOOKED_VISIT: "已预约到店",
    },
}

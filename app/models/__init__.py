"""All models, imported so that `Base.metadata` knows every table (Alembic, tests)."""

from app.models.advisor import (
    AdvisorAssignment,
    AdvisorContactWay,
    AssignmentEnd,
    AssignmentReason,
    ExternalContact,
)
from app.models.coupon import (
    CampaignStatus,
    Coupon,
    CouponCampaign,
    CouponKind,
    CouponRedemption,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    TemplateStatus,
)
from app.models.kpi import KpiDaily
from app.models.mall import Store
from app.models.member import Member, MemberConsent, MemberSource, UsedMemberCode, WeChatAccount
from app.models.parking import (
    PLATE_MAX_LENGTH,
    MemberPlate,
    ParkingPayment,
    ParkingPaymentCoupon,
    ParkingPaymentStatus,
    ParkingQuote,
    ParkingRules,
)
from app.models.partner import Partner, PartnerActivityCredit
from app.models.points import (
    CheckIn,
    CheckInStreakBonus,
    EarningRate,
    ExpiryPolicy,
    PointsEntry,
    PointsEntryKind,
    PointsLot,
    PointsPromotion,
    PointsSettings,
)
from app.models.purchase import Purchase, PurchaseRefund
from app.models.reference import ReferenceVersion
from app.models.scene import SCENE_MAX_LENGTH, QrScene, SceneKind
from app.models.staff import Operator, Staff, StaffRole
from app.models.tag import (
    LifecycleStage,
    LifecycleTransition,
    MemberStats,
    MemberTag,
    MemberTagHistory,
    RfmSegment,
    Segment,
    SegmentationSettings,
    Tag,
    TagKind,
    TagSource,
)
from app.models.tier import Tier, TierChange
from app.models.wecom import WeComEvent

__all__ = [
    "PLATE_MAX_LENGTH",
    "SCENE_MAX_LENGTH",
    "AdvisorAssignment",
    "AdvisorContactWay",
    "AssignmentEnd",
    "AssignmentReason",
    "CampaignStatus",
    "CheckIn",
    "CheckInStreakBonus",
    "Coupon",
    "CouponCampaign",
    "CouponKind",
    "CouponRedemption",
    "CouponSource",
    "CouponStatus",
    "CouponTemplate",
    "EarningRate",
    "ExpiryPolicy",
    "ExternalContact",
    "KpiDaily",
    "LifecycleStage",
    "LifecycleTransition",
    "Member",
    "MemberConsent",
    "MemberPlate",
    "MemberSource",
    "MemberStats",
    "MemberTag",
    "MemberTagHistory",
    "Operator",
    "ParkingPayment",
    "ParkingPaymentCoupon",
    "ParkingPaymentStatus",
    "ParkingQuote",
    "ParkingRules",
    "Partner",
    "PartnerActivityCredit",
    "PointsEntry",
    "PointsEntryKind",
    "PointsLot",
    "PointsPromotion",
    "PointsSettings",
    "Purchase",
    "PurchaseRefund",
    "QrScene",
    "ReferenceVersion",
    "RfmSegment",
    "SceneKind",
    "Segment",
    "SegmentationSettings",
    "Staff",
    "StaffRole",
    "Store",
    "Tag",
    "TagKind",
    "TagSource",
    "TemplateStatus",
    "Tier",
    "TierChange",
    "UsedMemberCode",
    "WeChatAccount",
    "WeComEvent",
]

"""Request and response shapes of the shoppers' personal-data API (PIPL): consent, export, deletion."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from miniprogram_api.schemas import MemberOut


class ConsentStatusOut(ma.Schema):
    required = ma.fields.Boolean(
        metadata={"description": "为 true 时须重新阅读并同意最新隐私政策（POST /me/consents）"}
    )
    current_version = ma.fields.String(metadata={"description": "商场当前的隐私政策版本"})
    accepted_version = ma.fields.String(allow_none=True, metadata={"description": "会员最近同意的版本"})
    accepted_at = ma.fields.DateTime(allow_none=True)


class MeOut(MemberOut):
    """The member card and the member's consent status; the view hands over (member, consent)."""

    consent = ma.fields.Nested(ConsentStatusOut)

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr == "consent":
            return obj.consent
        return super().get_attribute(obj.member, attr, default)


class ConsentIn(ma.Schema):
    policy_version = ma.fields.String(
        required=True,
        validate=validate.Length(1, 32),
        metadata={"description": "会员阅读并同意的隐私政策版本，须为当前版本"},
    )


class ConsentOut(ma.Schema):
    policy_version = ma.fields.String()
    granted_at = ma.fields.DateTime()


# --- export: the document's shape, section by section ------------------------------------------------


class ProfileExport(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.String(metadata={"description": "完整手机号（本人数据，不脱敏）"})
    nickname = ma.fields.String(allow_none=True)
    birthday = ma.fields.Date(allow_none=True)
    tier = ma.fields.String()
    points_balance = ma.fields.Integer()
    points_debt = ma.fields.Integer()
    source = ma.fields.String(metadata={"description": "入会渠道：wechat / pos / import"})
    joined_at = ma.fields.DateTime()
    signup_scene = ma.fields.String(allow_none=True)
    advisor = ma.fields.String(allow_none=True)
    advisor_note = ma.fields.String(allow_none=True, metadata={"description": "专属顾问记录的备注"})


class ConsentExport(ma.Schema):
    policy_version = ma.fields.String()
    granted_at = ma.fields.DateTime()
    client_ip = ma.fields.String(allow_none=True)


class WeChatAccountExport(ma.Schema):
    appid = ma.fields.String()
    openid = ma.fields.String()
    unionid = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    last_login_at = ma.fields.DateTime()


class PointsEntryExport(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    delta = ma.fields.Integer()
    balance_after = ma.fields.Integer()
    description = ma.fields.String()
    business_date = ma.fields.Date()
    created_at = ma.fields.DateTime()


class CouponExport(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    status = ma.fields.String()
    source = ma.fields.String()
    points_paid = ma.fields.Integer()
    valid_from = ma.fields.DateTime()
    valid_until = ma.fields.DateTime()
    issued_at = ma.fields.DateTime()
    used_at = ma.fields.DateTime(allow_none=True)


class RefundExport(ma.Schema):
    refund_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    created_at = ma.fields.DateTime()


class PurchaseExport(ma.Schema):
    id = ma.fields.Integer()
    store = ma.fields.String()
    receipt_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    refunded_fen = ma.fields.Integer()
    points_earned = ma.fields.Integer()
    points_clawed_back = ma.fields.Integer()
    purchased_at = ma.fields.DateTime()
    refunds = ma.fields.List(ma.fields.Nested(RefundExport))


class PlateExport(ma.Schema):
    plate = ma.fields.String()
    created_at = ma.fields.DateTime()


class ParkingPaymentExport(ma.Schema):
    order_no = ma.fields.String()
    plate = ma.fields.String()
    entry_time = ma.fields.DateTime()
    parking_minutes = ma.fields.Integer()
    fee_fen = ma.fields.Integer()
    points = ma.fields.Integer()
    amount_due_fen = ma.fields.Integer()
    status = ma.fields.String()
    created_at = ma.fields.DateTime()


class TagExport(ma.Schema):
    name = ma.fields.String()
    source = ma.fields.String(metadata={"description": "rule / system / manual"})
    since = ma.fields.DateTime()


class TagHistoryExport(TagExport):
    until = ma.fields.DateTime()


class TierChangeExport(ma.Schema):
    from_tier = ma.fields.String(allow_none=True)
    to_tier = ma.fields.String()
    reason = ma.fields.String()
    created_at = ma.fields.DateTime()


class AdvisorAssignmentExport(ma.Schema):
    advisor = ma.fields.String()
    reason = ma.fields.String()
    assigned_at = ma.fields.DateTime()
    ended_at = ma.fields.DateTime(allow_none=True)
    end_reason = ma.fields.String(allow_none=True)


class WeComContactExport(ma.Schema):
    advisor = ma.fields.String()
    name = ma.fields.String(metadata={"description": "您在顾问企业微信中的名称"})
    added_at = ma.fields.DateTime()
    removed_at = ma.fields.DateTime(allow_none=True)


class AdvisorTaskExport(ma.Schema):
    task_type = ma.fields.String()
    business_date = ma.fields.Date()
    status = ma.fields.String()
    outcome = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True, metadata={"description": "顾问回访时记录的备注"})
    completed_at = ma.fields.DateTime(allow_none=True)


class CheckInExport(ma.Schema):
    business_date = ma.fields.Date()
    streak = ma.fields.Integer()
    points = ma.fields.Integer()
    bonus_points = ma.fields.Integer()


def _many(schema: type[ma.Schema], description: str) -> ma.fields.List:
    return ma.fields.List(ma.fields.Nested(schema), metadata={"description": description})


class ExportOut(ma.Schema):
    """All personal data held about the member, one document; every list oldest first."""

    exported_at = ma.fields.DateTime()
    profile = ma.fields.Nested(ProfileExport)
    consents = _many(ConsentExport, "每次同意隐私政策的记录")
    wechat_accounts = _many(WeChatAccountExport, "绑定的微信身份")
    points_entries = _many(PointsEntryExport, "积分流水")
    coupons = _many(CouponExport, "优惠券")
    purchases = _many(PurchaseExport, "消费记录及其退货")
    plates = _many(PlateExport, "绑定的车牌")
    parking_payments = _many(ParkingPaymentExport, "停车缴费")
    tags = _many(TagExport, "当前的会员标签")
    tag_history = _many(TagHistoryExport, "已结束的会员标签")
    tier_changes = _many(TierChangeExport, "等级变化")
    advisor_assignments = _many(AdvisorAssignmentExport, "专属顾问的分配记录")
    wecom_contacts = _many(WeComContactExport, "您添加的顾问企业微信")
    advisor_tasks = _many(AdvisorTaskExport, "顾问关于您的回访任务与备注")
    check_ins = _many(CheckInExport, "签到记录")


class DeletionOut(ma.Schema):
    member_id = ma.fields.Integer()
    deleted_at = ma.fields.DateTime()
    points_forfeited = ma.fields.Integer(metadata={"description": "作废的剩余积分"})
    deleted = ma.fields.List(ma.fields.String(), metadata={"description": "已删除的个人信息"})
    kept = ma.fields.List(ma.fields.String(), metadata={"description": "保留的记录及原因"})
    note = ma.fields.String()

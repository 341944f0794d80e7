"""All models, imported so that `Base.metadata` knows every table (Alembic, tests)."""

from app.models.mall import Store
from app.models.member import Member, MemberConsent, MemberSource, UsedMemberCode, WeChatAccount
from app.models.purchase import Purchase
from app.models.scene import SCENE_MAX_LENGTH, QrScene, SceneKind
from app.models.staff import Operator, Staff, StaffRole
from app.models.tier import Tier

__all__ = [
    "SCENE_MAX_LENGTH",
    "Member",
    "MemberConsent",
    "MemberSource",
    "Operator",
    "Purchase",
    "QrScene",
    "SceneKind",
    "Staff",
    "StaffRole",
    "Store",
    "Tier",
    "UsedMemberCode",
    "WeChatAccount",
]

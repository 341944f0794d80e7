"""Test data builders: sensible defaults, override only what a test is about."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.demo_data import create_standard_tiers
from app.models import (
    CouponKind,
    CouponTemplate,
    Member,
    MemberSource,
    Operator,
    Purchase,
    Staff,
    StaffRole,
    Store,
    TemplateStatus,
    Tier,
)
from app.pii import PhoneVault
from app.services.authentication import hash_password

_sequence = itertools.count(1)


def create_tiers(session: Session) -> list[Tier]:
    return create_standard_tiers(session)


def create_store(session: Session, **overrides: Any) -> Store:
    n = next(_sequence)
    store = Store(
        **{"code": f"S{n:04d}", "name": f"测试门店{n}", "category": "服饰", "floor": "2F", **overrides}
    )
    session.add(store)
    session.flush()
    return store


def create_staff(session: Session, userid: str, role: StaffRole, **overrides: Any) -> Staff:
    staff = Staff(**{"wecom_userid": userid, "name": f"员工{userid}", "role": role, **overrides})
    session.add(staff)
    session.flush()
    return staff


def create_operator(
    session: Session, username: str = "ops", password: str = "correct-horse", **overrides: Any
) -> Operator:
    operator = Operator(
        **{
            "username": username,
            "display_name": "运营",
            "password_hash": hash_password(password),
            **overrides,
        }
    )
    session.add(operator)
    session.flush()
    return operator


def create_member(session: Session, vault: PhoneVault, phone: str, tier: Tier, **overrides: Any) -> Member:
    protected = vault.protect(phone)
    member = Member(
        **{
            "phone_ciphertext": protected.ciphertext,
            "phone_index": protected.blind_index,
            "phone_masked": protected.masked,
            "tier_id": tier.id,
            "source": MemberSource.POS,
            **overrides,
        }
    )
    session.add(member)
    session.flush()
    return member


def create_coupon_template(session: Session, **overrides: Any) -> CouponTemplate:
    """An active 满100减20 coupon, 100 in stock, one per member, valid 30 days from issue."""
    stock = overrides.pop("total_stock", 100)
    template = CouponTemplate(
        **{
            "kind": CouponKind.CASH_OFF,
            "name": "满100减20",
            "face_value_fen": 2_000,
            "min_spend_fen": 10_000,
            "status": TemplateStatus.ACTIVE,
            "total_stock": stock,
            "remaining_stock": stock,
            "per_member_limit": 1,
            "valid_days_after_issue": 30,
            "store_ids": [],
            "store_categories": [],
            "eligible_tier_ids": [],
            **overrides,
        }
    )
    session.add(template)
    session.flush()
    return template


def create_purchase(
    session: Session,
    store: Store,
    amount_fen: int,
    purchased_at: datetime,
    member: Member | None = None,
    **overrides: Any,
) -> Purchase:
    """A purchase as the ledger would have recorded it (no points moved): for statistics and KPIs."""
    purchase = Purchase(
        **{
            "member_id": member.id if member else None,
            "store_id": store.id,
            "receipt_no": f"R{next(_sequence):06d}",
            "amount_fen": amount_fen,
            "purchased_at": purchased_at,
            **overrides,
        }
    )
    session.add(purchase)
    session.flush()
    return purchase

"""Coupon templates (券模板) operators design: terms, stock, per-member limits, validity and status.

A coupon copies its template's terms when issued, so nothing here ever touches issued
coupons. Stock and status change only by conditional UPDATEs, so an edit racing a claim
(which takes stock with `... WHERE remaining_stock > 0`) or another operator never
leaves the stock negative or a template in a state nobody chose.

Each function checks its rules itself, whoever calls it: the database's constraints are
the last line of defence and never the error a caller sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, TypeVar

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, NotFound, ValidationFailed
from app.models import Coupon, CouponKind, CouponStatus, CouponTemplate, Store, TemplateStatus, Tier

T = TypeVar("T")

MAX_TOTAL_STOCK = 10_000_000
MAX_VALID_DAYS = 3650
# Stored when the template is no discount coupon: paying 100% is no discount at all.
NO_DISCOUNT_PERCENT = 100

_KIND_NAMES = {
    CouponKind.CASH_OFF: "满减券",
    CouponKind.DISCOUNT: "折扣券",
    CouponKind.GIFT: "礼品券",
    CouponKind.PARKING: "停车券",
}

# The term fields each kind uses; the others must stay unset, so that a coupon's terms say one thing
# (a threshold on a gift or parking coupon would never be checked at the counter).
KIND_FIELDS = {
    CouponKind.CASH_OFF: {"face_value_fen", "min_spend_fen"},
    CouponKind.DISCOUNT: {"discount_percent", "max_discount_fen", "min_spend_fen"},
    CouponKind.GIFT: {"gift_name"},
    CouponKind.PARKING: {"parking_minutes", "parking_value_fen"},
}


class CouponTermsInvalid(DomainError):
    code, status, message = "COUPON_TERMS_INVALID", 422, "优惠券的优惠内容设置有误"


class CouponValidityInvalid(DomainError):
    code, status, message = "COUPON_VALIDITY_INVALID", 422, "优惠券的有效期设置有误"


class CouponStockBelowIssued(Conflict):
    code, message = "COUPON_STOCK_BELOW_ISSUED", "库存不能少于已发放数量"


class CouponTemplateEnded(Conflict):
    code, message = "COUPON_TEMPLATE_ENDED", "券模板已结束，不能修改"


class CouponTemplateStatusInvalid(Conflict):
    code, message = "COUPON_TEMPLATE_STATUS_INVALID", "券模板当前状态不能执行该操作"


@dataclass(frozen=True)
class TemplateValues:
    """Everything an operator sets on a template; a PUT replaces all of it.

    Term fields a kind does not use are left at their defaults (0, or None).
    """

    kind: CouponKind
    name: str
    total_stock: int
    description: str | None = None
    face_value_fen: int = 0
    min_spend_fen: int = 0
    discount_percent: int | None = None
    max_discount_fen: int = 0
    gift_name: str | None = None
    parking_minutes: int = 0
    parking_value_fen: int = 0
    store_ids: list[int] = field(default_factory=list)
    store_categories: list[str] = field(default_factory=list)
    per_member_limit: int = 1
    per_member_daily_limit: int = 0
    eligible_tier_ids: list[int] = field(default_factory=list)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days_after_issue: int | None = None
    claim_starts_at: datetime | None = None
    claim_ends_at: datetime | None = None
    points_price: int = 0
    refund_points_on_expiry: bool = False


# --- reading -------------------------------------------------------------------------------------


def get_template(session: Session, template_id: int) -> CouponTemplate:
    template = session.get(CouponTemplate, template_id)
    if template is None:
        raise NotFound("券模板不存在")
    return template


def list_templates(
    session: Session, *, status: TemplateStatus | None, offset: int, limit: int
) -> list[CouponTemplate]:
    """Newest first, optionally only those in one status."""
    query = select(CouponTemplate).order_by(CouponTemplate.id.desc()).offset(offset).limit(limit)
    if status is not None:
        query = query.where(CouponTemplate.status == status)
    return list(session.scalars(query))


@dataclass(frozen=True)
class TemplateStats:
    """A template with what its coupons did, counted from the coupons themselves."""

    template: CouponTemplate
    issued: int  # coupons given out, whatever became of them
    used: int  # coupons verified at a counter (核销), not undone

    @property
    def conversion(self) -> Fraction | None:
        """Used / issued; None before the first coupon is issued."""
        return Fraction(self.used, self.issued) if self.issued else None


def templates_with_stats(
    session: Session, *, status: TemplateStatus | None, offset: int, limit: int
) -> tuple[list[TemplateStats], int]:
    """A page of templates (newest first) with live issued/used counts, and how many templates match.

    The page's templates are chosen first and their coupons counted in the same statement, so the
    cost follows the page, not the whole coupons table, and never one query per template.
    """
    chosen = select(CouponTemplate.id).order_by(CouponTemplate.id.desc()).offset(offset).limit(limit)
    if status is not None:
        chosen = chosen.where(CouponTemplate.status == status)
    page = chosen.subquery()
    counts = (
        select(
            page.c.id.label("template_id"),
            func.count(Coupon.id).label("issued"),
            func.coalesce(func.sum(case((Coupon.status == CouponStatus.USED, 1), else_=0)), 0).label("used"),
        )
        .select_from(page)
        .outerjoin(Coupon, Coupon.template_id == page.c.id)
        .group_by(page.c.id)
        .subquery()
    )
    rows = session.execute(
        select(CouponTemplate, counts.c.issued, counts.c.used)
        .join(counts, counts.c.template_id == CouponTemplate.id)
        .order_by(CouponTemplate.id.desc())
    ).all()
    total_query = select(func.count()).select_from(CouponTemplate)
    if status is not None:
        total_query = total_query.where(CouponTemplate.status == status)
    stats = [TemplateStats(template, int(issued), int(used)) for template, issued, used in rows]
    return stats, int(session.scalar(total_query) or 0)


def issued(template: CouponTemplate) -> int:
    """How many coupons the template has given out (claimed, bought or sent), used or not."""
    return template.total_stock - template.remaining_stock


def discount_percent(template: CouponTemplate) -> int | None:
    """The discount as operators set it: None unless it is a discount coupon."""
    return template.discount_percent if template.kind is CouponKind.DISCOUNT else None


# --- writing -------------------------------------------------------------------------------------


def create_template(session: Session, values: TemplateValues) -> CouponTemplate:
    """A new template in `draft`, its whole stock still to give out."""
    columns = _checked_columns(session, values)
    template = CouponTemplate(**columns, status=TemplateStatus.DRAFT, remaining_stock=values.total_stock)
    session.add(template)
    session.flush()
    # Answer with what was stored (MySQL keeps whole seconds), as a later GET will.
    session.refresh(template)
    return template


def update_template(session: Session, template_id: int, values: TemplateValues) -> CouponTemplate:
    """Replace a template's terms, limits and windows; coupons already issued keep theirs.

    A new total stock moves the remaining stock by the same amount, and is refused (409) if
    it is below what was already issued. Ended templates cannot be edited (409).
    """
    template = get_template(session, template_id)
    if template.status is TemplateStatus.ENDED:
        raise CouponTemplateEnded()
    columns = _checked_columns(session, values)
    new_total = columns.pop("total_stock")
    # One statement, so that a claim taking stock meanwhile is counted. The SET order matters:
    # MySQL evaluates assignments left to right, so remaining_stock must read the old total.
    changed = session.execute(
        update(CouponTemplate)
        .where(
            CouponTemplate.id == template_id,
            CouponTemplate.status != TemplateStatus.ENDED,
            CouponTemplate.total_stock - CouponTemplate.remaining_stock <= new_total,
        )
        .ordered_values(
            (
                CouponTemplate.remaining_stock,
                CouponTemplate.remaining_stock + (new_total - CouponTemplate.total_stock),
            ),
            (CouponTemplate.total_stock, new_total),
            (CouponTemplate.revision, CouponTemplate.revision + 1),
            *((getattr(CouponTemplate, name), value) for name, value in columns.items()),
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    current = _reload(session, template_id, lock=not changed)
    if not changed:
        if current.status is TemplateStatus.ENDED:
            raise CouponTemplateEnded()
        raise CouponStockBelowIssued(details={"total_stock": new_total, "issued": issued(current)})
    return current


_TRANSITIONS: dict[TemplateStatus, tuple[TemplateStatus, ...]] = {
    TemplateStatus.ACTIVE: (TemplateStatus.DRAFT, TemplateStatus.PAUSED),
    TemplateStatus.PAUSED: (TemplateStatus.ACTIVE,),
    TemplateStatus.ENDED: (TemplateStatus.DRAFT, TemplateStatus.ACTIVE, TemplateStatus.PAUSED),
}


def activate(session: Session, template_id: int) -> CouponTemplate:
    """Open a draft or paused template to claims and issuing."""
    return _move(session, template_id, TemplateStatus.ACTIVE)


def pause(session: Session, template_id: int) -> CouponTemplate:
    """Stop claims and issuing for now; coupons already issued stay usable."""
    return _move(session, template_id, TemplateStatus.PAUSED)


def end(session: Session, template_id: int) -> CouponTemplate:
    """Stop the template for good; coupons already issued stay usable until they expire."""
    return _move(session, template_id, TemplateStatus.ENDED)


def _move(session: Session, template_id: int, to: TemplateStatus) -> CouponTemplate:
    allowed_from = _TRANSITIONS[to]
    # Conditional, so two operators clicking at once cannot both act on the same old status.
    moved = session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template_id, CouponTemplate.status.in_(allowed_from))
        .values(status=to)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    current = _reload(session, template_id, lock=not moved)
    if not moved:
        raise CouponTemplateStatusInvalid(
            details={
                "status": current.status.value,
                "allowed_from": [status.value for status in allowed_from],
            }
        )
    return current


def _reload(session: Session, template_id: int, *, lock: bool) -> CouponTemplate:
    """The row as it is now: after our UPDATE, or (locked, so not a stale snapshot) to say why none."""
    template = session.get(
        CouponTemplate, template_id, populate_existing=True, with_for_update=True if lock else None
    )
    if template is None:
        raise NotFound("券模板不存在")
    return template


# --- rules ---------------------------------------------------------------------------------------


def _checked_columns(session: Session, values: TemplateValues) -> dict[str, Any]:
    """The template's column values, normalised, once every rule holds."""
    _check_ranges(values)
    _check_terms(values)
    _check_validity(values)
    _check_claim_window(values)
    store_ids = _unique(values.store_ids)
    tier_ids = _unique(values.eligible_tier_ids)
    _check_exist(session, Store, store_ids, "store_ids", "门店不存在")
    _check_exist(session, Tier, tier_ids, "eligible_tier_ids", "会员等级不存在")
    is_discount = values.kind is CouponKind.DISCOUNT
    return {
        "kind": values.kind,
        "name": values.name.strip(),
        "description": (values.description or "").strip() or None,
        "face_value_fen": values.face_value_fen,
        "min_spend_fen": values.min_spend_fen,
        "discount_percent": values.discount_percent if is_discount else NO_DISCOUNT_PERCENT,
        "max_discount_fen": values.max_discount_fen,
        "gift_name": (values.gift_name or "").strip() or None,
        "parking_minutes": values.parking_minutes,
        "parking_value_fen": values.parking_value_fen,
        "store_ids": store_ids,
        "store_categories": _unique([category.strip() for category in values.store_categories]),
        "total_stock": values.total_stock,
        "per_member_limit": values.per_member_limit,
        "per_member_daily_limit": values.per_member_daily_limit,
        "eligible_tier_ids": tier_ids,
        "valid_from": _instant(values.valid_from),
        "valid_until": _instant(values.valid_until),
        "valid_days_after_issue": values.valid_days_after_issue,
        "claim_starts_at": _instant(values.claim_starts_at),
        "claim_ends_at": _instant(values.claim_ends_at),
        "points_price": values.points_price,
        "refund_points_on_expiry": values.refund_points_on_expiry,
    }


_INSTANTS = ("valid_from", "valid_until", "claim_starts_at", "claim_ends_at")


def _check_ranges(values: TemplateValues) -> None:
    errors: dict[str, list[str]] = {}
    if not values.name.strip():
        errors["name"] = ["不能为空白"]
    if not 1 <= values.total_stock <= MAX_TOTAL_STOCK:
        errors["total_stock"] = [f"应在 1 到 {MAX_TOTAL_STOCK} 之间"]
    for name in (
        "face_value_fen",
        "min_spend_fen",
        "max_discount_fen",
        "parking_minutes",
        "parking_value_fen",
        "per_member_limit",
        "per_member_daily_limit",
        "points_price",
    ):
        if getattr(values, name) < 0:
            errors[name] = ["不能小于 0"]
    if any(category.strip() == "" for category in values.store_categories):
        errors["store_categories"] = ["业态不能为空白"]
    for name in _INSTANTS:
        moment = getattr(values, name)
        if moment is not None and moment.utcoffset() is None:
            errors[name] = ["时间须带时区，如 2026-12-01T10:00:00+08:00"]
    if errors:
        raise ValidationFailed(details=errors)


def _check_terms(values: TemplateValues) -> None:
    kind_name = _KIND_NAMES[values.kind]
    errors: dict[str, list[str]] = {}
    unset = {
        "face_value_fen": values.face_value_fen == 0,
        "min_spend_fen": values.min_spend_fen == 0,
        "discount_percent": values.discount_percent is None,
        "max_discount_fen": values.max_discount_fen == 0,
        "gift_name": not (values.gift_name or "").strip(),
        "parking_minutes": values.parking_minutes == 0,
        "parking_value_fen": values.parking_value_fen == 0,
    }
    for name, is_unset in unset.items():
        if not is_unset and name not in KIND_FIELDS[values.kind]:
            errors[name] = [f"{kind_name}不使用此项，请留空或填 0"]
    if values.kind is CouponKind.CASH_OFF:
        if values.face_value_fen <= 0:
            errors["face_value_fen"] = ["满减券须填写减免金额（大于 0）"]
        elif 0 < values.min_spend_fen < values.face_value_fen:
            errors["min_spend_fen"] = ["使用门槛不能低于减免金额；0 表示无门槛"]
    elif values.kind is CouponKind.DISCOUNT:
        if values.discount_percent is None or not 1 <= values.discount_percent <= 99:
            errors["discount_percent"] = ["折扣券须填写 1 到 99 之间的折扣（88 即八八折）"]
    elif values.kind is CouponKind.GIFT:
        if unset["gift_name"]:
            errors["gift_name"] = ["礼品券须填写礼品名称"]
    elif values.kind is CouponKind.PARKING and (values.parking_minutes > 0) == (values.parking_value_fen > 0):
        message = "停车券须填写停车时长或抵扣金额中的一项（且只能一项）"
        errors["parking_minutes"] = errors["parking_value_fen"] = [message]
    if errors:
        raise CouponTermsInvalid(details=errors)


def _check_validity(values: TemplateValues) -> None:
    """Exactly one validity mode: a fixed window, or N days from the day a coupon is issued."""
    fixed = values.valid_from is not None or values.valid_until is not None
    relative = values.valid_days_after_issue is not None
    if fixed and relative:
        message = "固定有效期与领取后 N 天有效只能选一种"
        raise CouponValidityInvalid(
            details={name: [message] for name in ("valid_from", "valid_until", "valid_days_after_issue")}
        )
    if not fixed and not relative:
        message = "请设置固定有效期（开始和结束时间）或领取后有效天数"
        raise CouponValidityInvalid(
            details={name: [message] for name in ("valid_from", "valid_until", "valid_days_after_issue")}
        )
    if relative:
        assert values.valid_days_after_issue is not None
        if not 1 <= values.valid_days_after_issue <= MAX_VALID_DAYS:
            raise CouponValidityInvalid(
                details={"valid_days_after_issue": [f"应在 1 到 {MAX_VALID_DAYS} 之间"]}
            )
        return
    valid_from, valid_until = _instant(values.valid_from), _instant(values.valid_until)
    if valid_from is None or valid_until is None:
        missing = "valid_from" if valid_from is None else "valid_until"
        raise CouponValidityInvalid(details={missing: ["固定有效期须同时填写开始和结束时间"]})
    if valid_until <= valid_from:
        raise CouponValidityInvalid(details={"valid_until": ["结束时间须晚于开始时间"]})


def _check_claim_window(values: TemplateValues) -> None:
    starts, ends = _instant(values.claim_starts_at), _instant(values.claim_ends_at)
    if starts is not None and ends is not None and ends <= starts:
        raise ValidationFailed(details={"claim_ends_at": ["领取结束时间须晚于开始时间"]})


def _check_exist(
    session: Session, model: type[Store] | type[Tier], ids: list[int], field_name: str, message: str
) -> None:
    if not ids:
        return
    found = set(session.scalars(select(model.id).where(model.id.in_(ids))))
    unknown = [row_id for row_id in ids if row_id not in found]
    if unknown:
        raise ValidationFailed(details={field_name: [f"{message}：{', '.join(map(str, unknown))}"]})


def _instant(value: datetime | None) -> datetime | None:
    """UTC, to the second: what both SQLite and MySQL store, so comparisons agree with the row."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0)


def _unique(items: list[T]) -> list[T]:
    return list(dict.fromkeys(items))

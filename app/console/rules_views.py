"""Console pages for the points rules: the rules index, points settings, earning rates by store
category, points promotions, daily check-in with its streak bonuses, and referral points.

Admins and marketing change them; auditors read them; store managers are refused. Every form is
validated by the admin API's schema and saved by the same service, and every change is audited in
its own transaction with the values before and after.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, TypeVar

from flask import redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.forms import form_failure, load_form, read_form, yuan_text
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.points_schemas import CheckInBonusIn, EarningRateIn, PointsPromotionIn, PointsSettingsIn
from app.db import run_transaction, transaction
from app.errors import DomainError, NotFound
from app.extensions import mall_time
from app.models import (
    CheckInStreakBonus,
    CouponTemplate,
    EarningRate,
    ExpiryPolicy,
    OperatorRole,
    PointsPromotion,
    Store,
)
from app.services import audit, parking, points, points_rules, tiers

T = TypeVar("T")

VIEWERS = (OperatorRole.ADMIN, OperatorRole.MARKETING, OperatorRole.AUDITOR)
EDITORS = (OperatorRole.ADMIN, OperatorRole.MARKETING)

SETTINGS_FIELDS = tuple(field.name for field in fields(points_rules.SettingsValues))
RATE_FIELDS = tuple(field.name for field in fields(points_rules.EarningRateValues))
PROMOTION_FIELDS = tuple(field.name for field in fields(points_rules.PromotionValues))
BONUS_FIELDS = ("streak_days", "bonus_points")

# The settings each page edits; the others keep their value (points_rules.change_settings).
POINTS_PAGE_FIELDS = (
    "welcome_points",
    "welcome_coupon_template_id",
    "birthday_points",
    "share_points",
    "share_daily_limit",
    "purchase_min_amount_fen",
    "purchase_daily_cap_points",
    "expiry_policy",
    "expiry_days",
)
CHECK_IN_PAGE_FIELDS = ("checkin_points",)
REFERRAL_PAGE_FIELDS = ("referrer_points", "referee_points")
SETTINGS_YUAN_FIELDS = ("purchase_min_amount_fen",)
RATE_YUAN_FIELDS = ("spend_unit_fen",)

EXPIRY_POLICY_LABELS = {
    ExpiryPolicy.END_OF_NEXT_YEAR: "次年年底清零",
    ExpiryPolicy.DAYS_AFTER_EARNING: "获得后 N 天过期",
}
EXPIRY_POLICY_OPTIONS = [(policy.value, label) for policy, label in EXPIRY_POLICY_LABELS.items()]
ANY_CATEGORY_LABEL = "通用（未单独设置的业态）"


@dataclass(frozen=True)
class SubNavItem:
    label: str
    endpoint: str
    # The section's other pages (forms), under which the item shows as current too.
    also: tuple[str, ...] = ()

    def is_current(self, endpoint: str | None) -> bool:
        return endpoint == self.endpoint or endpoint in self.also


SUBNAV = (
    SubNavItem("概览", "console.rules_index"),
    SubNavItem("积分基础规则", "console.rules_points"),
    SubNavItem(
        "消费积分", "console.rules_earning_rates", ("console.new_earning_rate", "console.edit_earning_rate")
    ),
    SubNavItem("积分活动", "console.rules_promotions", ("console.new_promotion", "console.edit_promotion")),
    SubNavItem("每日签到", "console.rules_check_in", ("console.create_check_in_bonus",)),
    SubNavItem("推荐有礼", "console.rules_referral"),
    SubNavItem(
        "会员等级", "console.rules_tiers", ("console.new_tier", "console.edit_tier", "console.delete_tier")
    ),
    SubNavItem("停车规则", "console.rules_parking"),
)


# --- shared by the rules pages ---------------------------------------------------------------------


def can_edit() -> bool:
    return console_operator().role in EDITORS


def render_rules(template: str, status: int = 200, /, **context: Any) -> tuple[str, int]:
    context.setdefault("errors", {})
    context.setdefault("message", None)
    page = render_template(
        f"console/rules/{template}", subnav=SUBNAV, can_edit=can_edit(), saved=_saved_notice(), **context
    )
    return page, status


def _saved_notice() -> str | None:
    return {"1": "已保存", "deleted": "已删除"}.get(request.args.get("saved", ""))


def snapshot(row: object, names: Iterable[str]) -> dict[str, Any]:
    """The row's values as the audit log keeps them (JSON: enums by value, dates as ISO text)."""
    return {name: _plain(getattr(row, name)) for name in names}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [copy.deepcopy(item) for item in value]
    return value


def created(after: dict[str, Any]) -> dict[str, list[Any]]:
    return audit.changes({}, after)


def deleted(before: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [value, None] for name, value in before.items()}


def form_values(row: object | None, names: Iterable[str], yuan_fields: Iterable[str] = ()) -> dict[str, str]:
    """What a form's inputs show for a saved row: text, money in yuan, None as empty."""
    money = set(yuan_fields)
    values: dict[str, str] = {}
    for name in names:
        value = getattr(row, name) if row is not None else None
        if value is None:
            values[name] = ""
        elif name in money:
            values[name] = yuan_text(value)
        elif isinstance(value, bool):
            values[name] = "on" if value else ""
        else:
            values[name] = str(_plain(value))
    return values


def submitted() -> dict[str, str]:
    return {name: value.strip() for name, value in request.form.items() if name != "csrf_token"}


def coupon_template_options(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(select(CouponTemplate.id, CouponTemplate.name).order_by(CouponTemplate.id))
    return [("", "不发放")] + [(str(template_id), f"{name}（#{template_id}）") for template_id, name in rows]


def _get_or_404(session: Session, model: type[T], row_id: int, message: str, *, lock: bool = False) -> T:
    """The row; `lock` before a change, so that its "before" in the audit is what the change replaced."""
    row = session.get(model, row_id, with_for_update=lock)
    if row is None:
        raise NotFound(message)
    return row


# --- index -----------------------------------------------------------------------------------------


@bp.get("/rules")
@console_page(*VIEWERS)
def rules_index() -> tuple[str, int]:
    today = mall_time().today
    with transaction() as session:
        settings = points.points_settings(session)
        rates = points_rules.list_earning_rates(session)
        promotions = points_rules.list_promotions(session)
        bonuses = points_rules.list_check_in_bonuses(session)
        tier_list = tiers.tiers_by_rank(session)
        parking_rules = parking.parking_rules(session)
    running = [p for p in promotions if p.is_active and p.starts_on <= today <= p.ends_on]
    return render_rules(
        "index.html",
        settings=settings,
        rates=rates,
        running=running,
        bonuses=bonuses,
        tiers=tier_list,
        parking_rules=parking_rules,
        any_category_label=ANY_CATEGORY_LABEL,
    )


# --- points settings (and the check-in and referral pages, which edit a part of them) -------------


def _settings_page(
    template: str,
    page_fields: tuple[str, ...],
    audit_action: str,
    endpoint: str,
    loaders: Mapping[str, Callable[[Session], Any]] | None = None,
) -> Response | tuple[str, int]:
    """GET shows the page's part of the settings; POST saves it (the other fields are kept).
    `loaders` read what else the page shows."""
    with transaction() as session:
        settings = points.points_settings(session)
        extra = {name: load(session) for name, load in (loaders or {}).items()}
    if request.method == "GET":
        values = form_values(settings, page_fields, SETTINGS_YUAN_FIELDS)
        return render_rules(template, settings=settings, values=values, **extra)
    operator_id, at = console_operator().id, mall_time()
    try:
        schema = PointsSettingsIn(only=page_fields)
        data, typing_errors = read_form(schema, request.form, yuan_fields=SETTINGS_YUAN_FIELDS)
        changes = load_form(schema, data, errors=typing_errors)

        def work(session: Session) -> None:
            before = snapshot(points_rules.locked_settings(session), SETTINGS_FIELDS)
            saved = points_rules.change_settings(session, changes, operator_id=operator_id, at=at)
            after = snapshot(saved, SETTINGS_FIELDS)
            audit_console_action(
                session, audit_action, "points_settings", saved.id, detail=audit.changes(before, after)
            )

        run_transaction(work)
    except DomainError as error:
        failure = form_failure(error)
        return render_rules(
            template,
            failure.status,
            settings=settings,
            values=submitted(),
            errors=failure.errors,
            message=failure.message,
            **extra,
        )
    return redirect(url_for(endpoint, saved=1))


@bp.route("/rules/points", methods=["GET", "POST"])
@console_page(*VIEWERS)
def rules_points() -> Response | tuple[str, int]:
    return _settings_page(
        "points.html",
        POINTS_PAGE_FIELDS,
        "points_settings.update",
        "console.rules_points",
        {"coupon_templates": coupon_template_options, "expiry_policies": lambda _: EXPIRY_POLICY_OPTIONS},
    )


@bp.route("/rules/check-in", methods=["GET", "POST"])
@console_page(*VIEWERS)
def rules_check_in() -> Response | tuple[str, int]:
    return _settings_page(
        "check_in.html",
        CHECK_IN_PAGE_FIELDS,
        "check_in.update",
        "console.rules_check_in",
        {"bonuses": points_rules.list_check_in_bonuses},
    )


@bp.route("/rules/referral", methods=["GET", "POST"])
@console_page(*VIEWERS)
def rules_referral() -> Response | tuple[str, int]:
    return _settings_page("referral.html", REFERRAL_PAGE_FIELDS, "referral.update", "console.rules_referral")


# --- check-in streak bonuses -----------------------------------------------------------------------


@bp.post("/rules/check-in/bonuses")
@console_page(*EDITORS)
def create_check_in_bonus() -> Response | tuple[str, int]:
    try:
        args = load_form(CheckInBonusIn(), read_form(CheckInBonusIn(), request.form)[0])

        def work(session: Session) -> None:
            bonus = points_rules.create_check_in_bonus(session, **args)
            after = snapshot(bonus, BONUS_FIELDS)
            audit_console_action(session, "check_in_bonus.create", "check_in_bonus", bonus.id, created(after))

        run_transaction(work)
    except DomainError as error:
        failure = form_failure(error)
        with transaction() as session:
            settings = points.points_settings(session)
            bonuses = points_rules.list_check_in_bonuses(session)
        return render_rules(
            "check_in.html",
            failure.status,
            settings=settings,
            bonuses=bonuses,
            values=form_values(settings, CHECK_IN_PAGE_FIELDS),
            bonus_values=submitted(),
            bonus_errors=failure.errors,
            bonus_message=failure.message,
        )
    return redirect(url_for("console.rules_check_in", saved=1))


@bp.post("/rules/check-in/bonuses/<int:bonus_id>/delete")
@console_page(*EDITORS)
def delete_check_in_bonus(bonus_id: int) -> Response:
    def work(session: Session) -> None:
        bonus = _get_or_404(session, CheckInStreakBonus, bonus_id, "连续签到奖励不存在", lock=True)
        before = snapshot(bonus, BONUS_FIELDS)
        points_rules.delete_check_in_bonus(session, bonus_id)
        audit_console_action(session, "check_in_bonus.delete", "check_in_bonus", bonus_id, deleted(before))

    run_transaction(work)
    return redirect(url_for("console.rules_check_in", saved="deleted"))


# --- earning rates ---------------------------------------------------------------------------------


def _store_categories(session: Session) -> list[str]:
    return list(session.scalars(select(Store.category).distinct().order_by(Store.category)))


@bp.get("/rules/earning-rates")
@console_page(*VIEWERS)
def rules_earning_rates() -> tuple[str, int]:
    with transaction() as session:
        rates = points_rules.list_earning_rates(session)
        settings = points.points_settings(session)
    return render_rules(
        "earning_rates.html", rates=rates, settings=settings, any_category_label=ANY_CATEGORY_LABEL
    )


def _earning_rate_form(rate_id: int | None) -> Response | tuple[str, int]:
    with transaction() as session:
        rate = _get_or_404(session, EarningRate, rate_id, "积分规则不存在") if rate_id else None
        categories = _store_categories(session)
    context: dict[str, Any] = {
        "rate": rate,
        "categories": categories,
        "any_category_label": ANY_CATEGORY_LABEL,
    }
    if request.method == "GET":
        values = form_values(rate, RATE_FIELDS, RATE_YUAN_FIELDS)
        return render_rules("earning_rate_form.html", values=values, **context)
    try:
        data, typing_errors = read_form(EarningRateIn(), request.form, yuan_fields=RATE_YUAN_FIELDS)
        rate_values = points_rules.EarningRateValues(**load_form(EarningRateIn(), data, errors=typing_errors))
        run_transaction(lambda session: _save_earning_rate(session, rate_id, rate_values))
    except DomainError as error:
        failure = form_failure(error)
        return render_rules(
            "earning_rate_form.html",
            failure.status,
            values=submitted(),
            errors=failure.errors,
            message=failure.message,
            **context,
        )
    return redirect(url_for("console.rules_earning_rates", saved=1))


def _save_earning_rate(session: Session, rate_id: int | None, values: points_rules.EarningRateValues) -> None:
    if rate_id is None:
        rate = points_rules.create_earning_rate(session, values)
        audit_console_action(
            session, "earning_rate.create", "earning_rate", rate.id, created(snapshot(rate, RATE_FIELDS))
        )
        return
    before = snapshot(_get_or_404(session, EarningRate, rate_id, "积分规则不存在", lock=True), RATE_FIELDS)
    rate = points_rules.update_earning_rate(session, rate_id, values)
    after = snapshot(rate, RATE_FIELDS)
    audit_console_action(
        session, "earning_rate.update", "earning_rate", rate.id, audit.changes(before, after)
    )


@bp.route("/rules/earning-rates/new", methods=["GET", "POST"])
@console_page(*EDITORS)
def new_earning_rate() -> Response | tuple[str, int]:
    return _earning_rate_form(None)


@bp.route("/rules/earning-rates/<int:rate_id>/edit", methods=["GET", "POST"])
@console_page(*EDITORS)
def edit_earning_rate(rate_id: int) -> Response | tuple[str, int]:
    return _earning_rate_form(rate_id)


@bp.post("/rules/earning-rates/<int:rate_id>/delete")
@console_page(*EDITORS)
def delete_earning_rate(rate_id: int) -> Response:
    def work(session: Session) -> None:
        before = snapshot(
            _get_or_404(session, EarningRate, rate_id, "积分规则不存在", lock=True), RATE_FIELDS
        )
        points_rules.delete_earning_rate(session, rate_id)
        audit_console_action(session, "earning_rate.delete", "earning_rate", rate_id, deleted(before))

    run_transaction(work)
    return redirect(url_for("console.rules_earning_rates", saved="deleted"))


# --- points promotions -----------------------------------------------------------------------------


def promotion_status(promotion: PointsPromotion, today: date) -> str:
    if not promotion.is_active:
        return "已停用"
    if today < promotion.starts_on:
        return "未开始"
    if today > promotion.ends_on:
        return "已结束"
    return "进行中"


@bp.get("/rules/promotions")
@console_page(*VIEWERS)
def rules_promotions() -> tuple[str, int]:
    today = mall_time().today
    with transaction() as session:
        promotions = points_rules.list_promotions(session)
    rows = [(promotion, promotion_status(promotion, today)) for promotion in promotions]
    return render_rules("promotions.html", rows=rows)


def _promotion_form(promotion_id: int | None) -> Response | tuple[str, int]:
    with transaction() as session:
        promotion = (
            _get_or_404(session, PointsPromotion, promotion_id, "积分活动不存在") if promotion_id else None
        )
        categories = _store_categories(session)
    context: dict[str, Any] = {"promotion": promotion, "categories": categories}
    if request.method == "GET":
        values = form_values(promotion, PROMOTION_FIELDS)
        if promotion is None:
            values["is_active"] = "on"
            values["multiplier_percent"] = "200"
        return render_rules("promotion_form.html", values=values, **context)
    try:
        promotion_values = points_rules.PromotionValues(
            **load_form(PointsPromotionIn(), read_form(PointsPromotionIn(), request.form)[0])
        )
        run_transaction(lambda session: _save_promotion(session, promotion_id, promotion_values))
    except DomainError as error:
        failure = form_failure(error)
        return render_rules(
            "promotion_form.html",
            failure.status,
            values=submitted(),
            errors=failure.errors,
            message=failure.message,
            **context,
        )
    return redirect(url_for("console.rules_promotions", saved=1))


def _save_promotion(session: Session, promotion_id: int | None, values: points_rules.PromotionValues) -> None:
    if promotion_id is None:
        promotion = points_rules.create_promotion(session, values)
        after = snapshot(promotion, PROMOTION_FIELDS)
        audit_console_action(
            session, "points_promotion.create", "points_promotion", promotion.id, created(after)
        )
        return
    before = snapshot(
        _get_or_404(session, PointsPromotion, promotion_id, "积分活动不存在", lock=True), PROMOTION_FIELDS
    )
    promotion = points_rules.update_promotion(session, promotion_id, values)
    after = snapshot(promotion, PROMOTION_FIELDS)
    audit_console_action(
        session, "points_promotion.update", "points_promotion", promotion.id, audit.changes(before, after)
    )


@bp.route("/rules/promotions/new", methods=["GET", "POST"])
@console_page(*EDITORS)
def new_promotion() -> Response | tuple[str, int]:
    return _promotion_form(None)


@bp.route("/rules/promotions/<int:promotion_id>/edit", methods=["GET", "POST"])
@console_page(*EDITORS)
def edit_promotion(promotion_id: int) -> Response | tuple[str, int]:
    return _promotion_form(promotion_id)


@bp.post("/rules/promotions/<int:promotion_id>/active")
@console_page(*EDITORS)
def set_promotion_active(promotion_id: int) -> Response:
    """Pause (is_active=0) or resume (is_active=1) a promotion; its other terms stay."""
    active = request.form.get("is_active") == "1"

    def work(session: Session) -> None:
        promotion = _get_or_404(session, PointsPromotion, promotion_id, "积分活动不存在", lock=True)
        before = snapshot(promotion, PROMOTION_FIELDS)
        values = points_rules.PromotionValues(**{**_terms(promotion), "is_active": active})
        after = snapshot(points_rules.update_promotion(session, promotion_id, values), PROMOTION_FIELDS)
        action = "points_promotion.activate" if active else "points_promotion.deactivate"
        audit_console_action(session, action, "points_promotion", promotion_id, audit.changes(before, after))

    run_transaction(work)
    return redirect(url_for("console.rules_promotions", saved=1))


def _terms(promotion: PointsPromotion) -> dict[str, Any]:
    return {name: getattr(promotion, name) for name in PROMOTION_FIELDS}


@bp.post("/rules/promotions/<int:promotion_id>/delete")
@console_page(*EDITORS)
def delete_promotion(promotion_id: int) -> Response:
    def work(session: Session) -> None:
        promotion = _get_or_404(session, PointsPromotion, promotion_id, "积分活动不存在", lock=True)
        before = snapshot(promotion, PROMOTION_FIELDS)
        points_rules.delete_promotion(session, promotion_id)
        audit_console_action(
            session, "points_promotion.delete", "points_promotion", promotion_id, deleted(before)
        )

    run_transaction(work)
    return redirect(url_for("console.rules_promotions", saved="deleted"))

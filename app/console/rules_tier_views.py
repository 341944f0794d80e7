"""Console pages for the tiers (thresholds, multiplier, parking benefit, birthday coupon) and the
parking rules (points per yuan, the cap per visit, free minutes for spending). Same roles and
audit as the other rules pages (rules_views)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from flask import redirect, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.forms import FormInvalid, form_failure, load_form, parse_yuan, read_form, yuan_text
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.parking_schemas import ParkingRulesIn
from app.console.points_schemas import AdminTierIn
from app.console.rules_views import (
    EDITORS,
    VIEWERS,
    coupon_template_options,
    created,
    deleted,
    form_values,
    render_rules,
    snapshot,
    submitted,
)
from app.db import run_transaction, transaction
from app.errors import Conflict, DomainError, NotFound
from app.extensions import mall_time
from app.models import Tier
from app.services import audit, parking, points_rules, tiers

TIER_FIELDS = tuple(field.name for field in fields(points_rules.TierValues))
TIER_YUAN_FIELDS = ("min_annual_spend_fen",)
PARKING_FIELDS = tuple(field.name for field in fields(parking.RulesValues))
PARKING_YUAN_FIELDS = ("points_max_fen_per_visit",)
SPENDING_ROWS = "spending_free_minutes"
MAX_SPENDING_ROWS = 10


# --- tiers -----------------------------------------------------------------------------------------


def _tiers_page(status: int = 200, message: str | None = None) -> tuple[str, int]:
    with transaction() as session:
        tier_list = tiers.tiers_by_rank(session)
        member_counts = tiers.member_counts(session)
        templates = dict(coupon_template_options(session))
    rows = [(tier, tiers.benefits(tier), member_counts.get(tier.id, 0)) for tier in tier_list]
    return render_rules("tiers.html", status, rows=rows, templates=templates, message=message)


@bp.get("/rules/tiers")
@console_page(*VIEWERS)
def rules_tiers() -> tuple[str, int]:
    return _tiers_page()


def _tier_form(tier_id: int | None) -> Response | tuple[str, int]:
    with transaction() as session:
        tier = session.get(Tier, tier_id) if tier_id else None
        if tier_id and tier is None:
            raise NotFound("会员等级不存在")
        templates = coupon_template_options(session)
    context: dict[str, Any] = {"tier": tier, "coupon_templates": templates}
    if request.method == "GET":
        values = form_values(tier, TIER_FIELDS, TIER_YUAN_FIELDS)
        if tier is None:
            values["points_multiplier_percent"] = "100"
            values["free_parking_minutes_per_day"] = "0"
        return render_rules("tier_form.html", values=values, **context)
    try:
        data, typing_errors = read_form(AdminTierIn(), request.form, yuan_fields=TIER_YUAN_FIELDS)
        tier_values = points_rules.TierValues(**load_form(AdminTierIn(), data, errors=typing_errors))
        run_transaction(lambda session: _save_tier(session, tier_id, tier_values))
    except DomainError as error:
        failure = form_failure(error)
        return render_rules(
            "tier_form.html",
            failure.status,
            values=submitted(),
            errors=failure.errors,
            message=failure.message,
            **context,
        )
    return redirect(url_for("console.rules_tiers", saved=1))


def _save_tier(session: Session, tier_id: int | None, values: points_rules.TierValues) -> None:
    if tier_id is None:
        tier = points_rules.create_tier(session, values)
        audit_console_action(session, "tier.create", "tier", tier.id, created(snapshot(tier, TIER_FIELDS)))
        return
    existing = session.get(Tier, tier_id)
    before = snapshot(existing, TIER_FIELDS) if existing else {}
    tier = points_rules.update_tier(session, tier_id, values)
    audit_console_action(
        session, "tier.update", "tier", tier.id, audit.changes(before, snapshot(tier, TIER_FIELDS))
    )


@bp.route("/rules/tiers/new", methods=["GET", "POST"])
@console_page(*EDITORS)
def new_tier() -> Response | tuple[str, int]:
    return _tier_form(None)


@bp.route("/rules/tiers/<int:tier_id>/edit", methods=["GET", "POST"])
@console_page(*EDITORS)
def edit_tier(tier_id: int) -> Response | tuple[str, int]:
    return _tier_form(tier_id)


@bp.post("/rules/tiers/<int:tier_id>/delete")
@console_page(*EDITORS)
def delete_tier(tier_id: int) -> Response | tuple[str, int]:
    def work(session: Session) -> None:
        tier = session.get(Tier, tier_id)
        before = snapshot(tier, TIER_FIELDS) if tier else {}
        points_rules.delete_tier(session, tier_id)
        audit_console_action(session, "tier.delete", "tier", tier_id, deleted(before))

    try:
        run_transaction(work)
    except Conflict as error:
        # Held by members, or the last tier: the list again, with why it stays.
        return _tiers_page(error.status, error.message)
    return redirect(url_for("console.rules_tiers", saved="deleted"))


# --- parking rules ---------------------------------------------------------------------------------


def _spending_rows(rules: Any) -> list[dict[str, str]]:
    saved = [
        {"min_spend_fen": yuan_text(row["min_spend_fen"]), "free_minutes": str(row["free_minutes"])}
        for row in rules.spending_free_minutes
    ]
    return _with_blank_rows(saved)


def _with_blank_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Room to add thresholds: at least two empty rows (three rows in all), at most ten rows."""
    filled = [row for row in rows if row["min_spend_fen"] or row["free_minutes"]]
    blanks = max(2, 3 - len(filled))
    return (rows + [{"min_spend_fen": "", "free_minutes": ""}] * blanks)[:MAX_SPENDING_ROWS]


def _submitted_spending_rows() -> list[dict[str, str]]:
    rows = []
    for index in range(MAX_SPENDING_ROWS):
        spend = request.form.get(f"{SPENDING_ROWS}.{index}.min_spend_fen")
        minutes = request.form.get(f"{SPENDING_ROWS}.{index}.free_minutes")
        if spend is None and minutes is None:
            break
        rows.append({"min_spend_fen": (spend or "").strip(), "free_minutes": (minutes or "").strip()})
    return rows


def _spending_input(rows: list[dict[str, str]]) -> tuple[list[dict[str, Any]], list[int], dict[str, str]]:
    """The filled rows, typed (money in yuan → fen), the form row each came from, and typing errors."""
    typed: list[dict[str, Any]] = []
    origin: list[int] = []
    errors: dict[str, str] = {}
    for index, row in enumerate(rows):
        if not row["min_spend_fen"] and not row["free_minutes"]:
            continue
        item: dict[str, Any] = {}
        if row["min_spend_fen"]:
            try:
                item["min_spend_fen"] = parse_yuan(row["min_spend_fen"])
            except ValueError as exc:
                errors[f"{SPENDING_ROWS}.{index}.min_spend_fen"] = str(exc)
        if row["free_minutes"]:
            item["free_minutes"] = (
                int(row["free_minutes"]) if row["free_minutes"].isdigit() else row["free_minutes"]
            )
        typed.append(item)
        origin.append(index)
    return typed, origin, errors


def _renumbered(errors: dict[str, str], origin: list[int]) -> dict[str, str]:
    """Errors of row N of the filled rows → errors of the form row it came from."""
    prefix = f"{SPENDING_ROWS}."
    result = {}
    for key, message in errors.items():
        parts = key.split(".")
        if key.startswith(prefix) and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(origin):
            key = f"{SPENDING_ROWS}.{origin[int(parts[1])]}.{parts[2]}"
        result[key] = message
    return result


@bp.route("/rules/parking", methods=["GET", "POST"])
@console_page(*VIEWERS)
def rules_parking() -> Response | tuple[str, int]:
    with transaction() as session:
        rules = parking.parking_rules(session)
        tier_list = tiers.tiers_by_rank(session)
    context: dict[str, Any] = {"rules": rules, "tiers": tier_list}
    if request.method == "GET":
        values = form_values(rules, PARKING_FIELDS[:3], PARKING_YUAN_FIELDS)
        return render_rules("parking.html", values=values, spending=_spending_rows(rules), **context)
    operator_id, at = console_operator().id, mall_time()
    spending = _submitted_spending_rows()
    try:
        typed, origin, spending_errors = _spending_input(spending)
        try:
            data, typing_errors = read_form(ParkingRulesIn(), request.form, yuan_fields=PARKING_YUAN_FIELDS)
            args = load_form(ParkingRulesIn(), {**data, SPENDING_ROWS: typed}, errors=typing_errors)
        except FormInvalid as error:
            raise FormInvalid({**_renumbered(error.errors, origin), **spending_errors}) from error
        if spending_errors:
            raise FormInvalid(spending_errors)
        rules_values = parking.RulesValues(**args)

        def work(session: Session) -> None:
            before = snapshot(parking.parking_rules(session), PARKING_FIELDS)
            saved = parking.save_rules(session, rules_values, operator_id=operator_id, at=at)
            after = snapshot(saved, PARKING_FIELDS)
            audit_console_action(
                session, "parking_rules.update", "parking_rules", saved.id, audit.changes(before, after)
            )

        run_transaction(work)
    except DomainError as error:
        failure = form_failure(error)
        return render_rules(
            "parking.html",
            failure.status,
            values=submitted(),
            spending=_with_blank_rows(spending),
            errors=failure.errors,
            message=failure.message,
            **context,
        )
    return redirect(url_for("console.rules_parking", saved=1))

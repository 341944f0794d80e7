"""Console forms on top of the admin API's marshmallow schemas: HTML form text typed as the schema
expects, money typed in yuan and stored in integer fen, and every error as a Chinese message per field,
so a page re-renders its form with the message beside the field it is about.

    try:
        args = load_form(EarningRateIn(), request.form, yuan_fields=("spend_unit_fen",))
        ...service call...
    except DomainError as error:
        failure = form_failure(error)   # .errors (field → message), .message, .status; re-raises 403/404
        return render_template(..., errors=failure.errors, message=failure.message), failure.status

Templates: the `yuan` filter shows fen as "¥1,234.50", `mall_datetime` an instant on the mall's
clock; `console/form_macros.html` draws labelled fields with their error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma

from app.console.pages import bp
from app.errors import DomainError, in_chinese
from app.extensions import mall_time

TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
CHECK_THE_FIELDS = "请检查标红的字段"


class FormInvalid(DomainError):
    """Per-field messages (field name → Chinese message); nested fields are named "list.0.field"."""

    code, status, message = "FORM_INVALID", 422, CHECK_THE_FIELDS

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(details=errors)
        self.errors = errors


# The refusals a form shows itself (bad input, a conflict with the current state); others (403, 404)
# are the console's error page.
FORM_STATUSES = frozenset({400, 409, 422})


@dataclass(frozen=True)
class FormFailure:
    errors: dict[str, str]
    message: str
    status: int


def form_failure(error: DomainError) -> FormFailure:
    """How a form shows a refused submission: field errors beside their fields, the rest on top.
    Re-raises an error that is not about the form (403, 404: the console's error page)."""
    if error.status not in FORM_STATUSES:
        raise error
    if isinstance(error, FormInvalid):
        return FormFailure(error.errors, error.message, error.status)
    if _are_field_messages(error.details):
        # A service's per-field refusal (ValidationFailed and the like): {"field": ["message"]}.
        return FormFailure(field_errors(error.details), CHECK_THE_FIELDS, error.status)
    return FormFailure({}, error.message, error.status)


def _are_field_messages(details: Any) -> bool:
    return (
        isinstance(details, dict)
        and bool(details)
        and all(isinstance(value, list | dict) for value in details.values())
    )


def field_errors(messages: Mapping[Any, Any]) -> dict[str, str]:
    """marshmallow's (or a service's) messages → field name → the first message, in Chinese."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            if value and all(isinstance(item, str) for item in value):
                flat.setdefault(prefix, value[0])
            else:
                for item in value:
                    walk(prefix, item)
        else:
            flat.setdefault(prefix, str(value))

    walk("", in_chinese(dict(messages)))
    return flat


def parse_yuan(raw: str) -> int:
    """Yuan typed in a form → fen: "12.5" → 1250. Raises ValueError, with a Chinese message, for
    text that is no amount, a negative amount or a third decimal."""
    text = raw.strip().removeprefix("¥").replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("金额格式有误，如 12.50") from exc
    if not amount.is_finite():
        raise ValueError("金额格式有误，如 12.50")
    if amount < 0:
        raise ValueError("金额不能为负数")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError("金额最多保留两位小数")
    return int(fen)


def yuan_text(fen: int | None) -> str:
    """Fen as a form's input shows it: 1250 → "12.50"."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


@bp.app_template_filter("yuan")
def format_yuan(fen: int | None) -> str:
    """Fen as every page shows money: 123450 → "¥1,234.50"."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


@bp.app_template_filter("mall_datetime")
def format_mall_datetime(moment: datetime | None) -> str:
    """An instant as the mall's clock shows it: "2026-11-25 21:05"."""
    if moment is None:
        return "—"
    return moment.astimezone(mall_time().tz).strftime("%Y-%m-%d %H:%M")


def form_input(
    schema: ma.Schema, form: Mapping[str, str], *, yuan_fields: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values for the schema's fields, typed as the schema expects, and the errors found
    while typing them (money). Integers are parsed from text (left as text when they are not, so
    the schema reports them); an empty field is missing, or None where the schema allows None; an
    unchecked checkbox is False. Nested and list fields are the caller's to build."""
    money = set(yuan_fields)
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if isinstance(field, ma.fields.Boolean):
            data[key] = form.get(key, "").strip().lower() in TRUE_WORDS
            continue
        raw = form.get(key)
        if raw is None or isinstance(field, ma.fields.Nested | ma.fields.List):
            continue
        raw = raw.strip()
        if not raw:
            if field.allow_none:
                data[key] = None
            continue
        if key in money:
            try:
                data[key] = parse_yuan(raw)
            except ValueError as exc:
                errors[key] = str(exc)
        elif isinstance(field, ma.fields.Integer):
            data[key] = _integer_or_text(raw)
        else:
            data[key] = raw
    return data, errors


def load_form(
    schema: ma.Schema,
    form: Mapping[str, str],
    *,
    yuan_fields: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`form_input` then `schema.load`; `extra` adds values the caller built (e.g. a list of rows).
    Raises FormInvalid with every field's message."""
    data, errors = form_input(schema, form, yuan_fields=yuan_fields)
    data.update(extra or {})
    for name in errors:
        data.pop(name, None)
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ma.ValidationError as error:
        # A money field that failed to parse is missing from `data`: keep its own message, not "必填".
        errors = {**field_errors(error.normalized_messages()), **errors}
        raise FormInvalid(errors) from error
    if errors:
        raise FormInvalid(errors)
    return loaded


def _integer_or_text(raw: str) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return raw

"""Console forms on top of the admin API's marshmallow schemas: what a browser posts (text, yuan, mall
times) typed as the schema expects, and every refusal as a Chinese message per field, so a page
re-renders its form with each message beside the field it is about (or, with `labels`, one message
naming the fields, for pages that show it above the form).

    data, errors = read_form(EarningRateIn(), request.form, yuan_fields=("spend_unit_fen",))
    try:
        args = load_form(EarningRateIn(), data, errors=errors)
        ...service call...
    except DomainError as error:
        failure = form_failure(error)   # .errors (field → message), .message, .status
        return render_template(..., errors=failure.errors, message=failure.message), failure.status

Templates (filters registered once, on the console blueprint): `yuan` shows fen as "¥1,234.50",
`mall_datetime` / `mall_date` an instant on the mall's clock; `console/form_macros.html` draws labelled
fields with their error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma

from app.console.pages import bp
from app.errors import DomainError, NotFound, ValidationFailed, in_chinese
from app.extensions import mall_time
from app.mall_time import MallTime

TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
# The refusals a form shows itself (bad input, a conflict with the current state); others (403, 404)
# are the console's error page.
FORM_STATUSES = frozenset({400, 409, 422})
_INTEGER = re.compile(r"-?\d{1,12}")


class FormInvalid(DomainError):
    """A form to show again: a message on top and a Chinese message per field (field name → message;
    a field of a nested row is named "list.0.field")."""

    code, status, message = "FORM_INVALID", 422, "提交的内容有误，请按提示修改"

    def __init__(
        self, errors: Mapping[str, str] | None = None, message: str | None = None, *, status: int = 422
    ) -> None:
        self.errors = dict(errors or {})
        super().__init__(message, details=self.errors or None)
        self.status = status  # type: ignore[misc]


@dataclass(frozen=True)
class FormFailure:
    errors: dict[str, str]
    message: str
    status: int


def form_failure(error: DomainError, *, missing_is_invalid: bool = False) -> FormFailure:
    """How a form shows a refused submission: field errors beside their fields, the rest on top.
    With `missing_is_invalid`, a record the form chose that does not exist (404) is bad input (422);
    any other error that is not about the form (403, 404) is re-raised for the console's error page."""
    if missing_is_invalid and isinstance(error, NotFound):
        return FormFailure(service_field_errors(error), error.message, 422)
    if error.status not in FORM_STATUSES:
        raise error
    if isinstance(error, FormInvalid):
        return FormFailure(error.errors, error.message, error.status)
    return FormFailure(service_field_errors(error), error.message, error.status)


def form_status(error: DomainError) -> int:
    """The status of a form re-rendered with `error`: a record the form names that does not exist is
    bad input (422), not a missing page."""
    return 422 if isinstance(error, NotFound) else error.status


def service_field_errors(error: DomainError) -> dict[str, str]:
    """The per-field messages a service put in an error's details, if it named fields:
    {"field": ["message"]} (ValidationFailed and the like) or {"field": name, "problem": ...}."""
    details = error.details
    if not isinstance(details, dict):
        return {}
    if isinstance(details.get("field"), str):  # the error's own message is about that field
        return {details["field"]: error.message}
    if details and all(isinstance(value, list | dict) for value in details.values()):
        return field_errors(details)
    return {}


def field_errors(messages: Any) -> dict[str, str]:
    """marshmallow's (or a service's) messages → field name → its first message, in Chinese. A row of
    a nested list is "list.0.field"; an item of a list of plain values is the list field's error."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                if isinstance(key, int) and not isinstance(inner, Mapping):
                    walk(prefix, inner)  # store_ids[3] is not a valid integer: store_ids is wrong
                else:
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            if value and all(isinstance(item, str) for item in value):
                flat.setdefault(prefix or "_schema", value[0])
            else:
                for item in value:
                    walk(prefix, item)
        else:
            flat.setdefault(prefix or "_schema", str(value))

    walk("", in_chinese(messages if isinstance(messages, Mapping | list) else [str(messages)]))
    return flat


def labelled(errors: Mapping[str, str], labels: Mapping[str, str]) -> str:
    """Per-field messages as one line naming each field by its label: "名称：必填；电话：格式有误"."""
    parts = []
    for name, text in errors.items():
        label = labels.get(name.split(".", 1)[0])
        parts.append(f"{label}：{text}" if label else text)
    return "；".join(parts) or FormInvalid.message


def explained(error: DomainError, labels: Mapping[str, str]) -> str:
    """What to tell the operator above a form: a service's per-field validation details, by field
    label, when it gave them; else its message."""
    details = error.details
    if (
        isinstance(error, ValidationFailed)
        and isinstance(details, dict)
        and details
        and all(isinstance(value, list) for value in details.values())
    ):
        return labelled(field_errors(details), labels)
    return error.message


def load_form(
    schema: ma.Schema,
    data: Mapping[str, Any],
    *,
    errors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`data` (the form's values, typed: see `read_form`) through the admin API's schema, unknown keys
    ignored. `errors` are the fields the caller already refused while typing them: they keep their own
    message and are reported with the schema's. Raises FormInvalid with every field's message; its
    message names the fields by `labels` when given, else it is the generic one."""
    refused = dict(errors or {})
    found: dict[str, str] = {}
    loaded: dict[str, Any] = {}
    try:
        loaded = dict(schema.load({k: v for k, v in data.items() if k not in refused}, unknown=ma.EXCLUDE))
    except ma.ValidationError as error:
        found = field_errors(error.normalized_messages())
    found.update(refused)
    if found:
        raise FormInvalid(found, labelled(found, labels) if labels is not None else None)
    return loaded


# --- reading what a browser posts ---------------------------------------------------------------


def read_form(
    schema: ma.Schema, form: Mapping[str, str], *, yuan_fields: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values for the schema's fields, typed as the schema expects, and the errors found
    while typing them (money). Integers are parsed from text (left as text when they are not, so the
    schema reports them); an empty field is missing, or None where the schema allows None; an
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
            data[key] = integer(raw)
        else:
            data[key] = raw
    return data, errors


def form_values(
    source: Mapping[str, str], names: Iterable[str], *, integers: Iterable[str] = ()
) -> dict[str, Any]:
    """The named fields, trimmed; blanks left out (so schema defaults apply) and digit strings of
    `integers` made ints (HTML forms send text; the admin API's schemas expect JSON numbers)."""
    wanted_ints = set(integers)
    values: dict[str, Any] = {}
    for name in names:
        raw = source.get(name, "").strip()
        if not raw:
            continue
        values[name] = int(raw) if name in wanted_ints and raw.isdigit() else raw
    return values


def integer(raw: str | None) -> int | str | None:
    """A whole number, None when left empty; anything else stays text for the schema to refuse."""
    text = (raw or "").strip()
    if not text:
        return None
    return int(text) if _INTEGER.fullmatch(text) else text


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


def yuan_text(fen: int | None, *, compact: bool = False) -> str:
    """Fen as a form's input shows it: 1250 → "12.50"; `compact` (a value typed among others, as in
    the rule builder) drops trailing zeros: 20000 → "200", 1550 → "15.5"."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    text = f"{sign}{whole}.{cents:02d}"
    return text.rstrip("0").rstrip(".") if compact else text


def instant_from_local(raw: str | None) -> str | None:
    """A `datetime-local` input (the mall's clock) → an ISO instant with its offset, None when empty.
    What does not parse is passed on as typed, for the schema to refuse."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=mall_time().tz)
    return moment.isoformat()


def local_input(moment: datetime | None) -> str:
    """An instant as a `datetime-local` input shows it, on the mall's clock."""
    return moment.astimezone(mall_time().tz).strftime("%Y-%m-%dT%H:%M") if moment else ""


def day_bounds(
    at: MallTime, first: date | None, last: date | None
) -> tuple[datetime | None, datetime | None]:
    """The UTC instants from the start of business day `first` to the end of business day `last`."""
    since = at.start_of(first) if first else None
    until = at.start_of(last + timedelta(days=1)) if last else None
    return since, until


def page_number(raw: str | None) -> int:
    """A `?page=` number, 1 when missing or not a number."""
    text = (raw or "").strip()
    return max(1, min(int(text), 100_000)) if text.isdigit() else 1


# --- showing -------------------------------------------------------------------------------------


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


@bp.app_template_filter("mall_date")
def format_mall_date(moment: datetime | None) -> str:
    """An instant's business day on the mall's clock: "2026-11-25"."""
    if moment is None:
        return "—"
    return moment.astimezone(mall_time().tz).strftime("%Y-%m-%d")

"""Console forms: what a browser posts (strings, yuan, local times) turned into what the admin API's
schemas load, and their errors turned into Chinese messages beside the fields.

Minimal helpers for the coupons, campaigns and task-rule pages; a shared `forms.py` may replace them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma

from app.console.pages import bp
from app.errors import DomainError, in_chinese
from app.extensions import extensions

_INTEGER = re.compile(r"-?\d{1,12}")
_YUAN = re.compile(r"\d{1,9}(\.\d{1,2})?")
FORM_INVALID_MESSAGE = "提交的内容有误，请按提示修改"


class FormInvalid(Exception):
    """A form to show again: a message on top, and a message per field."""

    def __init__(
        self, errors: Mapping[str, str], message: str = FORM_INVALID_MESSAGE, status: int = 422
    ) -> None:
        super().__init__(message)
        self.message, self.errors, self.status = message, dict(errors), status

    @classmethod
    def from_domain_error(cls, error: DomainError) -> FormInvalid:
        # A chosen record that does not exist (404) is a wrong choice on the form.
        return cls(domain_error_fields(error), error.message, 422 if error.status == 404 else error.status)


def load_form(schema: ma.Schema, data: dict[str, Any], errors: Mapping[str, str] | None = None) -> Any:
    """`schema.load(data)`; the fields already refused while parsing the form (`errors`) keep their
    own message, and all of them are reported together."""
    found: dict[str, str] = {}
    try:
        loaded = schema.load(data)
    except ma.ValidationError as error:
        found = field_messages(error.messages)
    found.update(errors or {})
    if found:
        raise FormInvalid(found)
    return loaded


def field_messages(messages: Any) -> dict[str, str]:
    """marshmallow's error messages, one Chinese line per top-level field."""
    if not isinstance(messages, dict):
        return {"_schema": _joined(in_chinese(messages))}
    return {str(name): _joined(in_chinese(value)) for name, value in messages.items()}


def domain_error_fields(error: DomainError) -> dict[str, str]:
    """The per-field messages a service put in an error's details, if it named fields."""
    details = error.details
    if not isinstance(details, dict):
        return {}
    if isinstance(details.get("field"), str):  # {"field": ..., "problem": ...}: the message is about it
        return {details["field"]: error.message}
    return {str(name): _joined(value) for name, value in details.items() if isinstance(value, list)}


def _joined(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if isinstance(messages, dict):
        return "；".join(_joined(value) for value in messages.values())
    if isinstance(messages, list):
        return "；".join(_joined(value) for value in messages)
    return str(messages)


# --- parsing what a browser sends ---------------------------------------------------------------


def integer(raw: str | None) -> int | str | None:
    """A whole number, None when left empty; anything else stays a string for the schema to refuse."""
    text = (raw or "").strip()
    if not text:
        return None
    return int(text) if _INTEGER.fullmatch(text) else text


def fen_from_yuan(raw: str | None) -> int | None:
    """Yuan as typed (12, 12.5, 12.50) → integer fen; None when left empty; ValueError otherwise."""
    text = (raw or "").strip().removeprefix("¥")
    if not text:
        return None
    if not _YUAN.fullmatch(text):
        raise ValueError("金额应为数字，最多两位小数")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as exc:
        raise ValueError("金额应为数字，最多两位小数") from exc


def instant_from_local(raw: str | None, tz: ZoneInfo) -> str | None:
    """A `datetime-local` input (mall time) → an ISO instant with its offset, None when empty.
    What does not parse is passed on as typed, for the schema to refuse."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.isoformat()


def local_input(moment: datetime | None, tz: ZoneInfo) -> str:
    """An instant as a `datetime-local` input shows it, in mall time."""
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if moment else ""


def yuan_input(fen: int | None) -> str:
    """Fen as a yuan input shows it: 2000 → "20", 1250 → "12.50"."""
    if not fen:
        return ""
    whole, cents = divmod(fen, 100)
    return f"{whole}" if not cents else f"{whole}.{cents:02d}"


def page_number(raw: str | None) -> int:
    text = (raw or "").strip()
    return max(1, min(int(text), 100_000)) if text.isdigit() else 1


# --- showing -------------------------------------------------------------------------------------


@bp.app_template_filter("yuan")
def yuan(fen: int | None) -> str:
    """Integer fen as money: 2000 → ¥20.00."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


@bp.app_template_filter("mall_datetime")
def mall_datetime(moment: datetime | None) -> str:
    """An instant in the mall's timezone, to the minute."""
    return moment.astimezone(mall_tz()).strftime("%Y-%m-%d %H:%M") if moment else "—"


def mall_tz() -> ZoneInfo:
    return extensions().mall_tz

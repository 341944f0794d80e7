"""Reading console form and filter input through marshmallow schemas, with Chinese messages that a page
can show above the form it re-renders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import marshmallow as ma

from app.errors import DomainError, NotFound, ValidationFailed, in_chinese
from app.mall_time import MallTime


class FormInvalid(ValidationFailed):
    """Bad form input: the message names each field and what is wrong with it."""

    message = "填写有误"


def load_form(schema: ma.Schema, data: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """`data` validated by `schema` (unknown keys ignored); a FormInvalid listing the fields otherwise."""
    try:
        return dict(schema.load(data, unknown=ma.EXCLUDE))
    except ma.ValidationError as error:
        details = in_chinese(error.normalized_messages())
        raise FormInvalid(_describe(details, labels), details=details) from error


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


def form_status(error: DomainError) -> int:
    """The status of a form re-rendered with `error`: a record the form names that does not exist is
    bad input (422), not a missing page."""
    return 422 if isinstance(error, NotFound) else error.status


def explained(error: DomainError, labels: Mapping[str, str]) -> str:
    """What to tell the operator: a service's per-field validation details, by field label, when it
    gave them; else its message."""
    details = error.details
    given = isinstance(error, ValidationFailed) and not isinstance(error, FormInvalid)
    if given and isinstance(details, dict) and details and all(isinstance(v, list) for v in details.values()):
        return _describe(details, labels)
    return error.message


def day_bounds(
    at: MallTime, first: date | None, last: date | None
) -> tuple[datetime | None, datetime | None]:
    """The UTC instants from the start of business day `first` to the end of business day `last`."""
    since = at.start_of(first) if first else None
    until = at.start_of(last + timedelta(days=1)) if last else None
    return since, until


def _describe(details: Any, labels: Mapping[str, str]) -> str:
    if not isinstance(details, dict):
        return str(details)
    parts = []
    for field, problems in details.items():
        text = "，".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
        label = labels.get(field)
        parts.append(f"{label}：{text}" if label else text)
    return "；".join(parts) or FormInvalid.message

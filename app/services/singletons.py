"""Operator settings kept as a single row (id 1) that falls back to the model's defaults."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict

S = TypeVar("S")


def replace_settings(
    session: Session, model: type[S], values: dict[str, Any], *, operator_id: int | None
) -> S:
    """Set `values` on the settings row (created from the defaults the first time) under a row lock."""
    settings = session.get(model, 1, with_for_update=True)
    if settings is None:
        settings = model.with_defaults()  # type: ignore[attr-defined]
        session.add(settings)
    for name, value in values.items():
        setattr(settings, name, value)
    settings.updated_by_operator_id = operator_id  # type: ignore[attr-defined]
    try:
        session.flush()
    except IntegrityError as exc:  # another operator created the row at the same moment
        raise RetryableConflict() from exc
    return settings

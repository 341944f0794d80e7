"""Recording and reading the audit log. Callers record inside the transaction of the change they audit,
so a change and its audit row commit (or roll back) together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import insert_row
from app.models import AuditEvent

PAGE_SIZE = 50


def record(
    session: Session,
    *,
    operator_id: int | None,
    action: str,
    target_type: str,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AuditEvent:
    return insert_row(
        session,
        AuditEvent(
            operator_id=operator_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            detail=detail or {},
            client_ip=client_ip,
        ),
    )


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """field → [before, after] for the fields that differ: the `detail` of an update."""
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}


@dataclass(frozen=True)
class AuditQuery:
    operator_id: int | None = None
    action_prefix: str | None = None  # "member." matches every member action
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # keyset paging: newest first
    limit: int = PAGE_SIZE
    exclude_actions: Sequence[str] = field(default_factory=tuple)


def events(session: Session, query: AuditQuery) -> list[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(query.limit)
    if query.operator_id is not None:
        statement = statement.where(AuditEvent.operator_id == query.operator_id)
    if query.action_prefix:
        statement = statement.where(AuditEvent.action.startswith(query.action_prefix, autoescape=True))
    if query.target_type:
        statement = statement.where(AuditEvent.target_type == query.target_type)
    if query.target_id:
        statement = statement.where(AuditEvent.target_id == query.target_id)
    if query.since is not None:
        statement = statement.where(AuditEvent.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEvent.at < query.until)
    if query.before_id is not None:
        statement = statement.where(AuditEvent.id < query.before_id)
    if query.exclude_actions:
        statement = statement.where(AuditEvent.action.not_in(query.exclude_actions))
    return list(session.scalars(statement))

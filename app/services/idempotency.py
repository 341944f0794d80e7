"""Idempotency keys: the first response to a request sent with a key is kept, and a repeat of that
request with the same key gets it back instead of running the action again.

A key is claimed by INSERTing an in-progress row before the action runs (and committing it): of two
concurrent first requests, the unique (actor, request_key) lets one insert and the other learn that
the key is in progress. The response is written over the row when the action ends, or the row is
deleted if the response is not one to keep, so that a retry runs the action again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import insert_row
from app.errors import Conflict
from app.models import IdempotencyKey

# An in-progress row this old belongs to a request whose worker died before answering: a retry may
# take the key over. Longer than any request runs (their outside calls time out within seconds).
ABANDONED_AFTER = timedelta(minutes=5)


class IdempotencyKeyReused(Conflict):
    code, message = (
        "IDEMPOTENCY_KEY_REUSED",
        "该请求编号（Idempotency-Key）已用于另一个请求，请换一个新的编号",
    )


class IdempotencyKeyInProgress(Conflict):
    code, message = "IDEMPOTENCY_KEY_IN_PROGRESS", "相同的请求正在处理中，请稍后再试"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def claim(
    session: Session, actor: str, key: str, request_hash: str, *, at: datetime, ttl: timedelta
) -> int | StoredResponse:
    """The id of the in-progress row now holding `key` for this request (the caller commits it before
    running the action), or the response stored for the same request earlier.

    Raises IdempotencyKeyReused if the key was used for another request, IdempotencyKeyInProgress if
    the first request with it has not answered yet.
    """
    try:
        with session.begin_nested():
            row = insert_row(
                session,
                IdempotencyKey(
                    actor=actor,
                    request_key=key,
                    request_hash=request_hash,
                    created_at=at,
                    expires_at=at + ttl,
                ),
            )
        return row.id
    except IntegrityError:
        pass
    # An expired row the purge has not reached yet, or one abandoned mid-request, is taken over.
    taken_over = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.actor == actor,
            IdempotencyKey.request_key == key,
            or_(
                IdempotencyKey.expires_at <= at,
                and_(
                    IdempotencyKey.response_status.is_(None),
                    IdempotencyKey.created_at <= at - ABANDONED_AFTER,
                ),
            ),
        )
        .values(
            request_hash=request_hash,
            response_status=None,
            response_headers=None,
            response_body=None,
            created_at=at,
            expires_at=at + ttl,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    existing = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.request_key == key)
    ).one()
    if taken_over:
        return existing.id
    if existing.request_hash != request_hash:
        raise IdempotencyKeyReused()
    if existing.response_status is None or existing.response_body is None:
        raise IdempotencyKeyInProgress()
    headers = [(str(name), str(value)) for name, value in json.loads(existing.response_headers or "[]")]
    return StoredResponse(existing.response_status, headers, existing.response_body)


def complete(session: Session, record_id: int, response: StoredResponse) -> None:
    """Keeps the response of the request holding `record_id`, for its repeats."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == record_id)
        .values(
            response_status=response.status,
            response_headers=json.dumps(response.headers, ensure_ascii=False),
            response_body=response.body,
        )
        .execution_options(synchronize_session=False)
    )


def release(session: Session, record_id: int) -> None:
    """Frees the key of a request whose response is not kept: a repeat runs the action again."""
    session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.id == record_id, IdempotencyKey.response_status.is_(None))
        .execution_options(synchronize_session=False)
    )


def purge_expired(session: Session, *, at: datetime) -> int:
    """Forgets keys past their time to live; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= at))
    return int(getattr(result, "rowcount", 0) or 0)

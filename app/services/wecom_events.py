"""Callbacks from WeCom: recorded once when they arrive, acted on afterwards (at most once each)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.integrations.wecom_callbacks import CallbackEvent
from app.integrations.wecom_client import ExternalContactDetails
from app.models import WeComEvent
from app.services import advisors

# After this many failed attempts an event is left alone (its error stays for an operator to read).
MAX_ATTEMPTS = 5
ERROR_MAX_LENGTH = 500

ADD_CONTACT = "change_external_contact:add_external_contact"
EDIT_CONTACT = "change_external_contact:edit_external_contact"
CONTACT_REMOVED = ("change_external_contact:del_external_contact", "change_external_contact:del_follow_user")
# Events whose handling needs the contact as WeCom has it now (`externalcontact/get`).
NEEDS_CONTACT_DETAILS = (ADD_CONTACT, EDIT_CONTACT)


def record_event(session: Session, event: CallbackEvent, *, at: datetime) -> tuple[WeComEvent, bool]:
    """Store the callback; a retry of one already stored returns that one, and False."""
    existing = _event_by_key(session, event.key)
    if existing is not None:
        return existing, False
    row = WeComEvent(
        event_key=event.key, event_type=event.event_type[:64], payload=event.fields, received_at=at
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # WeCom's retry raced the original into a second worker.
        existing = _event_by_key(session, event.key)
        if existing is None:
            raise
        return existing, False
    return row, True


def _event_by_key(session: Session, key: str) -> WeComEvent | None:
    return session.scalars(select(WeComEvent).where(WeComEvent.event_key == key)).one_or_none()


def pending_event_ids(session: Session, *, after_id: int, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(WeComEvent.id)
            .where(
                WeComEvent.processed_at.is_(None),
                WeComEvent.attempts < MAX_ATTEMPTS,
                WeComEvent.id > after_id,
            )
            .order_by(WeComEvent.id)
            .limit(limit)
        )
    )


def needs_contact_details(event: WeComEvent) -> bool:
    return event.event_type in NEEDS_CONTACT_DETAILS


def apply_event(
    session: Session, event_id: int, *, details: ExternalContactDetails | None, at: datetime
) -> bool:
    """Act on a recorded event, once: the row lock makes a second worker wait and then see it done.

    `details` is the external contact fetched from WeCom for add/edit events (None if WeCom no
    longer knows them: the contact was removed meanwhile, and a del event follows).
    Returns False if the event was already processed.
    """
    event = session.get(WeComEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None or event.processed_at is not None:
        return False
    userid, external_userid = (
        str(event.payload.get("UserID", "")),
        str(event.payload.get("ExternalUserID", "")),
    )
    if event.event_type in NEEDS_CONTACT_DETAILS and details is not None:
        advisors.record_contact(session, userid, details, at=at)
    elif event.event_type in CONTACT_REMOVED:
        advisors.mark_contact_removed(session, userid, external_userid, at=at)
    # Other events (template_card_event, ...) are kept for the slices that act on them.
    event.processed_at = at
    event.attempts += 1
    event.error = None
    session.flush()
    return True


def record_failure(session: Session, event_id: int, error: str) -> None:
    event = session.get(WeComEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None or event.processed_at is not None:
        return
    event.attempts += 1
    event.error = error[:ERROR_MAX_LENGTH]
    session.flush()

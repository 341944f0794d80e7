"""Acting on recorded WeCom callbacks: right after the callback is answered, and every minute as
the fallback for anything that failed or was cut short (app.jobs)."""

from __future__ import annotations

import logging
from functools import partial

from flask import Flask

from app.db import run_transaction, transaction, utcnow
from app.extensions import extensions
from app.models import WeComEvent
from app.services import advisors, wecom_events

log = logging.getLogger(__name__)

_BATCH = 100


def process_event(app: Flask, event_id: int) -> bool:
    """Act on one event unless already done; failures are recorded on it for the next run."""
    with app.app_context():
        try:
            with transaction() as session:
                event = session.get(WeComEvent, event_id)
                if event is None or event.processed_at is not None:
                    return False
                fetch = wecom_events.needs_contact_details(event)
                external_userid = str(event.payload.get("ExternalUserID", ""))
            # Outside any transaction: WeCom may be slow, and no row lock should wait on it.
            details = extensions().wecom.external_contact(external_userid) if fetch else None
            return run_transaction(
                partial(wecom_events.apply_event, event_id=event_id, details=details, at=utcnow())
            )
        except Exception as error:  # every failure is retried by the job, up to MAX_ATTEMPTS
            log.warning("WeCom event %s failed: %s", event_id, error)
            run_transaction(partial(wecom_events.record_failure, event_id=event_id, error=repr(error)))
            return False


def process_pending_events(app: Flask) -> str:
    """Every event not yet processed (and not given up on), oldest first; then contacts whose
    shopper has signed up since."""
    processed = failed = last_id = 0
    while True:
        with app.app_context(), transaction() as session:
            pending = wecom_events.pending_event_ids(session, after_id=last_id, limit=_BATCH)
        if not pending:
            break
        for event_id in pending:
            last_id = event_id
            if process_event(app, event_id):
                processed += 1
            else:
                failed += 1
    with app.app_context():
        matched = run_transaction(partial(advisors.match_pending_contacts, at=utcnow()))
    return f"WeCom events: {processed} processed, {failed} failed or skipped; {matched} contacts matched"

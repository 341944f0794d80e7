"""Re-encrypting members' phones under the current key, after a key rotation (`flask keys rotate`).

The work is split into batches in member id order, each its own unit of work, so a stopped rotation
loses at most one batch and a new run simply carries on: it only ever looks at members whose phone is
not yet under the current key, which also makes a finished rotation a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.models import Member
from app.pii import UNVERSIONED_KEY_ID, UNVERSIONED_LENGTH, PhoneVault

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class RotationBatch:
    rotated: int
    # Members whose phone changed between reading and re-encrypting it (sealed afresh by their writer).
    skipped: int
    # Where the next batch starts (exclusive); None once no member after it needs re-encrypting.
    last_member_id: int | None


def _not_under_key(key_id: int) -> ColumnElement[bool]:
    """Ciphertexts sealed by any key but `key_id`, read from their first byte (or their length, for
    those from before key ids, which are key 1's), so the database finds them without the keys."""
    ciphertext = Member.phone_ciphertext
    unversioned = func.length(ciphertext) == UNVERSIONED_LENGTH
    other_id = func.substr(ciphertext, 1, 1) != bytes([key_id])
    # A deleted member's phone is erased (app.services.personal_data): nothing to re-encrypt.
    present = Member.deleted_at.is_(None)
    if key_id == UNVERSIONED_KEY_ID:
        return and_(present, ~unversioned, other_id)
    return and_(present, or_(unversioned, other_id))


def phones_to_rotate(session: Session, vault: PhoneVault) -> int:
    """How many members' phones are not under the vault's current key."""
    return (
        session.scalar(select(func.count()).select_from(Member).where(_not_under_key(vault.current_key_id)))
        or 0
    )


def rotate_batch(session: Session, vault: PhoneVault, *, after_id: int, batch_size: int) -> RotationBatch:
    """Re-encrypt, under the current key, the phones of up to `batch_size` members with an id above
    `after_id` that are under another key. A phone written meanwhile is left alone (the update is
    conditional on the ciphertext read), as its writer sealed it under the current key. The blind
    index is untouched: its key does not rotate. Raises `PhoneKeyError` before changing anything
    if a phone is under a key the vault lacks (or holds a different key under that id)."""
    rows = session.execute(
        select(Member.id, Member.phone_ciphertext)
        .where(Member.id > after_id, _not_under_key(vault.current_key_id))
        .order_by(Member.id)
        .limit(batch_size)
    ).all()
    if not rows:
        return RotationBatch(0, 0, None)
    resealed = [(member_id, old, vault.reseal(old)) for member_id, old in rows]
    rotated = 0
    for member_id, old, new in resealed:
        rotated += session.execute(
            update(Member)
            .where(Member.id == member_id, Member.phone_ciphertext == old)
            .values(phone_ciphertext=new)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    session.flush()
    return RotationBatch(rotated, len(rows) - rotated, rows[-1][0])

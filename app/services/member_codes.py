"""Dynamic member codes (会员码): time-stepped, HMAC-signed, each usable once.

A code carries the member id, the time step it was issued in and a random nonce,
signed with MEMBER_CODE_SECRET. It is valid in its own step and the next one,
so a screenshot is useless a minute or two later; the unique digest of each
scanned code makes a replay within that window fail too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import Member, UsedMemberCode

_PAYLOAD = struct.Struct(">IIi")  # member id, time step, nonce
_TAG_BYTES = 8
_CODE_BYTES = _PAYLOAD.size + _TAG_BYTES  # 20 bytes -> 32 base32 characters, no padding


class MemberCodeInvalid(DomainError):
    code, status, message = "MEMBER_CODE_INVALID", 400, "会员码无效，请让顾客重新出示"


class MemberCodeExpired(DomainError):
    code, status, message = "MEMBER_CODE_EXPIRED", 400, "会员码已过期，请让顾客刷新后重新出示"


class MemberCodeUsed(DomainError):
    code, status, message = "MEMBER_CODE_USED", 409, "会员码已被使用，请让顾客刷新后重新出示"


@dataclass(frozen=True)
class IssuedMemberCode:
    code: str
    expires_in: int


@dataclass(frozen=True)
class MemberCodeSigner:
    secret: str
    step_seconds: int

    def step_at(self, at: datetime) -> int:
        return int(at.timestamp()) // self.step_seconds

    def issue(self, member_id: int, at: datetime) -> IssuedMemberCode:
        step = self.step_at(at)
        nonce = struct.unpack(">i", os.urandom(4))[0]
        payload = _PAYLOAD.pack(member_id, step, nonce)
        code = base64.b32encode(payload + self._tag(payload)).decode()
        valid_until = (step + 2) * self.step_seconds
        return IssuedMemberCode(code=code, expires_in=valid_until - int(at.timestamp()))

    def read(self, code: str, at: datetime) -> tuple[int, int]:
        """(member id, step) of a genuine, unexpired code."""
        member_id, step = self._open(code)
        if step not in (self.step_at(at), self.step_at(at) - 1):
            raise MemberCodeExpired()
        return member_id, step

    def member_id_of(self, code: str) -> int:
        """The member of a genuine code, expired or not (to recognise a retried request)."""
        return self._open(code)[0]

    def _open(self, code: str) -> tuple[int, int]:
        try:
            raw = base64.b32decode(code.strip().upper())
        except (binascii.Error, ValueError) as exc:
            raise MemberCodeInvalid() from exc
        if len(raw) != _CODE_BYTES:
            raise MemberCodeInvalid()
        payload, tag = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise MemberCodeInvalid()
        member_id, step, _nonce = _PAYLOAD.unpack(payload)
        return member_id, step

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self.secret.encode(), payload, hashlib.sha256).digest()[:_TAG_BYTES]


def redeem_member_code(
    session: Session, signer: MemberCodeSigner, code: str, *, staff_id: int | None, at: datetime
) -> Member:
    """The member behind a scanned code, which is spent: a second scan raises MemberCodeUsed."""
    member_id, step = signer.read(code, at)
    # Locked first, like every write that references a member (see app.services.points).
    member = session.get(Member, member_id, with_for_update=True)
    # A merged member's code (shown before the merge) is void: the shopper's app shows the survivor's.
    if member is None or member.merged_into_member_id is not None or member.deleted_at is not None:
        raise MemberCodeInvalid()
    try:
        with session.begin_nested():
            session.add(
                UsedMemberCode(
                    code_digest=hashlib.sha256(code.strip().upper().encode()).hexdigest(),
                    member_id=member_id,
                    used_by_staff_id=staff_id,
                    expires_at=datetime.fromtimestamp((step + 2) * signer.step_seconds, UTC),
                )
            )
    except IntegrityError as exc:
        raise MemberCodeUsed() from exc
    return member


def purge_used_codes(session: Session, at: datetime) -> int:
    """Forget spent codes that would be rejected as expired anyway."""
    result = session.execute(
        delete(UsedMemberCode).where(UsedMemberCode.expires_at < at - timedelta(minutes=5))
    )
    return int(getattr(result, "rowcount", 0) or 0)

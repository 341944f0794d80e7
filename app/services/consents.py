"""Consent to the privacy policy (PIPL): which version each member agreed to, and when.

Every agreement is a MemberConsent row, never updated: the evidence of what the member saw. The
version a member has accepted is the one of their latest row. When the mall publishes a new version
(config PRIVACY_POLICY_VERSION), members who accepted an older one are asked to consent again: reads
of their own data still work, but the actions that collect new data or use it in a new way
(`member_id_for_action`) are refused until they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.errors import AuthInvalid, DomainError
from app.models import MemberConsent, WeChatAccount
from app.services.members import ConsentOutdated, ConsentRequired, MemberNotRegistered


class ConsentRenewalRequired(DomainError):
    code, status, message = (
        "CONSENT_RENEWAL_REQUIRED",
        403,
        "隐私政策已更新，请先阅读并同意最新版本的会员隐私政策，再继续操作",
    )


@dataclass(frozen=True)
class ConsentStatus:
    required: bool
    current_version: str
    accepted_version: str | None
    accepted_at: datetime | None


_LATEST_CONSENT = (
    select(MemberConsent.policy_version, MemberConsent.granted_at)
    .where(MemberConsent.member_id == bindparam("member_id"))
    .order_by(MemberConsent.id.desc())
    .limit(1)
)


def status(session: Session, member_id: int, policy_version: str) -> ConsentStatus:
    """Whether the member must consent again: their latest consent is not to `policy_version`."""
    row = session.connection().execute(_LATEST_CONSENT, {"member_id": member_id}).first()
    accepted = row.policy_version if row is not None else None
    return ConsentStatus(
        required=accepted != policy_version,
        current_version=policy_version,
        accepted_version=accepted,
        accepted_at=row.granted_at if row is not None else None,
    )


def record(
    session: Session,
    member_id: int,
    wechat_account_id: int,
    consented_version: str | None,
    policy_version: str,
    *,
    client_ip: str | None,
) -> MemberConsent:
    """Record the member's agreement to the current policy version (what, when, from which IP).

    Only the current version can be agreed to (ConsentRequired / ConsentOutdated otherwise, 422).
    Agreeing again to a version already accepted adds another row: each agreement is evidence."""
    if not consented_version:
        raise ConsentRequired()
    if consented_version != policy_version:
        raise ConsentOutdated(
            f"您同意的隐私政策版本（{consented_version}）不是最新版本（{policy_version}），"
            "请阅读并同意最新版本",
            details={"current_version": policy_version},
        )
    consent = MemberConsent(
        member_id=member_id,
        wechat_account_id=wechat_account_id,
        policy_version=policy_version,
        client_ip=client_ip,
    )
    session.add(consent)
    session.flush()
    return consent


_ACCOUNT_AND_CONSENT = select(
    WeChatAccount.member_id,
    WeChatAccount.revoked_at,
    (
        select(MemberConsent.policy_version)
        .where(MemberConsent.member_id == WeChatAccount.member_id)
        .order_by(MemberConsent.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("accepted_version")
    ),
).where(WeChatAccount.id == bindparam("account_id"))


def member_id_for_action(session: Session, wechat_account_id: int, policy_version: str) -> int:
    """`members.member_id_of_account` for an action that needs the current consent, in one query:
    raises ConsentRenewalRequired (403) while the member's latest consent is to an older version."""
    row = session.connection().execute(_ACCOUNT_AND_CONSENT, {"account_id": wechat_account_id}).first()
    if row is None or row.revoked_at is not None:
        raise AuthInvalid()
    if row.member_id is None:
        raise MemberNotRegistered()
    if row.accepted_version != policy_version:
        raise ConsentRenewalRequired(
            details={"current_version": policy_version, "accepted_version": row.accepted_version}
        )
    return int(row.member_id)

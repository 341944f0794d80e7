"""Signing shoppers up and reading their member card."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, load_only

from app.db import RetryableConflict, utcnow
from app.errors import AuthInvalid, DomainError, NotFound, ValidationFailed
from app.integrations.wechat_client import MiniProgramClient, WeChatCodeRejected, WeChatSession
from app.mall_time import MallTime
from app.models import (
    AssignmentReason,
    Member,
    MemberConsent,
    MemberSource,
    QrScene,
    SceneKind,
    Staff,
    Tier,
    WeChatAccount,
)
from app.pii import InvalidPhone, PhoneVault, normalize_phone
from app.services import advisors, points, rewards, tiers


class WeChatLoginCodeInvalid(DomainError):
    code, status, message = "WECHAT_CODE_INVALID", 400, "微信登录凭证无效或已过期，请重新进入小程序"


class PhoneCodeInvalid(DomainError):
    code, status, message = "PHONE_CODE_INVALID", 400, "手机号授权已失效，请重新授权"


class PhoneNotSupported(DomainError):
    code, status, message = "PHONE_NOT_SUPPORTED", 422, "暂不支持该手机号注册，请使用中国大陆手机号"


class ConsentRequired(DomainError):
    code, status, message = "CONSENT_REQUIRED", 422, "请先阅读并同意会员隐私政策"


class ConsentOutdated(DomainError):
    code, status, message = "CONSENT_OUTDATED", 422, "隐私政策已更新，请阅读并同意最新版本"


class MemberNotRegistered(DomainError):
    code, status, message = "MEMBER_NOT_REGISTERED", 404, "您还不是会员，请先注册"


@dataclass(frozen=True)
class SignUp:
    consent_version: str
    scene: str | None = None
    birthday: date | None = None
    nickname: str | None = None
    client_ip: str | None = None


@dataclass(frozen=True)
class SignUpResult:
    member: Member
    created: bool


def exchange_login_code(wechat: MiniProgramClient, js_code: str) -> WeChatSession:
    try:
        return wechat.code_to_session(js_code)
    except WeChatCodeRejected as exc:
        raise WeChatLoginCodeInvalid() from exc


def record_login(session: Session, appid: str, wechat_session: WeChatSession) -> WeChatAccount:
    """The account for this openid, created on first login.

    Raises RetryableConflict when a concurrent first login of the same openid wins.
    """
    account = session.scalars(
        select(WeChatAccount).where(
            WeChatAccount.appid == appid, WeChatAccount.openid == wechat_session.openid
        )
    ).one_or_none()
    if account is None:
        account = WeChatAccount(appid=appid, openid=wechat_session.openid)
        _insert(session, account)
    account.unionid = wechat_session.unionid or account.unionid
    account.last_login_at = utcnow()
    session.flush()
    return account


def accepted_policy_version(consent_version: str | None, policy_version: str) -> str:
    """The policy version the shopper agreed to, which must be the current one."""
    if not consent_version:
        raise ConsentRequired()
    if consent_version != policy_version:
        raise ConsentOutdated(details={"current_version": policy_version})
    return consent_version


def member_of_account(session: Session, wechat_account_id: int) -> Member | None:
    """The member this WeChat account belongs to, if it has signed up."""
    row = session.execute(
        select(WeChatAccount.member_id, WeChatAccount.revoked_at).where(WeChatAccount.id == wechat_account_id)
    ).first()
    if row is not None and row.revoked_at is not None:
        raise AuthInvalid()
    return member_profile(session, row.member_id) if row is not None and row.member_id is not None else None


def phone_from_code(wechat: MiniProgramClient, phone_code: str) -> str:
    """The mainland mobile number behind a phone-number button code (single use at WeChat)."""
    try:
        phone = wechat.get_phone_number(phone_code)
    except WeChatCodeRejected as exc:
        raise PhoneCodeInvalid() from exc
    try:
        return normalize_phone(phone)
    except InvalidPhone as exc:
        raise PhoneNotSupported() from exc


def register(
    session: Session, wechat_account_id: int, phone: str, request: SignUp, *, vault: PhoneVault, at: MallTime
) -> SignUpResult:
    """Make the WeChat account a member, exactly once.

    Repeating it returns the same member. A phone we already know (POS, import)
    links this account to that member instead of creating a second one. A new
    member gets the welcome (and referral) points. Raises
    RetryableConflict when a concurrent sign-up with the same phone wins the insert:
    run again, it joins that member.
    """
    # Locking the account serialises a double-tapped sign-up of the same shopper.
    account = session.get(WeChatAccount, wechat_account_id, with_for_update=True)
    if account is None or account.revoked_at is not None:
        raise AuthInvalid()
    if account.member_id is not None:
        return SignUpResult(member_profile(session, account.member_id), created=False)

    protected = vault.protect(phone)
    member = session.scalars(select(Member).where(Member.phone_index == protected.blind_index)).one_or_none()
    if member is not None and member.merged_into_member_id is not None:
        # The phone of a member merged into another: that shopper is the survivor now.
        member = session.get(Member, member.merged_into_member_id)
    created = member is None
    if member is None:
        member = Member(
            phone_ciphertext=protected.ciphertext,
            phone_index=protected.blind_index,
            phone_masked=protected.masked,
            tier_id=_entry_tier(session).id,
            source=MemberSource.WECHAT,
        )
        _insert(session, member)

    _fill_profile(member, request)
    advisor_before = member.advisor_id
    _attribute_to_scene(member, _scene_by_value(session, request.scene))
    account.member_id = member.id
    session.add(
        MemberConsent(
            member_id=member.id,
            wechat_account_id=account.id,
            policy_version=request.consent_version,
            client_ip=request.client_ip,
        )
    )
    session.flush()
    if member.advisor_id is not None and member.advisor_id != advisor_before:
        advisors.record_assignment(
            session, member.id, member.advisor_id, AssignmentReason.SIGNUP_SCENE, at=at.now
        )
    # The shopper may have added an advisor on WeCom before joining: that contact waits for them.
    advisors.match_contacts_of_member(session, member.id, account.unionid, at=at.now)
    if created:
        rewards.reward_sign_up(session, member, at=at, settings=points.points_settings(session))
    return SignUpResult(member_profile(session, member.id), created=created)


def _insert(session: Session, row: Member | WeChatAccount) -> None:
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc


_MEMBER_OF_ACCOUNT = select(WeChatAccount.member_id, WeChatAccount.revoked_at).where(
    WeChatAccount.id == bindparam("account_id")
)


def member_id_of_account(session: Session, wechat_account_id: int) -> int:
    """The member behind a shopper token's account. A revoked account (its member deleted the
    account) or one that no longer exists is an invalid token (AuthInvalid, 401)."""
    row = session.connection().execute(_MEMBER_OF_ACCOUNT, {"account_id": wechat_account_id}).first()
    if row is None or row.revoked_at is not None:
        raise AuthInvalid()
    if row.member_id is None:
        raise MemberNotRegistered()
    return int(row.member_id)


@dataclass(frozen=True)
class MemberCard:
    """What the counter sees of a member: the row it already holds and its (cached) tier; no joins."""

    member: Member
    tier: Tier


def member_id_by_phone(session: Session, vault: PhoneVault, phone: str) -> int | None:
    """The member with this phone, in any usual spelling (+86, spaces, dashes, full-width digits),
    found through the blind index; a merged member stands for the member it was merged into.
    None for an unknown or invalid phone."""
    try:
        index = vault.blind_index(phone)
    except InvalidPhone:
        return None
    return session.scalar(
        select(func.coalesce(Member.merged_into_member_id, Member.id)).where(Member.phone_index == index)
    )


def member_card(session: Session, member: Member) -> MemberCard:
    return MemberCard(member, tiers.tier_of(session, member.tier_id))


def member_profile(session: Session, member_id: int) -> Member:
    """A member with what the member card shows (tier, advisor, sign-up scene) loaded."""
    member = session.scalars(
        select(Member)
        .where(Member.id == member_id)
        .options(joinedload(Member.tier), joinedload(Member.advisor), joinedload(Member.signup_scene))
        .execution_options(populate_existing=True)
    ).one_or_none()
    if member is None:
        raise NotFound("会员不存在")
    return member


def shown_profile(session: Session, member_id: int) -> Member:
    """`member_profile` reading only what the member card shows: the shopper home screen asks for it
    on every visit, and PyMySQL spends ~20 µs describing each column of a result (the whole member
    with its tier, advisor and scene is over 40)."""
    member = session.scalars(
        select(Member)
        .where(Member.id == member_id)
        .options(
            load_only(
                Member.phone_masked,
                Member.nickname,
                Member.birthday,
                Member.points_balance,
                Member.joined_at,
                Member.tier_id,
                Member.advisor_id,
                Member.signup_scene_id,
            ),
            joinedload(Member.tier).load_only(Tier.code, Tier.name),
            joinedload(Member.advisor).load_only(Staff.wecom_userid, Staff.name),
            joinedload(Member.signup_scene).load_only(QrScene.kind, QrScene.name),
        )
    ).one_or_none()
    if member is None:
        raise NotFound("会员不存在")
    return member


def _entry_tier(session: Session) -> Tier:
    ladder = tiers.tiers_by_rank(session)
    if not ladder:
        raise ValidationFailed("会员等级尚未配置，请联系商场运营")
    return ladder[0]


def _scene_by_value(session: Session, scene: str | None) -> QrScene | None:
    # An unknown scene (an old poster, a typo) must not stop anyone from joining.
    if not scene:
        return None
    return session.scalars(select(QrScene).where(QrScene.scene == scene)).one_or_none()


def _fill_profile(member: Member, request: SignUp) -> None:
    if request.birthday and member.birthday is None:
        member.birthday = request.birthday
    if request.nickname and not member.nickname:
        member.nickname = request.nickname


def _attribute_to_scene(member: Member, scene: QrScene | None) -> None:
    """First scene wins: a member imported earlier keeps any attribution it already has."""
    if scene is None:
        return
    if member.signup_scene_id is None:
        member.signup_scene_id = scene.id
    if scene.kind is SceneKind.ADVISOR and member.advisor_id is None:
        member.advisor_id = scene.advisor_id
    if (
        scene.kind is SceneKind.REFERRAL
        and member.referred_by_member_id is None
        and scene.referrer_member_id != member.id
    ):
        member.referred_by_member_id = scene.referrer_member_id

"""Who may log in: WeCom staff by their WeCom identity, operators by password."""

from __future__ import annotations

from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import utcnow
from app.errors import DomainError
from app.integrations.wechat_client import WeChatCodeRejected
from app.integrations.wecom_client import WeComClient
from app.models import Operator, Staff
from app.ratelimit import LoginThrottle


@cache
def _dummy_hash() -> str:
    """Compared against when the username is unknown, so both paths cost the same time. Made on first
    use: a scrypt hash takes ~0.3 s, which every process's start-up (each CLI command) used to pay."""
    return generate_password_hash("not-a-real-password")


class WeComCodeInvalid(DomainError):
    code, status, message = "WECOM_CODE_INVALID", 400, "企业微信授权已失效，请重新进入"


class StaffNotRegistered(DomainError):
    code, status, message = "STAFF_NOT_REGISTERED", 403, "您尚未开通商场员工权限，请联系商场运营"


class LoginFailed(DomainError):
    code, status, message = "LOGIN_FAILED", 401, "用户名或密码错误"


class LoginLocked(DomainError):
    code, status, message = "LOGIN_LOCKED", 429, "登录失败次数过多，请稍后再试"


def staff_from_wecom_code(session: Session, wecom: WeComClient, code: str) -> Staff:
    try:
        userid = wecom.userid_from_oauth_code(code)
    except WeChatCodeRejected as exc:
        raise WeComCodeInvalid() from exc
    staff = (
        session.scalars(select(Staff).where(Staff.wecom_userid == userid)).one_or_none() if userid else None
    )
    if staff is None or not staff.is_active:
        raise StaffNotRegistered()
    return staff


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def authenticate_operator(
    session: Session, throttle: LoginThrottle, username: str, password: str, *, client_ip: str
) -> Operator:
    """The operator for these credentials; repeated failures lock the account and the address out."""
    account = username.lower()
    if throttle.is_blocked(account, client_ip):
        raise LoginLocked()
    operator = session.scalars(select(Operator).where(Operator.username == username)).one_or_none()
    password_ok = check_password_hash(operator.password_hash if operator else _dummy_hash(), password)
    if operator is None or not operator.is_active or not password_ok:
        throttle.record_failure(account, client_ip)
        raise LoginFailed()
    throttle.record_success(account)
    operator.last_login_at = utcnow()
    session.flush()
    return operator

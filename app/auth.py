"""Bearer tokens for the three kinds of caller, and the decorators that demand them.

A token is signed for one audience (`mp`, `staff`, `admin`), so a shopper's token
never opens a staff endpoint. Staff and operators are re-read on every request:
deactivating someone or changing their role takes effect at once.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, TypeVar, cast

from flask import g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app import idempotency, reference_cache
from app.db import opening_transaction, seed_request_sessions, transaction
from app.errors import AuthExpired, AuthInvalid, AuthRequired, Forbidden, declare_raises
from app.extensions import settings
from app.models import Operator, OperatorRole, Staff, StaffRole

F = TypeVar("F", bound=Callable[..., Any])


class Audience(enum.StrEnum):
    MINIPROGRAM = "mp"
    STAFF = "staff"
    ADMIN = "admin"


def _serializer(audience: Audience) -> URLSafeTimedSerializer:
    return _serializer_for(settings().SECRET_KEY, audience)


@lru_cache(maxsize=16)
def _serializer_for(secret_key: str, audience: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"mallmember-auth-{audience}")


def issue_token(audience: Audience, subject_id: int) -> tuple[str, int]:
    """A signed token for `subject_id`, and its lifetime in seconds."""
    return _serializer(audience).dumps({"sub": subject_id}), settings().AUTH_TOKEN_TTL_SECONDS


def _subject_from_request(audience: Audience) -> int:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired()
    try:
        payload = _serializer(audience).loads(token.strip(), max_age=settings().AUTH_TOKEN_TTL_SECONDS)
    except SignatureExpired as exc:
        raise AuthExpired() from exc
    except BadSignature as exc:
        raise AuthInvalid() from exc
    subject = payload.get("sub") if isinstance(payload, dict) else None
    if not isinstance(subject, int):
        raise AuthInvalid()
    return subject


_BEARER_ERRORS = (AuthRequired, AuthInvalid, AuthExpired)


def wechat_account_required(view: F) -> F:
    """Shopper endpoints: sets the caller's WeChat account id (they may not be a member yet)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.wechat_account_id = _subject_from_request(Audience.MINIPROGRAM)
        replayed = idempotency.authenticated(f"mp:{g.wechat_account_id}")
        return replayed if replayed is not None else view(*args, **kwargs)

    return declare_raises(cast(F, wrapper), *_BEARER_ERRORS)


def current_wechat_account_id() -> int:
    return cast(int, g.wechat_account_id)


Caller = TypeVar("Caller", Staff, Operator)


# Built once: they run on every staff and operator request.
_CALLER_BY_ID = {
    model: select(model).where(model.id == bindparam("subject_id")) for model in (Staff, Operator)
}


def _active_caller(model: type[Caller], audience: Audience) -> Caller:
    """The caller's row, from this process's copy while the staff version holds (so a deactivation
    still applies at once); the versions read here serve the request's unit of work too."""
    subject_id = _subject_from_request(audience)

    def load(session: Session) -> Caller | None:
        found = session.scalars(_CALLER_BY_ID[model], {"subject_id": subject_id}).one_or_none()
        return cast(Caller | None, found)

    with opening_transaction() as session:
        caller = reference_cache.cached(
            session, f"{model.__tablename__}:{subject_id}", reference_cache.STAFF, load
        )
        seed_request_sessions(reference_cache.versions_read(session))
    if caller is None or not caller.is_active:
        raise AuthInvalid()
    return caller


def staff_required(*roles: StaffRole) -> Callable[[F], F]:
    """WeCom staff endpoints, optionally limited to some roles."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            staff = _active_caller(Staff, Audience.STAFF)
            if roles and staff.role not in roles:
                raise Forbidden("当前岗位无权执行此操作")
            g.current_staff = staff
            replayed = idempotency.authenticated(f"staff:{staff.id}")
            return replayed if replayed is not None else view(*args, **kwargs)

        return declare_raises(cast(F, wrapper), *_BEARER_ERRORS, *((Forbidden,) if roles else ()))

    return decorator


def current_staff() -> Staff:
    return cast(Staff, g.current_staff)


# The JSON admin API has no per-endpoint roles yet: admins use all of it, auditors may only read, and
# the roles scoped to part of the program (marketing, store managers) work in the console only.
_API_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def operator_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        operator = _active_caller(Operator, Audience.ADMIN)
        if operator.role == OperatorRole.AUDITOR and request.method not in _API_READ_METHODS:
            raise Forbidden("审计员为只读角色，不能修改数据")
        if operator.role not in (OperatorRole.ADMIN, OperatorRole.AUDITOR):
            raise Forbidden("当前角色请在运营后台页面操作")
        g.current_operator = operator
        return view(*args, **kwargs)

    return declare_raises(cast(F, wrapper), *_BEARER_ERRORS, Forbidden)


def current_operator() -> Operator:
    return cast(Operator, g.current_operator)


BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


# WeCom pages (advisor H5, merchant assistant): a signed cookie instead of a bearer header, carrying
# the staff id and the CSRF token that every form on those pages must send back.

PAGE_COOKIE = "mm_staff_page"


@dataclass(frozen=True)
class PageSession:
    staff_id: int
    csrf_token: str


def _page_serializer() -> URLSafeTimedSerializer:
    return _serializer_for(settings().SECRET_KEY, "wecom-page")


def issue_page_session(staff_id: int) -> str:
    """The cookie value signing a staff member in to the WeCom pages, with a fresh CSRF token."""
    return _page_serializer().dumps({"sub": staff_id, "csrf": secrets.token_urlsafe(24)})


def read_page_session(cookie: str | None) -> PageSession | None:
    """The page session in `cookie`, or None if missing, forged or older than the page session TTL."""
    if not cookie:
        return None
    try:
        payload = _page_serializer().loads(cookie, max_age=settings().WECOM_PAGE_SESSION_SECONDS)
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(payload, dict):
        return None
    staff_id, csrf = payload.get("sub"), payload.get("csrf")
    if not isinstance(staff_id, int) or not isinstance(csrf, str) or not csrf:
        return None
    return PageSession(staff_id, csrf)


def active_staff(staff_id: int) -> Staff | None:
    """The staff member, if still active (re-read on every page, so a deactivation applies at once)."""
    with transaction() as session:
        staff = session.get(Staff, staff_id)
        return staff if staff is not None and staff.is_active else None


# Operator console pages: the same kind of signed cookie, for an operator (or for nobody yet: the
# login form needs a CSRF token before anyone has signed in).

CONSOLE_COOKIE = "mm_console"


@dataclass(frozen=True)
class ConsoleSession:
    operator_id: int | None
    csrf_token: str


def _console_serializer() -> URLSafeTimedSerializer:
    return _serializer_for(settings().SECRET_KEY, "console-page")


def issue_console_session(operator_id: int | None) -> tuple[str, ConsoleSession]:
    """The cookie value for a console visitor (signed in if `operator_id`) with a fresh CSRF token,
    and the session it holds."""
    page_session = ConsoleSession(operator_id, secrets.token_urlsafe(24))
    cookie = _console_serializer().dumps({"sub": operator_id, "csrf": page_session.csrf_token})
    return cookie, page_session


def read_console_session(cookie: str | None) -> ConsoleSession | None:
    """The console session in `cookie`, or None if missing, forged or older than a token's lifetime."""
    if not cookie:
        return None
    try:
        payload = _console_serializer().loads(cookie, max_age=settings().AUTH_TOKEN_TTL_SECONDS)
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    operator_id, csrf = payload.get("sub"), payload.get("csrf")
    if not (operator_id is None or isinstance(operator_id, int)) or not isinstance(csrf, str) or not csrf:
        return None
    return ConsoleSession(operator_id, csrf)


def active_operator(operator_id: int) -> Operator | None:
    """The operator, if still active (re-read on every page, so a deactivation or new role applies)."""
    with transaction() as session:
        operator = session.get(Operator, operator_id)
        return operator if operator is not None and operator.is_active else None

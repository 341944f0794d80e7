"""What the WeCom pages (advisor H5, merchant assistant) share: OAuth sign-in into a signed cookie,
the decorator that demands it, CSRF checks on forms, and Chinese error pages instead of JSON."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.auth import PAGE_COOKIE, PageSession, active_staff, issue_page_session, read_page_session
from app.db import transaction
from app.errors import DomainError, Forbidden
from app.extensions import extensions, settings
from app.models import Staff, StaffRole
from app.services import advisor_members, authentication

F = TypeVar("F", bound=Callable[..., Any])

MERCHANT_PAGE_ROLES = (StaffRole.STORE_STAFF, StaffRole.MANAGER)


class CsrfRejected(Forbidden):
    code, message = "CSRF_REJECTED", "页面已过期，请刷新后重试"


class MerchantOnly(Forbidden):
    code, message = "MERCHANT_ONLY", "商户助手仅限门店员工和店长使用"


def error_page(error: DomainError) -> tuple[str, int]:
    return render_template("wecom/error.html", message=error.message, code=error.code), error.status


def http_error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    message = "页面不存在" if status == 404 else "请求有误，请返回重试"
    return render_template("wecom/error.html", message=message, code=str(status)), status


def register_page_errors(bp: Blueprint) -> None:
    bp.register_error_handler(DomainError, error_page)
    bp.register_error_handler(HTTPException, http_error_page)


def _safe_next(target: str | None, default: str) -> str:
    """Only our own pages: never an absolute URL (an open redirect)."""
    if target and target.startswith("/wecom/") and "//" not in target and "\\" not in target:
        return target
    return default


def oauth_login(endpoint: str, home: str, allowed: Callable[[Staff], None]) -> Response:
    """`?code=` from WeCom's OAuth: sign the staff member in and go on to `state` (or `home`). Without
    a code, send the browser to WeCom's authorize URL, which comes back here with one."""
    code = request.args.get("code", "").strip()
    next_page = _safe_next(request.args.get("state") or request.args.get("next"), home)
    if not code:
        config = settings()
        query = urlencode(
            {
                "appid": config.WECOM_CORP_ID,
                "redirect_uri": url_for(endpoint, _external=True),
                "response_type": "code",
                "scope": "snsapi_base",
                "state": next_page,
                "agentid": config.WECOM_AGENT_ID,
            }
        )
        return redirect(f"{config.WECOM_OAUTH_AUTHORIZE_URL}?{query}#wechat_redirect")
    with transaction() as session:
        staff = authentication.staff_from_wecom_code(session, extensions().wecom, code)
    allowed(staff)
    response = redirect(next_page)
    response.set_cookie(
        PAGE_COOKIE,
        issue_page_session(staff.id),
        max_age=settings().WECOM_PAGE_SESSION_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=settings().APP_ENV != "development",
        path="/wecom/",
    )
    return response


def allow_advisors(staff: Staff) -> None:
    if staff.role not in advisor_members.ADVISOR_PAGE_ROLES:
        raise advisor_members.NotAdvisor()


def allow_merchants(staff: Staff) -> None:
    if staff.role not in MERCHANT_PAGE_ROLES:
        raise MerchantOnly()


def page_login_required(login_endpoint: str, allowed: Callable[[Staff], None]) -> Callable[[F], F]:
    """Pages: no valid cookie → to the login (and back here); a staff member of the wrong role → 403;
    a POST must carry the session's CSRF token in the `csrf_token` form field."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            page_session = read_page_session(request.cookies.get(PAGE_COOKIE))
            staff = active_staff(page_session.staff_id) if page_session else None
            if page_session is None or staff is None:
                back = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for(login_endpoint, next=back) if back else url_for(login_endpoint))
            allowed(staff)
            if request.method == "POST" and request.form.get("csrf_token") != page_session.csrf_token:
                raise CsrfRejected()
            g.page_session, g.current_staff = page_session, staff
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def page_staff() -> Staff:
    return cast(Staff, g.current_staff)


def csrf_token() -> str:
    return cast(PageSession, g.page_session).csrf_token

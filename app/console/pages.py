"""The server-rendered operator console under /console/: its signed session cookie, the decorator
that checks the operator's role on every page and action, CSRF on every form, login and logout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Blueprint, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.auth import (
    CONSOLE_COOKIE,
    ConsoleSession,
    active_operator,
    issue_console_session,
    read_console_session,
)
from app.db import transaction
from app.errors import DomainError, Forbidden
from app.extensions import extensions, settings
from app.models import Operator, OperatorRole
from app.services import audit, authentication

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = tuple(OperatorRole)
ALL_BUT_MARKETING = tuple(role for role in OperatorRole if role != OperatorRole.MARKETING)
VENDOR_DIR = Path(__file__).parent / "static" / "vendor"

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


class CsrfRejected(Forbidden):
    code, message = "CSRF_REJECTED", "页面已过期，请刷新后重试"


class RoleForbidden(Forbidden):
    code, message = "ROLE_FORBIDDEN", "当前角色无权访问此页面或执行此操作"


class ReadOnlyRole(Forbidden):
    code, message = "READ_ONLY_ROLE", "审计员为只读角色，不能修改数据"


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: tuple[OperatorRole, ...]


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: tuple[NavItem, ...]


ADMIN, MARKETING, STORE_MANAGER, AUDITOR = (
    OperatorRole.ADMIN,
    OperatorRole.MARKETING,
    OperatorRole.STORE_MANAGER,
    OperatorRole.AUDITOR,
)
# Marketing's pages (rules, coupons, campaigns, task rules, tags, segments): the auditor reads them too.
MARKETING_VIEWERS = (ADMIN, MARKETING, AUDITOR)

# The console's menu; each page checks its own roles too (the menu only hides what would be refused).
NAV = (
    NavGroup(
        "概览",
        (
            NavItem("数据看板", "console.dashboard", ALL_ROLES),
            NavItem("会员", "console.members", ALL_ROLES),
        ),
    ),
    NavGroup(
        "营销",
        (
            NavItem("规则配置", "console.rules_index", MARKETING_VIEWERS),
            NavItem("优惠券", "console.coupons", MARKETING_VIEWERS),
            NavItem("发券活动", "console.campaigns_list", MARKETING_VIEWERS),
            NavItem("标签", "console.tags_list", MARKETING_VIEWERS),
            NavItem("人群分组", "console.segments_list", MARKETING_VIEWERS),
        ),
    ),
    NavGroup(
        "导购",
        (
            NavItem("导购业绩", "console.advisors", ALL_ROLES),
            NavItem("任务规则", "console.task_rules_list", MARKETING_VIEWERS),
            NavItem("注册二维码", "console.scenes", ALL_ROLES),
        ),
    ),
    NavGroup(
        "组织",
        (
            NavItem("门店", "console.stores", (ADMIN, AUDITOR)),
            NavItem("员工", "console.staff_list", (ADMIN, AUDITOR, STORE_MANAGER)),
            NavItem("运营账号", "console.operators", (ADMIN, AUDITOR)),
            NavItem("POS 终端", "console.pos_terminals", (ADMIN, AUDITOR)),
        ),
    ),
    NavGroup(
        "系统",
        (
            NavItem("数据导入", "console.imports_list", (ADMIN, AUDITOR)),
            NavItem("操作日志", "console.audit_log", (ADMIN, AUDITOR)),
            NavItem("定时任务", "console.job_runs", (ADMIN, AUDITOR)),
        ),
    ),
)

ROLE_LABELS = {
    OperatorRole.ADMIN: "管理员",
    OperatorRole.MARKETING: "市场运营",
    OperatorRole.STORE_MANAGER: "店长",
    OperatorRole.AUDITOR: "审计员",
}


@bp.errorhandler(DomainError)
def _domain_error_page(error: DomainError) -> tuple[str, int]:
    return render_template("console/error.html", message=error.message, code=error.code), error.status


@bp.errorhandler(HTTPException)
def _http_error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    message = {404: "页面不存在", 413: "上传的内容过大"}.get(status, "请求有误，请返回重试")
    return render_template("console/error.html", message=message, code=str(status)), status


def _menu_of(operator: Operator | None) -> list[NavGroup]:
    if operator is None:
        return []
    role = operator.role
    groups = (NavGroup(group.label, tuple(i for i in group.items if role in i.roles)) for group in NAV)
    return [group for group in groups if group.items]


@bp.context_processor
def _layout_context() -> dict[str, Any]:
    operator = cast(Operator | None, g.get("console_operator"))
    page_session = cast(ConsoleSession | None, g.get("console_session"))
    return {
        "operator": operator,
        "role_label": ROLE_LABELS.get(operator.role) if operator else None,
        "nav": _menu_of(operator),
        "csrf_token": page_session.csrf_token if page_session else "",
        "with_htmx": htmx_available(),
    }


def _set_session_cookie(response: Response, cookie: str) -> None:
    response.set_cookie(
        CONSOLE_COOKIE,
        cookie,
        max_age=settings().AUTH_TOKEN_TTL_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=settings().APP_ENV != "development",
        path="/console/",
    )


def _check_csrf(page_session: ConsoleSession | None) -> None:
    # Forms send it as a field; htmx requests as a header (set once on <body> in base.html).
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    if page_session is None or not sent or sent != page_session.csrf_token:
        raise CsrfRejected()


def console_page(*roles: OperatorRole, changes_data: bool = True) -> Callable[[F], F]:
    """Console pages and actions: not signed in → the login page (and back here); a role not in
    `roles` (default: any) → 403; every POST must carry the session's CSRF token, and an auditor may
    not send one that `changes_data`."""
    allowed = roles or ALL_ROLES

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            page_session = read_console_session(request.cookies.get(CONSOLE_COOKIE))
            operator_id = page_session.operator_id if page_session else None
            operator = active_operator(operator_id) if operator_id is not None else None
            if page_session is None or operator is None:
                back = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("console.login", next=back) if back else url_for("console.login"))
            g.console_session, g.console_operator = page_session, operator
            if operator.role not in allowed:
                raise RoleForbidden()
            if request.method == "POST":
                _check_csrf(page_session)
                if changes_data and operator.role == OperatorRole.AUDITOR:
                    raise ReadOnlyRole()
            return view(*args, **kwargs)

        wrapper.console_roles = allowed  # type: ignore[attr-defined]  # read by the access tests
        return cast(F, wrapper)

    return decorator


def console_operator() -> Operator:
    return cast(Operator, g.console_operator)


def audit_console_action(
    session: Session,
    action: str,
    target_type: str,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Records what the signed-in operator did, in the transaction of the change itself."""
    audit.record(
        session,
        operator_id=console_operator().id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        client_ip=request.remote_addr,
    )


def echarts_available() -> bool:
    """Vendored by `make` from the npm registry; the pages render without charts when it is missing."""
    return (VENDOR_DIR / "echarts.min.js").is_file()


def htmx_available() -> bool:
    return (VENDOR_DIR / "htmx.min.js").is_file()


def _safe_next(target: str | None) -> str:
    """Only our own pages: never an absolute URL (an open redirect)."""
    if target and target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return url_for("console.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    page_session = read_console_session(request.cookies.get(CONSOLE_COOKIE))
    if request.method == "GET":
        signed_in_as = page_session.operator_id if page_session else None
        if signed_in_as is not None and active_operator(signed_in_as) is not None:
            return redirect(_safe_next(request.args.get("next")))
        cookie, g.console_session = issue_console_session(None)
        response = Response(_login_form(None, None), content_type="text/html; charset=utf-8")
        _set_session_cookie(response, cookie)
        return response
    g.console_session = page_session
    _check_csrf(page_session)
    username = request.form.get("username", "").strip()
    try:
        with transaction() as session:
            operator = authentication.authenticate_operator(
                session,
                extensions().admin_login_throttle,
                username,
                request.form.get("password", ""),
                client_ip=request.remote_addr or "unknown",
            )
            operator_id = operator.id
    except (authentication.LoginFailed, authentication.LoginLocked) as error:
        return _login_form(error.message, username), error.status
    # A fresh cookie and CSRF token on signing in: the anonymous ones are not carried over.
    cookie, _ = issue_console_session(operator_id)
    response = redirect(_safe_next(request.form.get("next")))
    _set_session_cookie(response, cookie)
    return response


def _login_form(error: str | None, username: str | None) -> str:
    return render_template(
        "console/login.html", error=error, username=username or "", next=request.values.get("next", "")
    )


@bp.post("/logout")
@console_page(changes_data=False)
def logout() -> Response:
    response = redirect(url_for("console.login"))
    response.delete_cookie(CONSOLE_COOKIE, path="/console/")
    return response

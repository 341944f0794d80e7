"""Console pages for the mall's organisation: stores (门店), WeCom staff (员工) and console operators
(运营账号). Admins change everything; auditors read; a store manager sees and manages their own
store's staff only (another store's record is a 403, never shown). Every change is audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.console.forms import explained, form_status, form_values, load_form
from app.console.org_schemas import (
    OPERATOR_PASSWORD_MIN_LENGTH,
    OperatorIn,
    OperatorUpdateIn,
    PasswordResetIn,
    StaffIn,
    StaffUpdateIn,
    StoreIn,
)
from app.console.pages import ROLE_LABELS, audit_console_action, bp, console_operator, console_page
from app.db import transaction
from app.errors import DomainError, Forbidden, ValidationFailed
from app.models import Operator, OperatorRole, Staff, StaffRole
from app.services import operators, staff, stores

ADMIN, AUDITOR, STORE_MANAGER = OperatorRole.ADMIN, OperatorRole.AUDITOR, OperatorRole.STORE_MANAGER
STAFF_PER_PAGE = 50

STAFF_ROLE_LABELS = {
    StaffRole.STORE_STAFF: "店员",
    StaffRole.ADVISOR: "导购",
    StaffRole.MANAGER: "经理",
}

STORE_LABELS = {"code": "门店编码", "name": "门店名称", "category": "业态", "floor": "楼层"}
STAFF_LABELS = {"wecom_userid": "企业微信账号", "name": "姓名", "role": "岗位", "store_id": "所属门店"}
OPERATOR_LABELS = {
    "username": "用户名",
    "display_name": "姓名",
    "role": "角色",
    "store_id": "所属门店",
    "password": "密码",
}
STAFF_FILTER_LABELS = {"store_id": "门店", "role": "岗位", "active": "状态", "page": "页码"}


class OtherStoreStaff(Forbidden):
    code, message = "OTHER_STORE_FORBIDDEN", "店长只能查看和管理本门店的员工"


class ManagerRoleReserved(Forbidden):
    # A WeCom manager credits and refunds at every store of the mall: more than a store manager's reach.
    code, message = (
        "MANAGER_ROLE_RESERVED",
        "店长不能设置“经理”岗位（经理可在全商场收银、退货），请联系管理员",
    )


class NoStoreOfTheirOwn(Forbidden):
    code, message = "NO_STORE", "您的账号还没有所属门店，请联系管理员"


def managed_store_id(operator: Operator) -> int | None:
    """The only store a store manager may see (None: every store, for other roles)."""
    if operator.role != STORE_MANAGER:
        return None
    if operator.store_id is None:
        raise NoStoreOfTheirOwn()
    return operator.store_id


# Stores


@bp.get("/stores", endpoint="stores")
@console_page(ADMIN, AUDITOR)
def stores_list() -> str:
    with transaction() as session:
        rows = stores.list_stores(session)
    return render_template("console/stores.html", stores=rows, saved=request.args.get("saved"))


@bp.route("/stores/new", methods=["GET", "POST"])
@console_page(ADMIN)
def store_new() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("console/store_form.html", store=None, values={}, error=None)
    try:
        fields = _store_fields(request.form)
        with transaction() as session:
            store = stores.create_store(session, fields)
            audit_console_action(session, "store.create", "store", store.id, dict(vars(fields)))
    except DomainError as error:
        return _form_error("console/store_form.html", error, store=None)
    return redirect(url_for("console.stores", saved=fields.code))


@bp.route("/stores/<int:store_id>/edit", methods=["GET", "POST"])
@console_page(ADMIN)
def store_edit(store_id: int) -> Response | str | tuple[str, int]:
    with transaction() as session:
        store = stores.get_store(session, store_id)
    if request.method == "GET":
        values = {name: getattr(store, name) or "" for name in STORE_LABELS}
        return render_template("console/store_form.html", store=store, values=values, error=None)
    try:
        fields = _store_fields(request.form)
        with transaction() as session:
            changed = stores.update_store(session, store_id, fields)
            if changed:
                audit_console_action(session, "store.update", "store", store_id, changed)
    except DomainError as error:
        return _form_error("console/store_form.html", error, store=store)
    return redirect(url_for("console.stores", saved=fields.code))


def _store_fields(form: Mapping[str, str]) -> stores.StoreFields:
    args = load_form(StoreIn(), form_values(form, STORE_LABELS), labels=STORE_LABELS)
    return stores.StoreFields(**args)


# Staff


@bp.get("/staff")
@console_page(ADMIN, AUDITOR, STORE_MANAGER)
def staff_list() -> str:
    own_store = managed_store_id(console_operator())
    chosen, page = _staff_filter(own_store)
    with transaction() as session:
        rows, total = staff.staff_page(
            session, chosen, offset=(page - 1) * STAFF_PER_PAGE, limit=STAFF_PER_PAGE
        )
        store_choices = stores.list_stores(session, store_id=own_store)
    return render_template(
        "console/staff.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // STAFF_PER_PAGE)),
        chosen=chosen,
        stores=store_choices,
        store_locked=own_store is not None,
        role_labels=STAFF_ROLE_LABELS,
        can_edit=console_operator().role in (ADMIN, STORE_MANAGER),
        saved=request.args.get("saved"),
    )


def _staff_filter(own_store: int | None) -> tuple[staff.StaffFilter, int]:
    raw_store, raw_role = request.args.get("store_id", "").strip(), request.args.get("role", "").strip()
    raw_active, raw_page = request.args.get("active", "").strip(), request.args.get("page", "1").strip()
    if (raw_store and not raw_store.isdigit()) or not raw_page.isdigit() or int(raw_page) < 1:
        raise ValidationFailed("筛选条件有误")
    if raw_role and raw_role not in {role.value for role in StaffRole}:
        raise ValidationFailed("岗位参数有误")
    store_id = int(raw_store) if raw_store else None
    if own_store is not None:
        if store_id is not None and store_id != own_store:
            raise OtherStoreStaff()
        store_id = own_store
    active = {"1": True, "0": False}.get(raw_active)
    return staff.StaffFilter(store_id, StaffRole(raw_role) if raw_role else None, active), int(raw_page)


@bp.route("/staff/new", methods=["GET", "POST"])
@console_page(ADMIN, STORE_MANAGER)
def staff_new() -> Response | str | tuple[str, int]:
    own_store = managed_store_id(console_operator())
    if request.method == "GET":
        return _staff_form(None, {"store_id": own_store or ""}, own_store)
    try:
        args = load_form(StaffIn(), _staff_values(own_store), labels=STAFF_LABELS)
        _check_role_in_reach(args["role"], None, own_store)
        with transaction() as session:
            created = staff.create_staff(session, **args)
            detail = {**args, "role": created.role.value}
            audit_console_action(session, "staff.create", "staff", created.id, detail)
    except DomainError as error:
        return _staff_form(None, request.form, own_store, error)
    return redirect(url_for("console.staff_list", saved=args["wecom_userid"]))


@bp.route("/staff/<int:staff_id>/edit", methods=["GET", "POST"])
@console_page(ADMIN, STORE_MANAGER)
def staff_edit(staff_id: int) -> Response | str | tuple[str, int]:
    own_store = managed_store_id(console_operator())
    record = _staff_in_reach(staff_id, own_store)
    if request.method == "GET":
        values = {"name": record.name, "role": record.role.value, "store_id": record.store_id or ""}
        return _staff_form(record, values, own_store)
    try:
        args = load_form(StaffUpdateIn(), _staff_values(own_store), labels=STAFF_LABELS)
        _check_role_in_reach(args["role"], record, own_store)
        with transaction() as session:
            changed = staff.update_staff(session, staff_id, **args)
            if changed:
                audit_console_action(session, "staff.update", "staff", staff_id, changed)
    except DomainError as error:
        return _staff_form(record, request.form, own_store, error)
    return redirect(url_for("console.staff_list", saved=record.wecom_userid))


@bp.post("/staff/<int:staff_id>/active")
@console_page(ADMIN, STORE_MANAGER)
def staff_set_active(staff_id: int) -> Response:
    own_store = managed_store_id(console_operator())
    record = _staff_in_reach(staff_id, own_store)
    active = request.form.get("active") == "1"
    with transaction() as session:
        if staff.set_active(session, staff_id, active):
            action = "staff.reactivate" if active else "staff.deactivate"
            audit_console_action(session, action, "staff", staff_id)
    return redirect(url_for("console.staff_list", saved=record.wecom_userid))


def _staff_in_reach(staff_id: int, own_store: int | None) -> Staff:
    with transaction() as session:
        record = staff.get_staff(session, staff_id)
    if own_store is not None and record.store_id != own_store:
        raise OtherStoreStaff()
    return record


def _check_role_in_reach(role: StaffRole, record: Staff | None, own_store: int | None) -> None:
    """A store manager may keep a manager a manager, but never make one."""
    if own_store is not None and role == StaffRole.MANAGER and (record is None or record.role != role):
        raise ManagerRoleReserved()


def _staff_values(own_store: int | None) -> dict[str, Any]:
    values = form_values(request.form, STAFF_LABELS, integers=("store_id",))
    if own_store is not None:
        # A store manager's staff are in their store, whatever the form says.
        values["store_id"] = own_store
    return values


def _staff_form(
    record: Staff | None, values: Mapping[str, Any], own_store: int | None, error: DomainError | None = None
) -> str | tuple[str, int]:
    with transaction() as session:
        store_choices = stores.list_stores(session, store_id=own_store)
    page = render_template(
        "console/staff_form.html",
        record=record,
        values=values,
        stores=store_choices,
        store_locked=own_store is not None,
        role_labels={
            role: label
            for role, label in STAFF_ROLE_LABELS.items()
            if role != StaffRole.MANAGER or own_store is None or (record and record.role == role)
        },
        error=explained(error, STAFF_LABELS) if error else None,
    )
    return (page, form_status(error)) if error else page


# Operators (the list is in dashboard_views)


@bp.route("/operators/new", methods=["GET", "POST"])
@console_page(ADMIN)
def operator_new() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return _operator_form(None, {})
    try:
        args = load_form(
            OperatorIn(),
            form_values(request.form, OPERATOR_LABELS, integers=("store_id",)),
            labels=OPERATOR_LABELS,
        )
        with transaction() as session:
            created = operators.create_operator(session, operators.NewOperator(**args))
            detail = {
                "username": created.username,
                "display_name": created.display_name,
                "role": created.role.value,
                "store_id": created.store_id,
            }
            audit_console_action(session, "operator.create", "operator", created.id, detail)
    except DomainError as error:
        return _operator_form(None, request.form, error)
    return redirect(url_for("console.operators", saved=args["username"]))


@bp.route("/operators/<int:operator_id>/edit", methods=["GET", "POST"])
@console_page(ADMIN)
def operator_edit(operator_id: int) -> Response | str | tuple[str, int]:
    with transaction() as session:
        record = operators.get_operator(session, operator_id)
    if request.method == "GET":
        values = {
            "display_name": record.display_name,
            "role": record.role.value,
            "store_id": record.store_id or "",
        }
        return _operator_form(record, values)
    try:
        args = load_form(
            OperatorUpdateIn(),
            form_values(request.form, OPERATOR_LABELS, integers=("store_id",)),
            labels=OPERATOR_LABELS,
        )
        with transaction() as session:
            changed = operators.update_operator(
                session, operator_id, **args, acting_operator_id=console_operator().id
            )
            if changed:
                audit_console_action(session, "operator.update", "operator", operator_id, changed)
    except DomainError as error:
        return _operator_form(record, request.form, error)
    return redirect(url_for("console.operators", saved=record.username))


@bp.post("/operators/<int:operator_id>/active")
@console_page(ADMIN)
def operator_set_active(operator_id: int) -> Response | str | tuple[str, int]:
    active = request.form.get("active") == "1"
    try:
        with transaction() as session:
            record = operators.get_operator(session, operator_id)
            if operators.set_active(session, operator_id, active, acting_operator_id=console_operator().id):
                action = "operator.reactivate" if active else "operator.deactivate"
                audit_console_action(session, action, "operator", operator_id)
    except DomainError as error:
        return _operator_list_error(error)
    return redirect(url_for("console.operators", saved=record.username))


@bp.post("/operators/<int:operator_id>/password")
@console_page(ADMIN)
def operator_reset_password(operator_id: int) -> Response | str | tuple[str, int]:
    with transaction() as session:
        record = operators.get_operator(session, operator_id)
    try:
        args = load_form(PasswordResetIn(), form_values(request.form, ("password",)), labels=OPERATOR_LABELS)
        with transaction() as session:
            operators.reset_password(session, operator_id, args["password"])
            # Never the password itself, nor its hash.
            audit_console_action(session, "operator.reset_password", "operator", operator_id)
    except DomainError as error:
        values = {
            "display_name": record.display_name,
            "role": record.role.value,
            "store_id": record.store_id or "",
        }
        return _operator_form(record, values, error)
    return redirect(url_for("console.operators", saved=record.username))


def _operator_form(
    record: Operator | None, values: Mapping[str, Any], error: DomainError | None = None
) -> str | tuple[str, int]:
    with transaction() as session:
        store_choices = stores.list_stores(session)
    page = render_template(
        "console/operator_form.html",
        record=record,
        values=values,
        stores=store_choices,
        role_labels=ROLE_LABELS,
        min_password=OPERATOR_PASSWORD_MIN_LENGTH,
        is_self=record is not None and record.id == console_operator().id,
        error=explained(error, OPERATOR_LABELS) if error else None,
    )
    return (page, form_status(error)) if error else page


def _operator_list_error(error: DomainError) -> tuple[str, int]:
    with transaction() as session:
        rows = operators.list_operators(session)
        store_names = {store.id: store.name for store in stores.list_stores(session)}
    page = render_template(
        "console/operators.html",
        operators=rows,
        store_names=store_names,
        role_labels=ROLE_LABELS,
        error=error.message,
    )
    return page, form_status(error)


def _form_error(template: str, error: DomainError, **context: Any) -> tuple[str, int]:
    page = render_template(template, values=request.form, error=explained(error, STORE_LABELS), **context)
    return page, form_status(error)

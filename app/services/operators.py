"""Console operators (运营账号): creating them, changing their role and store, switching them off and
on, resetting passwords. An operator can never lock themselves out, and the mall always keeps an
active admin."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Operator, OperatorRole, Store
from app.services.authentication import hash_password


class UsernameTaken(Conflict):
    code, message = "USERNAME_TAKEN", "用户名已存在"


class StoreRequired(ValidationFailed):
    code, message = "STORE_REQUIRED", "店长必须指定所属门店"


class SelfLockout(Conflict):
    code, message = "SELF_LOCKOUT", "不能停用自己的账号或修改自己的角色"


class LastAdmin(Conflict):
    code, message = "LAST_ADMIN", "至少要保留一个启用的管理员账号"


@dataclass(frozen=True)
class NewOperator:
    username: str
    display_name: str
    role: OperatorRole
    password: str
    store_id: int | None = None


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def get_operator(session: Session, operator_id: int) -> Operator:
    operator = session.get(Operator, operator_id)
    if operator is None:
        raise NotFound("运营账号不存在")
    return operator


def names(session: Session, operator_ids: Iterable[int]) -> dict[int, str]:
    """operator id → "display name (username)", for the ids given."""
    wanted = set(operator_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(Operator.id, Operator.display_name, Operator.username).where(Operator.id.in_(wanted))
    )
    return {operator_id: f"{display}（{username}）" for operator_id, display, username in rows}


def create_operator(session: Session, new: NewOperator) -> Operator:
    """A new active operator whose password is hashed the way logins check it."""
    store_id = _store_for_role(session, new.role, new.store_id)
    if session.scalar(select(Operator.id).where(Operator.username == new.username)) is not None:
        raise UsernameTaken()
    operator = Operator(
        username=new.username,
        display_name=new.display_name,
        password_hash=hash_password(new.password),
        role=new.role,
        store_id=store_id,
        is_active=True,
    )
    try:
        with session.begin_nested():
            session.add(operator)
    except IntegrityError as error:  # a concurrent create took the username first
        raise UsernameTaken() from error
    return operator


def update_operator(
    session: Session,
    operator_id: int,
    *,
    display_name: str,
    role: OperatorRole,
    store_id: int | None,
    acting_operator_id: int,
) -> dict[str, list[Any]]:
    """Change name, role and store; what changed (field → [before, after]). Nobody changes their own
    role, and the last active admin stays an admin."""
    operator = _locked(session, operator_id)
    if operator.id == acting_operator_id and role != operator.role:
        raise SelfLockout("不能修改自己的角色")
    if operator.role == OperatorRole.ADMIN and role != OperatorRole.ADMIN and operator.is_active:
        _keep_an_admin(session, operator.id)
    new_store_id = _store_for_role(session, role, store_id)
    before = _fields(operator)
    operator.display_name, operator.role, operator.store_id = display_name, role, new_store_id
    session.flush()
    return _changes(before, _fields(operator))


def set_active(session: Session, operator_id: int, active: bool, *, acting_operator_id: int) -> bool:
    """Switch an operator off (their sessions end at their next request) or back on; True if it
    changed. Nobody switches themselves off, and the last active admin stays on."""
    operator = _locked(session, operator_id)
    if operator.is_active == active:
        return False
    if not active:
        if operator.id == acting_operator_id:
            raise SelfLockout("不能停用自己的账号")
        if operator.role == OperatorRole.ADMIN:
            _keep_an_admin(session, operator.id)
    operator.is_active = active
    session.flush()
    return True


def reset_password(session: Session, operator_id: int, password: str) -> None:
    operator = _locked(session, operator_id)
    operator.password_hash = hash_password(password)
    session.flush()


def _locked(session: Session, operator_id: int) -> Operator:
    operator = session.scalars(
        select(Operator).where(Operator.id == operator_id).with_for_update()
    ).one_or_none()
    if operator is None:
        raise NotFound("运营账号不存在")
    return operator


def _keep_an_admin(session: Session, leaving_id: int) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(Operator)
        .where(Operator.role == OperatorRole.ADMIN, Operator.is_active.is_(True), Operator.id != leaving_id)
    )
    if not others:
        raise LastAdmin()


def _store_for_role(session: Session, role: OperatorRole, store_id: int | None) -> int | None:
    """A store manager's store (required, must exist); other roles have none."""
    if role != OperatorRole.STORE_MANAGER:
        return None
    if store_id is None:
        raise StoreRequired(details={"store_id": ["店长必须指定所属门店"]})
    if session.get(Store, store_id) is None:
        raise NotFound("门店不存在", details={"store_id": store_id})
    return store_id


def _fields(operator: Operator) -> dict[str, Any]:
    return {"display_name": operator.display_name, "role": operator.role.value, "store_id": operator.store_id}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [before[name], value] for name, value in after.items() if before[name] != value}

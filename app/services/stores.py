"""The mall's stores (门店): listing, creating and editing them. A store's code is its stable key
(POS terminals and imports use it), so it is unique."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Store


class StoreCodeTaken(Conflict):
    code, message = "STORE_CODE_TAKEN", "门店编码已存在"


@dataclass(frozen=True)
class StoreFields:
    code: str
    name: str
    category: str
    floor: str | None = None


def list_stores(session: Session, *, store_id: int | None = None) -> list[Store]:
    """All stores by code, or just `store_id`'s."""
    query = select(Store).order_by(Store.code)
    if store_id is not None:
        query = query.where(Store.id == store_id)
    return list(session.scalars(query))


def get_store(session: Session, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound("门店不存在")
    return store


def create_store(session: Session, fields: StoreFields) -> Store:
    _code_free(session, fields.code, None)
    store = Store(**asdict(fields))
    try:
        with session.begin_nested():
            session.add(store)
    except IntegrityError as error:  # a concurrent create took the code first
        raise StoreCodeTaken() from error
    return store


def update_store(session: Session, store_id: int, fields: StoreFields) -> dict[str, list[Any]]:
    """Change the store's fields; what changed (field → [before, after])."""
    store = get_store(session, store_id)
    _code_free(session, fields.code, store_id)
    changed = {
        name: [getattr(store, name), value]
        for name, value in asdict(fields).items()
        if getattr(store, name) != value
    }
    for name, (_, value) in changed.items():
        setattr(store, name, value)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as error:
        raise StoreCodeTaken() from error
    return changed


def _code_free(session: Session, code: str, own_id: int | None) -> None:
    holder = session.scalar(select(Store.id).where(Store.code == code))
    if holder is not None and holder != own_id:
        raise StoreCodeTaken()

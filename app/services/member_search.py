"""Finding members for operators: by phone (through the blind index: phones are never searched in
clear), by nickname prefix, or by member id; within a store for store managers. Pages are keyset
pages, newest member first; an export reads the same search as a stream of rows."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, aliased

from app.errors import ValidationFailed
from app.models import Member, Staff, Tier
from app.pii import InvalidPhone, PhoneVault, normalize_phone
from app.services import member_scope

PAGE_SIZE = 20
# Member ids are INT columns: a longer number cannot be one, and would overflow the bind.
MAX_MEMBER_ID = 2**31 - 1
NICKNAME_MAX_LENGTH = 64


class SearchBy(enum.StrEnum):
    AUTO = "auto"  # a full mobile number → phone; other digits → member id; anything else → nickname
    PHONE = "phone"
    NAME = "name"
    ID = "id"


class SearchInvalid(ValidationFailed):
    code, message = "MEMBER_SEARCH_INVALID", "搜索条件有误"


@dataclass(frozen=True)
class MemberSearch:
    text: str = ""
    by: SearchBy = SearchBy.AUTO
    # Set for a store manager: only that store's members (app.services.member_scope).
    store_id: int | None = None

    def describe(self) -> dict[str, Any]:
        """The search as recorded in the audit log: the phone itself never is."""
        by = self.resolved_by()
        shown = "(手机号)" if by is SearchBy.PHONE else self.text
        return {"text": shown, "by": by.value, "store_id": self.store_id}

    def resolved_by(self) -> SearchBy:
        if self.by is not SearchBy.AUTO or not self.text:
            return self.by
        try:
            normalize_phone(self.text)
        except InvalidPhone:
            return SearchBy.ID if self.text.isdigit() else SearchBy.NAME
        return SearchBy.PHONE


@dataclass(frozen=True)
class MemberRow:
    id: int
    phone_masked: str
    nickname: str | None
    tier_name: str
    points_balance: int
    joined_at: datetime
    advisor_name: str | None


def _condition(search: MemberSearch, vault: PhoneVault) -> ColumnElement[bool] | None:
    text = search.text
    if not text:
        return None
    by = search.resolved_by()
    if by is SearchBy.PHONE:
        try:
            index = vault.blind_index(text)
        except InvalidPhone as exc:
            raise SearchInvalid("请输入完整的 11 位中国大陆手机号") from exc
        # A merged member's phone finds the member it was merged into.
        by_phone = aliased(Member)
        return Member.id.in_(
            select(func.coalesce(by_phone.merged_into_member_id, by_phone.id)).where(
                by_phone.phone_index == index
            )
        )
    if by is SearchBy.ID:
        if not text.isdigit() or int(text) > MAX_MEMBER_ID:
            raise SearchInvalid("会员ID应为正整数")
        return Member.id == int(text)
    if len(text) > NICKNAME_MAX_LENGTH:
        raise SearchInvalid(f"昵称不能超过 {NICKNAME_MAX_LENGTH} 个字")
    # A constant prefix pattern, which the nickname index answers as a range; % and _ typed by the
    # operator match themselves.
    pattern = text.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    return Member.nickname.like(pattern, escape="/")


def _query(search: MemberSearch, vault: PhoneVault) -> Select[*tuple[Any, ...]]:
    statement: Select[*tuple[Any, ...]] = (
        select(
            Member.id,
            Member.phone_masked,
            Member.nickname,
            Tier.name.label("tier_name"),
            Member.points_balance,
            Member.joined_at,
            Staff.name.label("advisor_name"),
        )
        .join(Tier, Tier.id == Member.tier_id)
        .outerjoin(Staff, Staff.id == Member.advisor_id)
        .order_by(Member.id.desc())
    )
    if (condition := _condition(search, vault)) is not None:
        statement = statement.where(condition)
    if not search.text or search.resolved_by() is not SearchBy.ID:
        # Merged and deleted members are history: only a search by their id still opens them.
        statement = statement.where(Member.merged_into_member_id.is_(None), Member.deleted_at.is_(None))
    if search.store_id is not None:
        statement = statement.where(member_scope.of_store(search.store_id))
    return statement


def search_page(
    session: Session,
    search: MemberSearch,
    vault: PhoneVault,
    *,
    before_id: int | None,
    limit: int = PAGE_SIZE,
) -> tuple[list[MemberRow], int | None]:
    """Newest first; the cursor is the id to continue below. Returns (rows, next cursor or None).
    Raises SearchInvalid (422) for a search that cannot mean anything (a partial phone, say)."""
    statement = _query(search, vault)
    if before_id is not None:
        statement = statement.where(Member.id < before_id)
    rows = [MemberRow(**row._mapping) for row in session.execute(statement.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


def export_rows(
    session: Session, search: MemberSearch, vault: PhoneVault, *, limit: int
) -> Iterator[MemberRow]:
    """At most `limit` rows of the search, newest first, read in batches rather than all at once.
    An invalid search raises SearchInvalid here, before the first row is asked for."""
    result = session.execute(_query(search, vault).limit(limit).execution_options(yield_per=500))
    return (MemberRow(**row._mapping) for row in result)

"""Per-process copies of the small tables operators configure, reused while their version holds.

A purchase needs the points rules, earning rates, promotions, tiers and its store: six wide
reads that change a few times a year. Each group of such tables has a row in
`reference_versions`; every ORM write to a table of the group bumps it in the writer's own
transaction (a `before_flush` hook, so no service has to remember to). A reader asks for the
versions once per transaction (one narrow SELECT) and reuses its process's copy while they
match, so an operator's edit is seen by every worker at its next request, never later.

Cached values are detached instances: read their columns, never change them or add them to a
session; services that edit reference data load their own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from app.db import DROP_REQUEST_SEED
from app.models import (
    EarningRate,
    Operator,
    PointsPromotion,
    PointsSettings,
    ReferenceVersion,
    Staff,
    Store,
    Tier,
)

T = TypeVar("T")

RULES = "points_rules"
TIERS = "tiers"
STORES = "stores"
STAFF = "staff"  # staff and operators, cached one by one for the auth check of every request
# Bumped by hand (`bump_versions`) when a member stops standing for their phone: merged into another
# or deleted. Long runs that map phones to members (purchase imports) drop their map when it moves.
MEMBER_IDENTITIES = "member_identities"

# The group whose version a write to each table bumps.
GROUP_OF_TABLE: dict[str, str] = {
    PointsSettings.__tablename__: RULES,
    EarningRate.__tablename__: RULES,
    PointsPromotion.__tablename__: RULES,
    Tier.__tablename__: TIERS,
    Store.__tablename__: STORES,
    Staff.__tablename__: STAFF,
    Operator.__tablename__: STAFF,
}

_CACHE_KEY = "reference_cache"
_VERSIONS_KEY = "reference_versions"
_WROTE_KEY = "reference_written"


class ReferenceCache:
    """One process's copies, keyed by name, each with the group version it was loaded at.

    Shared by the worker's threads without a lock: a dict read or write is atomic, and two
    threads loading the same value at once both store a correct copy.
    """

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, Any]] = {}

    def session_info(self) -> dict[str, Any]:
        """What a sessionmaker passes to its sessions so that `cached` finds this cache."""
        return {_CACHE_KEY: self}

    def lookup(self, key: str, version: int) -> tuple[bool, Any]:
        held = self._values.get(key)
        if held is not None and held[0] == version:
            return True, held[1]
        return False, None

    def store(self, key: str, version: int, value: Any) -> None:
        self._values[key] = (version, value)


def cached(session: Session, key: str, group: str, load: Callable[[Session], T]) -> T:
    """`load(session)`'s result, from this process's copy while `group`'s version is unchanged.

    Loads through a separate session on the same connection (same transaction, same snapshot),
    so the copy shares no instance with the caller's session. A session that has itself written
    reference data bypasses the cache: its uncommitted rows must never be shared.
    """
    cache: ReferenceCache | None = session.info.get(_CACHE_KEY)
    if cache is None or session.info.get(_WROTE_KEY):
        return load(session)
    return _through_cache(session, cache, key, _versions(session).get(group, 0), load)


def cached_at_revision(session: Session, key: str, revision: int, load: Callable[[Session], T]) -> T:
    """`load(session)`'s result, from this process's copy while `revision` is the one it was loaded at.

    For rows that carry their own revision counter (bumped by every edit), read by the caller in
    this transaction. The caller must not have edited the row in this transaction.
    """
    cache: ReferenceCache | None = session.info.get(_CACHE_KEY)
    if cache is None:
        return load(session)
    return _through_cache(session, cache, key, revision, load)


def _through_cache(
    session: Session, cache: ReferenceCache, key: str, version: int, load: Callable[[Session], T]
) -> T:
    found, value = cache.lookup(key, version)
    if found:
        return value
    with Session(bind=session.connection(), expire_on_commit=False) as loader:
        value = load(loader)
    cache.store(key, version, value)
    return value


def version(session: Session, group: str) -> int:
    """`group`'s version as this transaction sees it (read once per transaction, like `cached`)."""
    return _versions(session).get(group, 0)


def versions_read(session: Session) -> dict[str, Any]:
    """The versions this session has read, as `info` for later sessions of the same request, so
    that they reuse them instead of asking again. Empty if it has read none or written any."""
    versions = session.info.get(_VERSIONS_KEY)
    if versions is None or session.info.get(_WROTE_KEY):
        return {}
    return {_VERSIONS_KEY: versions}


_ALL_VERSIONS = select(ReferenceVersion.name, ReferenceVersion.version)


def _versions(session: Session) -> dict[str, int]:
    versions: dict[str, int] | None = session.info.get(_VERSIONS_KEY)
    if versions is None:
        rows = session.connection().execute(_ALL_VERSIONS)
        versions = {name: version for name, version in rows}
        session.info[_VERSIONS_KEY] = versions
    return versions


@event.listens_for(Session, "before_flush")
def _bump_written_groups(session: Session, _flush_context: Any, _instances: Any) -> None:
    written = chain(session.new, session.dirty, session.deleted)
    groups = _groups_of(written)
    if groups:
        bump_versions(session, groups)


def _groups_of(instances: Iterable[object]) -> set[str]:
    groups = set()
    for instance in instances:
        table = getattr(instance, "__tablename__", None)
        if table in GROUP_OF_TABLE:
            groups.add(GROUP_OF_TABLE[table])
    return groups


def bump_versions(session: Session, groups: Iterable[str]) -> None:
    """Mark `groups` as changed by this transaction; call it after bulk (Core) writes to their tables."""
    connection = session.connection()
    for group in sorted(groups):
        bumped = connection.execute(
            update(ReferenceVersion)
            .where(ReferenceVersion.name == group)
            .values(version=ReferenceVersion.version + 1)
        )
        if bumped.rowcount == 0:  # a database emptied since it was migrated (tests)
            connection.execute(
                insert(ReferenceVersion)
                .values(name=group, version=1)
                .prefix_with("IGNORE", dialect="mysql")
                .prefix_with("OR IGNORE", dialect="sqlite")
            )
    session.info[_WROTE_KEY] = True
    session.info[DROP_REQUEST_SEED] = True  # the versions other sessions of this request got are old now
    session.info.pop(_VERSIONS_KEY, None)

"""Tags: rule tags refreshed from their rules, system tags (RFM segment, lifecycle stage) refreshed
from the nightly facts, manual tags set by people. Which members have a tag is materialised in
`member_tags`; a tag a member loses moves to `member_tag_history`.

Refreshing one tag for a range of member ids is three set-based statements: the members who no
longer match move to the history, then leave `member_tags`, then the members who newly match are
added. A refresh only ever adds or removes tags of its own source, so it never overrides a person's
manual tagging, and running it twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from app.errors import Conflict, DomainError, NotFound
from app.mall_time import MallTime
from app.models import Member, Tier
from app.models.tag import (
    LifecycleStage,
    MemberStats,
    MemberTag,
    MemberTagHistory,
    RfmSegment,
    Tag,
    TagKind,
    TagSource,
)
from app.services import tag_rules
from app.services.tag_rules import RuleContext, compile_rule, members_matching

PREVIEW_SAMPLE_SIZE = 10

RFM_SEGMENT_NAMES = {
    RfmSegment.IMPORTANT_VALUE: "重要价值",
    RfmSegment.IMPORTANT_DEVELOP: "重要发展",
    RfmSegment.IMPORTANT_KEEP: "重要保持",
    RfmSegment.IMPORTANT_RETAIN: "重要挽留",
    RfmSegment.GENERAL_VALUE: "一般价值",
    RfmSegment.GENERAL_DEVELOP: "一般发展",
    RfmSegment.GENERAL_KEEP: "一般保持",
    RfmSegment.GENERAL_RETAIN: "一般挽留",
    RfmSegment.NO_PURCHASE: "近期无消费",
}
LIFECYCLE_NAMES = {
    LifecycleStage.NEW: "新会员",
    LifecycleStage.ACTIVE: "活跃会员",
    LifecycleStage.DORMANT: "沉睡会员",
    LifecycleStage.CHURNED: "流失会员",
}


@dataclass(frozen=True)
class SystemTag:
    code: str
    name: str
    rule: dict[str, Any]


RFM_PREFIX, LIFECYCLE_PREFIX = "rfm:", "lifecycle:"
SYSTEM_TAGS: tuple[SystemTag, ...] = (
    *(
        SystemTag(
            f"{RFM_PREFIX}{segment.value}",
            f"RFM·{name}",
            {"field": "rfm_segment", "op": "=", "value": segment.value},
        )
        for segment, name in RFM_SEGMENT_NAMES.items()
    ),
    *(
        SystemTag(
            f"{LIFECYCLE_PREFIX}{stage.value}",
            name,
            {"field": "lifecycle_stage", "op": "=", "value": stage.value},
        )
        for stage, name in LIFECYCLE_NAMES.items()
    ),
)


class TagCodeTaken(DomainError):
    code, status, message = "TAG_CODE_TAKEN", 409, "标签编码已存在"


class TagNotManual(DomainError):
    code, status, message = "TAG_NOT_MANUAL", 409, "只能手动设置手工标签"


class TagReadOnly(DomainError):
    code, status, message = "TAG_READ_ONLY", 409, "系统标签不能修改"


# --- definitions ------------------------------------------------------------------------------------


def ensure_system_tags(session: Session) -> None:
    """Create the RFM and lifecycle tags that do not exist yet (idempotent)."""
    existing = set(session.scalars(select(Tag.code).where(Tag.kind == TagKind.SYSTEM)))
    for system_tag in SYSTEM_TAGS:
        if system_tag.code not in existing:
            session.add(
                Tag(code=system_tag.code, name=system_tag.name, kind=TagKind.SYSTEM, rule=system_tag.rule)
            )
    session.flush()


def create_tag(
    session: Session,
    *,
    code: str,
    name: str,
    kind: TagKind,
    rule: dict[str, Any] | None,
    description: str | None,
    operator_id: int | None,
    at: MallTime,
) -> Tag:
    if kind is TagKind.SYSTEM:
        raise TagReadOnly()
    if kind is TagKind.RULE:
        _check_rule_tag_rule(session, rule, at)
    tag = Tag(
        code=code,
        name=name,
        kind=kind,
        rule=rule if kind is TagKind.RULE else None,
        description=description,
        created_by_operator_id=operator_id,
    )
    session.add(tag)
    try:
        session.flush()
    except IntegrityError as exc:
        raise TagCodeTaken(details={"code": code}) from exc
    return tag


def update_tag(
    session: Session,
    tag_id: int,
    *,
    name: str,
    rule: dict[str, Any] | None,
    description: str | None,
    active: bool,
    at: MallTime,
) -> Tag:
    """Rename, change the rule or (de)activate a tag; members' tags follow at the next refresh."""
    tag = get_tag(session, tag_id)
    if tag.kind is TagKind.SYSTEM:
        raise TagReadOnly()
    if tag.kind is TagKind.RULE:
        _check_rule_tag_rule(session, rule, at)
        tag.rule = rule
    tag.name, tag.description, tag.active = name, description, active
    session.flush()
    return tag


def _check_rule_tag_rule(session: Session, rule: Any, at: MallTime) -> None:
    if rule is None:
        raise tag_rules.InvalidTagRule("规则标签需要规则", details={"path": "rule", "problem": "缺少规则"})
    if _uses_tags(rule):
        # Refreshed tag by tag, a rule tag reading other tags would depend on their order.
        raise tag_rules.InvalidTagRule(
            "规则标签不能引用其他标签（请用人群分组组合标签）",
            details={"path": "rule", "problem": "不能使用 tag 字段"},
        )
    compile_rule(rule, RuleContext.load(session, at))


def _uses_tags(rule: Any) -> bool:
    if isinstance(rule, dict):
        return rule.get("field") == "tag" or any(
            _uses_tags(part) for part in rule.get("all", []) + rule.get("any", [])
        )
    return False


def get_tag(session: Session, tag_id: int) -> Tag:
    tag = session.get(Tag, tag_id)
    if tag is None:
        raise NotFound("标签不存在")
    return tag


def list_tags(session: Session) -> list[Tag]:
    return list(session.scalars(select(Tag).order_by(Tag.kind, Tag.id)))


def holder_counts(session: Session) -> dict[int, int]:
    """How many members hold each tag now."""
    rows = session.execute(select(MemberTag.tag_id, func.count()).group_by(MemberTag.tag_id))
    return {tag_id: count for tag_id, count in rows}


# --- preview ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Any]


def preview(session: Session, rule: Any, at: MallTime) -> Preview:
    """How many members the rule hits now, and the first few of them (by member id)."""
    condition = compile_rule(rule, RuleContext.load(session, at))
    matching = members_matching(condition)
    count = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    sample_ids = matching.order_by(Member.id).limit(PREVIEW_SAMPLE_SIZE).subquery()
    sample = session.execute(
        select(
            Member.id, Member.nickname, Member.phone_masked, Member.joined_at, Tier.name.label("tier_name")
        )
        .join(Tier, Tier.id == Member.tier_id)
        .where(Member.id.in_(select(sample_ids.c.id)))
        .order_by(Member.id)
    ).all()
    return Preview(count, list(sample))


# --- refresh ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshCounts:
    added: int = 0
    removed: int = 0

    def __add__(self, other: RefreshCounts) -> RefreshCounts:
        return RefreshCounts(self.added + other.added, self.removed + other.removed)


def rule_tags(session: Session) -> list[Tag]:
    """Rule tags, active or not (an inactive one is emptied by its refresh)."""
    return list(session.scalars(select(Tag).where(Tag.kind == TagKind.RULE).order_by(Tag.id)))


def refresh_system_tags(
    session: Session, low: int, high: int, at: MallTime, *, changed_since: date | None = None
) -> RefreshCounts:
    """Bring every system tag of members with ids in [low, high) in line with their RFM segment and
    lifecycle stage: three statements for all of them (a system tag's code names the value it
    stands for, e.g. `rfm:important_value`). With `changed_since`, only members whose segment or
    stage changed on that business day or later are looked at (the others' tags already match)."""
    stats_in_range = and_(MemberStats.member_id >= low, MemberStats.member_id < high)
    if changed_since is not None:
        stats_in_range = and_(
            stats_in_range,
            or_(MemberStats.lifecycle_since >= changed_since, MemberStats.rfm_segment_since >= changed_since),
        )

    def names_value_of(stats: Any, tag: Any) -> ColumnElement[bool]:
        return or_(
            tag.code == literal(RFM_PREFIX, String) + stats.rfm_segment,
            tag.code == literal(LIFECYCLE_PREFIX, String) + stats.lifecycle_stage,
        )

    still_true = exists().where(
        MemberStats.member_id == MemberTag.member_id,
        Tag.id == MemberTag.tag_id,
        names_value_of(MemberStats, Tag),
    )
    ended = and_(
        MemberTag.member_id >= low,
        MemberTag.member_id < high,
        MemberTag.source == TagSource.SYSTEM,
        ~still_true,
    )
    if changed_since is not None:
        ended = and_(ended, MemberTag.member_id.in_(select(MemberStats.member_id).where(stats_in_range)))
    removed = _end(session, ended, at.now)
    held = aliased(MemberTag)
    newcomers = (
        select(
            MemberStats.member_id,
            Tag.id,
            literal(TagSource.SYSTEM.value),
            literal(at.now, MemberTag.since.type),
        )
        .join(Tag, and_(Tag.kind == TagKind.SYSTEM, names_value_of(MemberStats, Tag)))
        .outerjoin(held, _holding(held, MemberStats.member_id, Tag.id))
        .where(stats_in_range, held.member_id.is_(None))
        # A deleted member's statistics stay as anonymous figures, but nobody profiles them any more.
        .where(~exists().where(Member.id == MemberStats.member_id, Member.deleted_at.is_not(None)))
    )
    added = session.execute(
        insert(MemberTag).from_select(["member_id", "tag_id", "source", "since"], newcomers)
    ).rowcount  # type: ignore[attr-defined]
    return RefreshCounts(added, removed)


def refresh_tag(session: Session, tag: Tag, low: int, high: int, context: RuleContext) -> RefreshCounts:
    """Bring the holders of rule tag `tag` among members with ids in [low, high) in line with its rule."""
    source = TagSource.RULE
    if tag.active and tag.rule is not None:
        condition = compile_rule(tag.rule, context)
        # Correlated: evaluated only for the range's holders of the tag.
        no_longer = ~members_matching(condition).where(Member.id == MemberTag.member_id).exists()
        matching = members_matching(condition).where(Member.id >= low, Member.id < high)
    else:
        matching = None
        no_longer = true()
    ended = and_(
        MemberTag.tag_id == tag.id,
        MemberTag.source == source,
        MemberTag.member_id >= low,
        MemberTag.member_id < high,
        no_longer,
    )
    removed = _end(session, ended, context.at.now)
    added = 0
    if matching is not None:
        held = aliased(MemberTag)
        newcomers = (
            matching.add_columns(
                literal(tag.id), literal(source.value), literal(context.at.now, MemberTag.since.type)
            )
            .outerjoin(held, _holding(held, Member.id, tag.id))
            .where(held.member_id.is_(None))
        )
        added = session.execute(
            insert(MemberTag).from_select(["member_id", "tag_id", "source", "since"], newcomers)
        ).rowcount  # type: ignore[attr-defined]
    return RefreshCounts(added, removed)


def _holding(held: Any, member_id: Any, tag_id: Any) -> ColumnElement[bool]:
    """Newcomers are the rows with no `held` row joined on this (a primary-key lookup each). As
    NOT EXISTS, MariaDB could instead materialise every holder of the tag for each range of members:
    a first night's rule tags took minutes instead of seconds when it did."""
    return and_(held.member_id == member_id, held.tag_id == tag_id)


# Keys of ended member tags moved per pair of statements.
END_CHUNK = 1000


def _end(
    session: Session,
    which: ColumnElement[bool],
    until: datetime,
    *,
    staff_id: int | None = None,
    operator_id: int | None = None,
) -> int:
    """Move the member tags selected by `which` to the history, ended at `until`.

    The keys are read first, then moved by key: one evaluation of `which` instead of one for the
    history and one for the delete, which could see different members if their data changed between."""
    keys = session.execute(select(MemberTag.member_id, MemberTag.tag_id).where(which)).all()
    for start in range(0, len(keys), END_CHUNK):
        chunk = keys[start : start + END_CHUNK]
        keyed = _keyed(session, chunk)
        history = select(
            MemberTag.member_id,
            MemberTag.tag_id,
            MemberTag.source,
            MemberTag.since,
            literal(until, MemberTagHistory.until.type),
            literal(staff_id),
            literal(operator_id),
        ).where(keyed)
        session.execute(
            insert(MemberTagHistory).from_select(
                [
                    "member_id",
                    "tag_id",
                    "source",
                    "since",
                    "until",
                    "removed_by_staff_id",
                    "removed_by_operator_id",
                ],
                history,
            )
        )
        session.execute(delete(MemberTag).where(keyed).execution_options(synchronize_session=False))
        for key in chunk:
            if (loaded := session.identity_map.get(identity_key(MemberTag, tuple(key)))) is not None:
                session.expunge(loaded)
    return len(keys)


def _keyed(session: Session, keys: Sequence[Sequence[int]]) -> ColumnElement[bool]:
    """Member tags with these (member_id, tag_id) keys.

    SQLite searches a row-value IN list by primary key. MariaDB spends ~0.1 ms per key planning such a
    list (and from 1,000 values on, its in_predicate_conversion_threshold turns it into a subquery that
    a DELETE cannot use an index for); joined to the keys as a derived table, it moves a key in ~30 µs.
    The keys are integers from the database, written into the statement: as bound parameters,
    SQLAlchemy spends longer building the statement than MariaDB running it."""
    if session.get_bind().dialect.name == "sqlite":
        return tuple_(MemberTag.member_id, MemberTag.tag_id).in_(keys)
    rows = " UNION ALL ".join(f"SELECT {int(member_id)}, {int(tag_id)}" for member_id, tag_id in keys)
    ended = text(f"SELECT 0 AS member_id, 0 AS tag_id FROM DUAL WHERE FALSE UNION ALL {rows}")
    table = ended.columns(column("member_id", Integer), column("tag_id", Integer)).subquery("ended")
    return and_(MemberTag.member_id == table.c.member_id, MemberTag.tag_id == table.c.tag_id)


# --- manual tags and reads --------------------------------------------------------------------------


def set_manual_tag(
    session: Session,
    member_id: int,
    tag_id: int,
    *,
    at: MallTime,
    staff_id: int | None = None,
    operator_id: int | None = None,
) -> MemberTag:
    """Give a member a manual tag (idempotent: an existing one is returned as it is)."""
    _manual_tag(session, tag_id)
    if session.get(Member, member_id) is None:
        raise NotFound("会员不存在")
    held = session.get(MemberTag, (member_id, tag_id))
    if held is not None:
        return held
    member_tag = MemberTag(
        member_id=member_id,
        tag_id=tag_id,
        source=TagSource.MANUAL,
        since=at.now,
        set_by_staff_id=staff_id,
        set_by_operator_id=operator_id,
    )
    session.add(member_tag)
    try:
        session.flush()
    except IntegrityError as exc:  # the same tag set at the same moment by someone else
        raise Conflict("标签已被设置，请刷新") from exc
    return member_tag


def remove_manual_tag(
    session: Session,
    member_id: int,
    tag_id: int,
    *,
    at: MallTime,
    staff_id: int | None = None,
    operator_id: int | None = None,
) -> bool:
    """Take a manual tag off a member, keeping it in the history. False if they did not have it."""
    _manual_tag(session, tag_id)
    which = and_(MemberTag.member_id == member_id, MemberTag.tag_id == tag_id)
    return _end(session, which, at.now, staff_id=staff_id, operator_id=operator_id) > 0


def _manual_tag(session: Session, tag_id: int) -> Tag:
    """The tag, if people may set it by hand (rules and the nightly job own the others)."""
    tag = get_tag(session, tag_id)
    if tag.kind is not TagKind.MANUAL:
        raise TagNotManual()
    return tag


def tags_of_member(session: Session, member_id: int) -> list[Any]:
    return list(
        session.execute(
            select(Tag.id, Tag.code, Tag.name, Tag.kind, MemberTag.source, MemberTag.since)
            .join(MemberTag, MemberTag.tag_id == Tag.id)
            .where(MemberTag.member_id == member_id)
            .order_by(Tag.kind, Tag.id)
        ).all()
    )


def tag_history_of_member(session: Session, member_id: int) -> list[Any]:
    return list(
        session.execute(
            select(
                Tag.id,
                Tag.code,
                Tag.name,
                MemberTagHistory.source,
                MemberTagHistory.since,
                MemberTagHistory.until,
            )
            .join(MemberTagHistory, MemberTagHistory.tag_id == Tag.id)
            .where(MemberTagHistory.member_id == member_id)
            .order_by(MemberTagHistory.until.desc(), MemberTagHistory.id.desc())
        ).all()
    )


def holders(session: Session, tag_id: int, *, after_member_id: int, limit: int) -> list[Any]:
    """Members holding the tag, by member id, a page at a time (keyset: after `after_member_id`)."""
    get_tag(session, tag_id)
    return list(
        session.execute(
            select(Member.id, Member.nickname, Member.phone_masked, MemberTag.source, MemberTag.since)
            .join(MemberTag, MemberTag.member_id == Member.id)
            .where(MemberTag.tag_id == tag_id, Member.id > after_member_id)
            .order_by(Member.id)
            .limit(limit)
        ).all()
    )

"""Tag rules: operators' JSON conditions over member data, compiled into one SQL condition.

A rule is a tree of groups and conditions:

    {"all": [<rule>, ...]}     every one holds          {"any": [<rule>, ...]}   at least one holds
    {"field": "days_since_last_purchase", "op": ">=", "value": 90}

Fields read the member row, its nightly `member_stats` row (absent for a member who joined since the
last refresh: counts and sums then read as 0, everything else as unknown) and, for coupons and tags,
EXISTS subqueries. Day counts are in business days of the mall: a purchase made yesterday (mall time)
is 1 day ago, whatever the hour. Compiled conditions compare columns with bound values computed here
(timestamps, month-day ranges), so they use indexes and read the same on SQLite and MariaDB.

A member without any purchase matches no condition on `days_since_last_purchase` (it is unknown);
select them with `purchase_count_365d = 0` or the lifecycle stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.mall_time import MallTime
from app.models import Coupon, CouponStatus, Member, QrScene, Tier
from app.models.tag import LifecycleStage, MemberStats, MemberTag, RfmSegment, Tag

MAX_DEPTH = 4
MAX_CONDITIONS = 30
MAX_LIST_VALUES = 200

COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
NUMBER_OPS = (*COMPARISONS, "between")
CHOICE_OPS = ("=", "!=", "in", "not_in")


class InvalidTagRule(DomainError):
    code, status, message = "INVALID_TAG_RULE", 422, "标签规则有误"


@dataclass(frozen=True)
class RuleContext:
    """What a rule is evaluated against: the business day and the references it names."""

    at: MallTime
    tier_ids_by_code: dict[str, int]
    tag_ids_by_code: dict[str, int]

    @classmethod
    def load(cls, session: Session, at: MallTime) -> RuleContext:
        return cls(
            at=at,
            tier_ids_by_code=dict(session.execute(select(Tier.code, Tier.id)).all()),
            tag_ids_by_code=dict(session.execute(select(Tag.code, Tag.id)).all()),
        )


Compiler = Callable[[str, Any, RuleContext, str], ColumnElement[bool]]


@dataclass(frozen=True)
class Field:
    label: str  # what operators see (Chinese)
    ops: tuple[str, ...]
    value_type: str  # "int", "str" or "bool"
    compile: Compiler
    choices: Callable[[RuleContext], Sequence[str]] | None = None


def compile_rule(rule: Any, context: RuleContext) -> ColumnElement[bool]:
    """The rule as a condition over `Member` left-joined with `MemberStats` (see `members_matching`).
    Raises InvalidTagRule, naming the faulty part, for anything malformed."""
    counter = [0]
    return _compile(rule, context, "rule", 0, counter)


def members_matching(condition: ColumnElement[bool]) -> Any:
    """SELECT members.id of the members a compiled rule hits (add ranges, counts or limits to it).
    Merged and deleted members are history, never a target (tags, segments, campaigns)."""
    return (
        select(Member.id)
        .select_from(Member)
        .outerjoin(MemberStats, MemberStats.member_id == Member.id)
        .where(condition, Member.merged_into_member_id.is_(None), Member.deleted_at.is_(None))
    )


def describe_fields(context: RuleContext) -> list[dict[str, Any]]:
    """The fields an operator can use, for the console's rule builder."""
    return [
        {
            "field": name,
            "label": field.label,
            "ops": list(field.ops),
            "value_type": field.value_type,
            "choices": list(field.choices(context)) if field.choices else None,
        }
        for name, field in FIELDS.items()
    ]


def _compile(
    rule: Any, context: RuleContext, path: str, depth: int, counter: list[int]
) -> ColumnElement[bool]:
    if not isinstance(rule, dict):
        raise _invalid(path, "应为对象")
    groups = [key for key in ("all", "any") if key in rule]
    if groups:
        if len(rule) != 1:
            raise _invalid(path, "分组只能包含 all 或 any 其中之一")
        if depth >= MAX_DEPTH:
            raise _invalid(path, f"嵌套不能超过 {MAX_DEPTH} 层")
        key = groups[0]
        members = rule[key]
        if not isinstance(members, list) or not members:
            raise _invalid(f"{path}.{key}", "应为非空数组")
        parts = [
            _compile(member, context, f"{path}.{key}[{index}]", depth + 1, counter)
            for index, member in enumerate(members)
        ]
        return and_(*parts) if key == "all" else or_(*parts)
    return _compile_condition(rule, context, path, counter)


def _compile_condition(
    rule: dict[str, Any], context: RuleContext, path: str, counter: list[int]
) -> ColumnElement[bool]:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _invalid(path, f"条件不能超过 {MAX_CONDITIONS} 个")
    unknown_keys = set(rule) - {"field", "op", "value"}
    if unknown_keys or not {"field", "op", "value"} <= set(rule):
        raise _invalid(path, "条件应包含 field、op、value")
    name, op, value = rule["field"], rule["op"], rule["value"]
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None:
        raise _invalid(f"{path}.field", f"未知字段：{name}")
    if op not in field.ops:
        raise _invalid(f"{path}.op", f"字段 {name} 支持的运算：{'、'.join(field.ops)}")
    _check_value(field, op, value, context, f"{path}.value")
    return field.compile(op, value, context, f"{path}.value")


def _check_value(field: Field, op: str, value: Any, context: RuleContext, path: str) -> None:
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2):
            raise _invalid(path, "between 需要 [下限, 上限]")
        items = value
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise _invalid(path, "应为非空数组")
        if len(value) > MAX_LIST_VALUES:
            raise _invalid(path, f"最多 {MAX_LIST_VALUES} 个值")
        items = value
    else:
        items = [value]
    for item in items:
        if not _is_type(item, field.value_type):
            raise _invalid(
                path, {"int": "应为整数", "str": "应为文本", "bool": "应为 true 或 false"}[field.value_type]
            )
    if field.value_type == "int" and any(item < 0 for item in items):
        raise _invalid(path, "不能为负数")
    if op == "between" and items[0] > items[1]:
        raise _invalid(path, "下限不能大于上限")
    if field.choices is not None:
        allowed = set(field.choices(context))
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise _invalid(path, f"未知的值：{'、'.join(map(str, unknown))}")


def _is_type(value: Any, value_type: str) -> bool:
    if value_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if value_type == "bool":
        return isinstance(value, bool)
    return isinstance(value, str) and 0 < len(value) <= 64


def _invalid(path: str, problem: str) -> InvalidTagRule:
    return InvalidTagRule(f"标签规则有误：{path} {problem}", details={"path": path, "problem": problem})


# --- how each kind of field compiles -------------------------------------------------------------


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "between":
        return column.between(value[0], value[1])
    if op == "in":
        return column.in_(value)
    if op == "not_in":
        return column.not_in(value)
    return {
        "=": column == value,
        "!=": column != value,
        ">": column > value,
        ">=": column >= value,
        "<": column < value,
        "<=": column <= value,
    }[op]


def _number(column_of: Callable[[], Any], *, missing_is_zero: bool = False) -> Compiler:
    def compile_number(op: str, value: Any, _context: RuleContext, _path: str) -> ColumnElement[bool]:
        column = column_of()
        return _compare(func.coalesce(column, 0) if missing_is_zero else column, op, value)

    return compile_number


def _days_since(column_of: Callable[[], Any]) -> Compiler:
    """Business days between the instant in the column and today: 0 for today, 1 for yesterday.

    `days >= n` means the instant is before the start of business day today − n + 1, and so on: the
    comparison is on the column itself, so an index on it is used."""

    def compile_days(op: str, value: Any, context: RuleContext, _path: str) -> ColumnElement[bool]:
        column = column_of()
        today = context.at.today

        def at_least(days: int) -> ColumnElement[bool]:
            return column < context.at.start_of(today - timedelta(days=days - 1))

        def at_most(days: int) -> ColumnElement[bool]:
            return column >= context.at.start_of(today - timedelta(days=days))

        if op == "between":
            return and_(at_least(value[0]), at_most(value[1]))
        if op == ">=":
            return at_least(value)
        if op == ">":
            return at_least(value + 1)
        if op == "<=":
            return at_most(value)
        if op == "<":
            return at_most(value - 1) if value > 0 else false()
        exactly = and_(at_least(value), at_most(value))
        return exactly if op == "=" else and_(column.is_not(None), not_(exactly))

    return compile_days


def _choice(
    column_of: Callable[[], Any], *, to_stored: Callable[[Any, RuleContext], Any] | None = None
) -> Compiler:
    def compile_choice(op: str, value: Any, context: RuleContext, _path: str) -> ColumnElement[bool]:
        convert = to_stored or (lambda item, _context: item)
        stored = (
            [convert(item, context) for item in value] if isinstance(value, list) else convert(value, context)
        )
        return _compare(column_of(), op, stored)

    return compile_choice


def _birthday_within(op: str, days: Any, context: RuleContext, path: str) -> ColumnElement[bool]:
    """Birthday (month and day) from today through today + days. 29 February counts on 28 February
    in a year without it."""
    if days > 366:
        raise _invalid(path, "不能超过 366 天")
    mmdd = MemberStats.birthday_mmdd
    days_in_window = [context.at.today + timedelta(days=offset) for offset in range(days + 1)]
    values = {day.month * 100 + day.day for day in days_in_window}
    if any(day.month == 2 and day.day == 28 and not _is_leap(day.year) for day in days_in_window):
        values.add(229)
    return or_(*(mmdd.between(low, high) for low, high in _ranges(sorted(values))))


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    """Month-day numbers grouped into runs of consecutive calendar days (e.g. 1230–1231, 101–107)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and _next_mmdd(runs[-1][1]) == value:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _next_mmdd(mmdd: int) -> int:
    following = date(2024, mmdd // 100, mmdd % 100) + timedelta(days=1)  # a leap year: 229 exists
    return following.month * 100 + following.day


def _coupon_expiring_within(op: str, days: Any, context: RuleContext, _path: str) -> ColumnElement[bool]:
    """Holds an available coupon whose last moment falls before the end of business day today + days."""
    ends_before = context.at.start_of(context.at.today + timedelta(days=days + 1))
    return exists().where(
        Coupon.member_id == Member.id,
        Coupon.status == CouponStatus.AVAILABLE,
        Coupon.valid_until > context.at.now,
        Coupon.valid_until <= ends_before,
    )


def _has_tag(op: str, value: Any, context: RuleContext, _path: str) -> ColumnElement[bool]:
    codes = value if isinstance(value, list) else [value]
    tag_ids = [context.tag_ids_by_code[code] for code in codes]
    holds = exists().where(MemberTag.member_id == Member.id, MemberTag.tag_id.in_(tag_ids))
    return holds if op in ("=", "in") else not_(holds)


def _has_advisor(op: str, value: Any, _context: RuleContext, _path: str) -> ColumnElement[bool]:
    bound = Member.advisor_id.is_not(None)
    return bound if value else Member.advisor_id.is_(None)


def _signup_store(op: str, value: Any, _context: RuleContext, _path: str) -> ColumnElement[bool]:
    store_ids = value if isinstance(value, list) else [value]
    from_store = Member.signup_scene_id.in_(select(QrScene.id).where(QrScene.store_id.in_(store_ids)))
    if op in ("=", "in"):
        return from_store
    return or_(Member.signup_scene_id.is_(None), not_(from_store))


def _tier_id(code: str, context: RuleContext) -> int:
    return context.tier_ids_by_code[code]


def _stats_count(name: str) -> Compiler:
    return _number(lambda: getattr(MemberStats, name), missing_is_zero=True)


FIELDS: dict[str, Field] = {
    "days_since_last_purchase": Field(
        "距上次消费天数", NUMBER_OPS, "int", _days_since(lambda: MemberStats.last_purchase_at)
    ),
    **{
        f"purchase_count_{days}d": Field(
            f"近 {days} 天消费次数", NUMBER_OPS, "int", _stats_count(f"purchases_{days}d")
        )
        for days in (30, 90, 180, 365)
    },
    **{
        f"spend_{days}d_fen": Field(
            f"近 {days} 天消费金额（分）", NUMBER_OPS, "int", _stats_count(f"spend_{days}d_fen")
        )
        for days in (30, 90, 180, 365)
    },
    "avg_ticket_365d_fen": Field(
        "近 365 天客单价（分）", NUMBER_OPS, "int", _stats_count("avg_ticket_365d_fen")
    ),
    "favourite_category": Field(
        "偏好品类", CHOICE_OPS, "str", _choice(lambda: MemberStats.favourite_category)
    ),
    "tier": Field(
        "会员等级",
        CHOICE_OPS,
        "str",
        _choice(lambda: Member.tier_id, to_stored=_tier_id),
        choices=lambda context: sorted(context.tier_ids_by_code),
    ),
    "points_balance": Field("积分余额", NUMBER_OPS, "int", _number(lambda: Member.points_balance)),
    "coupon_expiring_within_days": Field("有 N 天内到期的可用券", ("<=",), "int", _coupon_expiring_within),
    "birthday_within_days": Field("N 天内过生日", ("<=",), "int", _birthday_within),
    "days_since_joined": Field("入会天数", NUMBER_OPS, "int", _days_since(lambda: Member.joined_at)),
    "lifecycle_stage": Field(
        "生命周期",
        CHOICE_OPS,
        "str",
        _choice(lambda: MemberStats.lifecycle_stage, to_stored=lambda item, _context: LifecycleStage(item)),
        choices=lambda _context: [stage.value for stage in LifecycleStage],
    ),
    "rfm_segment": Field(
        "RFM 分层",
        CHOICE_OPS,
        "str",
        _choice(lambda: MemberStats.rfm_segment, to_stored=lambda item, _context: RfmSegment(item)),
        choices=lambda _context: [segment.value for segment in RfmSegment],
    ),
    "has_advisor": Field("已绑定专属顾问", ("=",), "bool", _has_advisor),
    "signup_scene_id": Field("注册渠道码", CHOICE_OPS, "int", _choice(lambda: Member.signup_scene_id)),
    "signup_store_id": Field("注册门店", CHOICE_OPS, "int", _signup_store),
    "tag": Field(
        "已有标签",
        CHOICE_OPS,
        "str",
        _has_tag,
        choices=lambda context: sorted(context.tag_ids_by_code),
    ),
}

"""The console's rule builder: condition rows posted by a form ⇄ the JSON rule of app.services.tag_rules.

Only the shape is handled here (rows to a rule, a rule to rows, a rule to a Chinese sentence); what a
rule means and whether it is valid stay in `tag_rules.compile_rule`, whose errors are reworded to name
the row ("第 2 个条件的值") instead of the JSON path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field as default_of
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from app.console.forms import format_yuan, parse_yuan, yuan_text
from app.errors import ValidationFailed
from app.mall_time import MallTime
from app.models import Tier
from app.models.tag import Tag
from app.services.tag_rules import InvalidTagRule, RuleContext, describe_fields
from app.services.tags import LIFECYCLE_NAMES, RFM_SEGMENT_NAMES

GROUPS = {"all": "满足全部条件", "any": "满足任一条件"}
OP_LABELS = {
    "=": "等于",
    "!=": "不等于",
    ">": "大于",
    ">=": "大于等于",
    "<": "小于",
    "<=": "小于等于",
    "between": "介于",
    "in": "属于其中之一",
    "not_in": "不属于其中任何一个",
}
SYMBOLS = {"=": "=", "!=": "≠", ">": ">", ">=": "≥", "<": "<", "<=": "≤"}
BOOL_TEXT = {True: "是", False: "否"}
MAX_ROWS = 30
LIST_SEPARATORS = re.compile(r"[,，、\s]+")
RANGE_SEPARATORS = re.compile(r"[,，~～\s]+")
ROW_PATH = re.compile(r"^rule\.(?:all|any)\[(\d+)\](?:\.(field|op|value))?$")
PART_NAMES = {"field": "字段", "op": "运算", "value": "值"}


class RuleFormInvalid(ValidationFailed):
    code, message = "INVALID_RULE_FORM", "规则填写有误"


@dataclass(frozen=True)
class RuleCatalog:
    """The fields a builder offers, with the names of the values operators pick from."""

    fields: list[dict[str, Any]]
    value_labels: dict[str, dict[str, str]]

    def field(self, name: str) -> dict[str, Any] | None:
        return next((item for item in self.fields if item["field"] == name), None)


def load_catalog(session: Session, at: MallTime, *, with_tags: bool) -> RuleCatalog:
    """Rule tags may not read other tags (see tags.create_tag); segments may."""
    value_labels = {
        "tier": dict(session.execute(select(Tier.code, Tier.name)).all()),
        "tag": dict(session.execute(select(Tag.code, Tag.name)).all()),
        "lifecycle_stage": {stage.value: name for stage, name in LIFECYCLE_NAMES.items()},
        "rfm_segment": {segment.value: name for segment, name in RFM_SEGMENT_NAMES.items()},
    }
    fields = [
        {**item, **_in_yuan(item), "value_labels": value_labels.get(item["field"], {})}
        for item in describe_fields(RuleContext.load(session, at))
        if with_tags or item["field"] != "tag"
    ]
    return RuleCatalog(fields, value_labels)


def _in_yuan(item: dict[str, Any]) -> dict[str, Any]:
    """Operators think in yuan: amounts (stored in fen) are typed and shown in yuan."""
    if not _is_money(item["field"]):
        return {}
    return {"label": item["label"].replace("（分）", "（元）"), "unit": "yuan"}


def _is_money(field_name: str) -> bool:
    return field_name.endswith("_fen")


@dataclass
class ConditionRow:
    field: str = ""
    op: str = ""
    value: str = ""


@dataclass
class RuleDraft:
    """What the builder shows: a group of rows, or (for a nested rule) its JSON text."""

    match: str = "all"
    rows: list[ConditionRow] = default_of(default_factory=lambda: [ConditionRow()])
    json_text: str | None = None


def draft_from_form(form: MultiDict[str, str]) -> RuleDraft:
    """The builder's rows as posted (parallel lists `field`, `op`, `value`); blank rows are dropped."""
    if form.get("rule_json") is not None:
        return RuleDraft(json_text=form.get("rule_json", ""))
    fields, ops, values = (form.getlist(name) for name in ("field", "op", "value"))
    count = max(len(fields), len(ops), len(values))

    def cell(column: list[str], index: int) -> str:
        return column[index].strip() if index < len(column) else ""

    rows = [ConditionRow(cell(fields, i), cell(ops, i), cell(values, i)) for i in range(count)]
    rows = [row for row in rows if row.field or row.value]
    match = form.get("match", "all")
    return RuleDraft(match=match if match in GROUPS else "all", rows=rows)


def draft_from_rule(rule: Any) -> RuleDraft:
    """Rows for a flat rule (one group of conditions, or a single condition); JSON text otherwise."""
    if isinstance(rule, dict) and {"field", "op", "value"} == set(rule):
        return RuleDraft("all", [_row_of(rule)])
    if isinstance(rule, dict) and len(rule) == 1:
        ((match, parts),) = rule.items()
        if match in GROUPS and isinstance(parts, list) and parts and all(_is_condition(p) for p in parts):
            return RuleDraft(match, [_row_of(part) for part in parts])
    return RuleDraft(json_text=json.dumps(rule, ensure_ascii=False, indent=2))


def _is_condition(part: Any) -> bool:
    return isinstance(part, dict) and {"field", "op", "value"} == set(part)


def _row_of(condition: dict[str, Any]) -> ConditionRow:
    field_name = str(condition["field"])
    return ConditionRow(field_name, condition["op"], _value_text(condition["value"], _is_money(field_name)))


def _value_text(value: Any, money: bool) -> str:
    if isinstance(value, list):
        return ", ".join(_value_text(item, money) for item in value)
    if isinstance(value, bool):
        return BOOL_TEXT[value]
    if money and isinstance(value, int):
        return yuan_text(value, compact=True)
    return str(value)


def rule_of(draft: RuleDraft, catalog: RuleCatalog) -> dict[str, Any]:
    """The JSON rule the draft stands for. Only the form's shape is checked here (a row without a
    field or value); everything else is for `compile_rule` to judge."""
    if draft.json_text is not None:
        try:
            rule = json.loads(draft.json_text)
        except ValueError as exc:
            raise RuleFormInvalid("规则 JSON 格式有误，请检查括号与引号") from exc
        if not isinstance(rule, dict):
            raise RuleFormInvalid("规则 JSON 应为对象")
        return rule
    if not draft.rows:
        raise RuleFormInvalid("请至少添加一个条件")
    if len(draft.rows) > MAX_ROWS:
        raise RuleFormInvalid(f"条件不能超过 {MAX_ROWS} 个")
    conditions = []
    for number, row in enumerate(draft.rows, start=1):
        described = catalog.field(row.field)
        if described is None:
            raise RuleFormInvalid(f"第 {number} 个条件：请选择字段")
        if not row.value:
            raise RuleFormInvalid(f"第 {number} 个条件：请填写值")
        value = _typed(row.op, row.value, described)
        if described.get("unit") == "yuan" and any(isinstance(item, str) for item in _items(value)):
            raise RuleFormInvalid(f"第 {number} 个条件：金额应为数字（元），最多两位小数")
        conditions.append({"field": row.field, "op": row.op, "value": value})
    return {draft.match: conditions}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _typed(op: str, text: str, described: dict[str, Any]) -> Any:
    if op == "between":
        return [_scalar(part, described) for part in RANGE_SEPARATORS.split(text) if part]
    if op in ("in", "not_in"):
        return [_scalar(part, described) for part in LIST_SEPARATORS.split(text) if part]
    return _scalar(text, described)


def _scalar(text: str, described: dict[str, Any]) -> Any:
    """Text as the field's type where it reads as one; left as text otherwise, for the rule's own
    check to refuse with its message."""
    if described.get("unit") == "yuan":
        try:
            return parse_yuan(text)
        except ValueError:
            return text
    if described["value_type"] == "int" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if described["value_type"] == "bool":
        return {"是": True, "true": True, "否": False, "false": False}.get(text.lower(), text)
    if described["value_type"] == "str" and described["choices"]:
        # Operators may type the name they see (金卡) instead of the code (gold).
        by_name = {name: code for code, name in _labels_for(described).items()}
        return by_name.get(text, text)
    return text


def _labels_for(described: dict[str, Any]) -> dict[str, str]:
    return described.get("value_labels") or {}


def error_text(error: InvalidTagRule) -> str:
    """The rule's error, naming the row of the builder when it is about one."""
    details = error.details if isinstance(error.details, dict) else {}
    found = ROW_PATH.match(str(details.get("path", "")))
    if not found:
        return error.message
    number, part = int(found.group(1)) + 1, found.group(2)
    where = f"第 {number} 个条件" + (f"的{PART_NAMES[part]}" if part else "")
    return f"{where}：{details.get('problem', error.message)}"


def summarize(rule: Any, catalog: RuleCatalog) -> str:
    """The rule as a sentence, e.g. "距上次消费天数 ≥ 90 且 会员等级 属于其中之一 金卡、钻石卡"."""
    return _sentence(rule, catalog, top=True)


def _sentence(rule: Any, catalog: RuleCatalog, *, top: bool) -> str:
    if not isinstance(rule, dict):
        return "—"
    for key, joiner in (("all", " 且 "), ("any", " 或 ")):
        if key in rule and isinstance(rule[key], list):
            text = joiner.join(_sentence(part, catalog, top=False) for part in rule[key])
            return text if top or len(rule[key]) == 1 else f"（{text}）"
    described = catalog.field(str(rule.get("field")))
    label = described["label"] if described else str(rule.get("field"))
    op = str(rule.get("op"))
    op_text = SYMBOLS.get(op) or OP_LABELS.get(op, op)
    return f"{label} {op_text} {_shown(rule.get('value'), str(rule.get('field')), catalog, op)}"


def _shown(value: Any, field_name: str, catalog: RuleCatalog, op: Any) -> str:
    if isinstance(value, list):
        parts = [_shown(item, field_name, catalog, None) for item in value]
        return " 至 ".join(parts) if op == "between" else "、".join(parts)
    if isinstance(value, bool):
        return BOOL_TEXT[value]
    if field_name.endswith("_fen") and isinstance(value, int):
        return format_yuan(value)
    return catalog.value_labels.get(field_name, {}).get(str(value), str(value))

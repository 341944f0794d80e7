"""Tags, rule previews, members' tags, segmentation settings and KPI trends for operators."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.tag_schemas import (
    HolderOut,
    HoldersArgs,
    KpiArgs,
    KpiDayOut,
    MemberTagsOut,
    PreviewOut,
    SegmentationSettingsIn,
    SegmentationSettingsOut,
    SegmentIn,
    SegmentMemberOut,
    SegmentOut,
    TagIn,
    TagOut,
    TagRuleFieldOut,
    TagRuleIn,
    TagUpdateIn,
)
from app.db import report_transaction, run_transaction, transaction
from app.errors import Conflict, NotFound, raises
from app.extensions import mall_time
from app.models.kpi import KpiDaily
from app.models.tag import Segment, SegmentationSettings, Tag
from app.services import kpis, segmentation, segments, tag_rules, tags
from app.services.tag_rules import RuleContext, describe_fields

blp = Blueprint(
    "admin_tag_views", __name__, url_prefix="/api/admin/v1", description="运营后台：标签、分层与指标"
)


@blp.route("/tag-rules/fields", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TagRuleFieldOut(many=True))
def rule_fields() -> list[dict[str, Any]]:
    """规则可用的字段、运算与可选值"""
    with transaction() as session:
        return describe_fields(RuleContext.load(session, mall_time()))


@blp.route("/tag-rules/preview", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TagRuleIn())
@blp.response(200, PreviewOut)
def preview_rule(args: dict[str, Any]) -> tags.Preview:
    """预览规则：当前命中的会员数与前 10 位会员（按最近一次夜间刷新的数据）"""
    with transaction() as session:
        return tags.preview(session, args["rule"], mall_time())


@blp.route("/tags", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TagOut(many=True))
def list_tags() -> list[dict[str, Any]]:
    """全部标签（系统、规则、手工）及持有人数"""
    with transaction() as session:
        counts = tags.holder_counts(session)
        return [_tag_out(tag, counts.get(tag.id, 0)) for tag in tags.list_tags(session)]


@blp.route("/tags", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TagIn())
@blp.response(201, TagOut)
@raises(tags.TagCodeTaken, tags.TagReadOnly, tag_rules.InvalidTagRule)
def create_tag(args: dict[str, Any]) -> dict[str, Any]:
    """新建规则标签或手工标签；规则标签在下次夜间刷新（或 flask tags refresh）时打到会员身上"""
    operator_id, at = current_operator().id, mall_time()
    tag = run_transaction(lambda session: tags.create_tag(session, **args, operator_id=operator_id, at=at))
    return _tag_out(tag, 0)


@blp.route("/tags/<int:tag_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TagUpdateIn())
@blp.response(200, TagOut)
@raises(NotFound, tags.TagReadOnly, tag_rules.InvalidTagRule)
def update_tag(args: dict[str, Any], tag_id: int) -> dict[str, Any]:
    """修改标签名称、规则或启停；系统标签不可修改"""
    at = mall_time()

    def work(session: Any) -> dict[str, Any]:
        tag = tags.update_tag(session, tag_id, **args, at=at)
        return _tag_out(tag, tags.holder_counts(session).get(tag.id, 0))

    return run_transaction(work)


@blp.route("/tags/<int:tag_id>/members", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(HoldersArgs(), location="query")
@blp.response(200, HolderOut(many=True))
@raises(NotFound)
def tag_holders(args: dict[str, Any], tag_id: int) -> list[Any]:
    """持有该标签的会员，按会员号分页（after = 上一页最后的会员号）"""
    with transaction() as session:
        return tags.holders(session, tag_id, after_member_id=args["after"], limit=args["limit"])


@blp.route("/members/<int:member_id>/tags", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, MemberTagsOut)
def member_tags(member_id: int) -> dict[str, Any]:
    """会员当前的标签与历史标签"""
    with transaction() as session:
        return {
            "current": tags.tags_of_member(session, member_id),
            "history": tags.tag_history_of_member(session, member_id),
        }


@blp.route("/members/<int:member_id>/tags/<int:tag_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound, Conflict, tags.TagNotManual)
def set_member_tag(member_id: int, tag_id: int) -> None:
    """给会员打手工标签（重复设置无影响）"""
    operator_id, at = current_operator().id, mall_time()
    run_transaction(
        lambda session: tags.set_manual_tag(session, member_id, tag_id, at=at, operator_id=operator_id)
    )


@blp.route("/members/<int:member_id>/tags/<int:tag_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound, tags.TagNotManual)
def remove_member_tag(member_id: int, tag_id: int) -> None:
    """移除会员的手工标签（保留在历史中）"""
    operator_id, at = current_operator().id, mall_time()
    run_transaction(
        lambda session: tags.remove_manual_tag(session, member_id, tag_id, at=at, operator_id=operator_id)
    )


@blp.route("/segmentation-settings", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, SegmentationSettingsOut)
def get_segmentation_settings() -> SegmentationSettings:
    """RFM 统计窗口与生命周期阈值"""
    with transaction() as session:
        return segmentation.settings_of(session)


@blp.route("/segmentation-settings", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(SegmentationSettingsIn())
@blp.response(200, SegmentationSettingsOut)
def put_segmentation_settings(args: dict[str, Any]) -> SegmentationSettings:
    """修改 RFM 窗口与生命周期阈值（下次夜间刷新生效）"""
    operator_id = current_operator().id
    return run_transaction(lambda session: segmentation.save_settings(session, args, operator_id=operator_id))


@blp.route("/kpis", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(KpiArgs(), location="query")
@blp.response(200, KpiDayOut(many=True))
def kpi_trend(args: dict[str, Any]) -> list[KpiDaily]:
    """每日指标趋势（全场或单店）；某天的指标可用 flask kpis compute --date 重算"""
    with report_transaction() as session:
        return kpis.trend(session, args["from_"], args["to"], args["store_id"])


@blp.route("/segments", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, SegmentOut(many=True))
def list_segments() -> list[dict[str, Any]]:
    """人群分组及其当前人数"""
    at = mall_time()
    with transaction() as session:
        return [
            _segment_out(segment, segments.live_count(session, segment, at))
            for segment in segments.list_segments(session)
        ]


@blp.route("/segments", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(SegmentIn())
@blp.response(201, SegmentOut)
@raises(segments.SegmentNameTaken)
def create_segment(args: dict[str, Any]) -> dict[str, Any]:
    """新建人群分组（标签与会员条件的组合），可作为发券活动的目标人群"""
    operator_id, at = current_operator().id, mall_time()

    def work(session: Any) -> dict[str, Any]:
        segment = segments.create_segment(session, **args, operator_id=operator_id, at=at)
        return _segment_out(segment, segments.live_count(session, segment, at))

    return run_transaction(work)


@blp.route("/segments/<int:segment_id>", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, SegmentOut)
@raises(NotFound)
def get_segment(segment_id: int) -> dict[str, Any]:
    """人群分组及其当前人数"""
    at = mall_time()
    with transaction() as session:
        segment = segments.get_segment(session, segment_id)
        return _segment_out(segment, segments.live_count(session, segment, at))


@blp.route("/segments/<int:segment_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(SegmentIn())
@blp.response(200, SegmentOut)
@raises(NotFound, segments.SegmentNameTaken)
def update_segment(args: dict[str, Any], segment_id: int) -> dict[str, Any]:
    """修改人群分组"""
    at = mall_time()

    def work(session: Any) -> dict[str, Any]:
        segment = segments.update_segment(session, segment_id, **args, at=at)
        return _segment_out(segment, segments.live_count(session, segment, at))

    return run_transaction(work)


@blp.route("/segments/<int:segment_id>", methods=["DELETE"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(204)
@raises(NotFound, segments.SegmentInUse)
def delete_segment(segment_id: int) -> None:
    """删除人群分组（已用于发券活动的不能删除）"""
    run_transaction(lambda session: segments.delete_segment(session, segment_id))


@blp.route("/segments/<int:segment_id>/members", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(HoldersArgs(), location="query")
@blp.response(200, SegmentMemberOut(many=True))
@raises(NotFound)
def segment_members(args: dict[str, Any], segment_id: int) -> list[Any]:
    """人群中的会员，按会员号分页（after = 上一页最后的会员号）"""
    at = mall_time()
    with transaction() as session:
        segment = segments.get_segment(session, segment_id)
        return segments.member_page(session, segment, at, after_member_id=args["after"], limit=args["limit"])


def _segment_out(segment: Segment, members: int) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "rule": segment.rule,
        "description": segment.description,
        "members": members,
    }


def _tag_out(tag: Tag, members: int) -> dict[str, Any]:
    return {
        "id": tag.id,
        "code": tag.code,
        "name": tag.name,
        "kind": tag.kind,
        "rule": tag.rule,
        "description": tag.description,
        "active": tag.active,
        "members": members,
    }

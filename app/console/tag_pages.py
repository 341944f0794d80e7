"""Console pages of tags: the list with holders and rule summaries, a tag's holders, the rule builder
(create and edit a rule tag, with a live count of the members a draft rule hits).

The preview and the saved tag go through `tags.preview` and `tags.create_tag` / `tags.update_tag`, the
functions the admin API uses: the count is the nightly refresh's own rule evaluation."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.forms import FORM_STATUSES, load_form
from app.console.pages import MARKETING_VIEWERS, audit_console_action, bp, console_operator, console_page
from app.console.rule_form import (
    GROUPS,
    OP_LABELS,
    RuleCatalog,
    RuleDraft,
    draft_from_form,
    draft_from_rule,
    error_text,
    load_catalog,
    rule_of,
    summarize,
)
from app.console.tag_schemas import HoldersArgs, TagIn, TagUpdateIn
from app.db import run_transaction, transaction
from app.errors import DomainError
from app.extensions import mall_time
from app.models import OperatorRole
from app.models.tag import Tag, TagKind, TagSource
from app.services import audit, tags
from app.services.tag_rules import InvalidTagRule

VIEWERS = MARKETING_VIEWERS
EDITORS = (OperatorRole.ADMIN, OperatorRole.MARKETING)
PAGE_SIZE = 50
KIND_LABELS = {TagKind.SYSTEM: "系统", TagKind.RULE: "规则", TagKind.MANUAL: "手工"}
SOURCE_LABELS = {TagSource.SYSTEM: "系统", TagSource.RULE: "规则", TagSource.MANUAL: "手工"}
TAG_FORM_LABELS = {
    "code": "标签编码",
    "name": "名称",
    "description": "说明",
    "rule": "规则",
    "active": "状态",
}


# Form problems are shown on the form again; anything else (403, 404) is the error page.
def can_change() -> bool:
    return console_operator().role in EDITORS


def page_after() -> tuple[int, int]:
    """Keyset paging by member id: (after, limit) from the query string, checked by the API's schema."""
    args = load_form(HoldersArgs(), {"after": request.args.get("after") or 0, "limit": PAGE_SIZE})
    return args["after"], args["limit"]


def builder_context(catalog: RuleCatalog, draft: RuleDraft) -> dict[str, Any]:
    return {"catalog": catalog, "draft": draft, "groups": GROUPS, "op_labels": OP_LABELS}


@bp.get("/tags")
@console_page(*VIEWERS)
def tags_list() -> str:
    kind = request.args.get("kind", "")
    with transaction() as session:
        catalog = load_catalog(session, mall_time(), with_tags=True)
        counts = tags.holder_counts(session)
        rows = [
            {
                "tag": tag,
                "holders": counts.get(tag.id, 0),
                "summary": summarize(tag.rule, catalog) if tag.rule else "—",
            }
            for tag in tags.list_tags(session)
            if not kind or tag.kind.value == kind
        ]
    return render_template(
        "console/tags.html", rows=rows, kind=kind, kind_labels=KIND_LABELS, can_change=can_change()
    )


@bp.get("/tags/<int:tag_id>")
@console_page(*VIEWERS)
def tag_detail(tag_id: int) -> str:
    after, limit = page_after()
    with transaction() as session:
        tag = tags.get_tag(session, tag_id)
        catalog = load_catalog(session, mall_time(), with_tags=True)
        holders = tags.holders(session, tag_id, after_member_id=after, limit=limit + 1)
        total = tags.holder_counts(session).get(tag_id, 0)
    return render_template(
        "console/tag_detail.html",
        tag=tag,
        summary=summarize(tag.rule, catalog) if tag.rule else None,
        holders=holders[:limit],
        next_after=holders[limit - 1].id if len(holders) > limit else None,
        after=after,
        total=total,
        kind_labels=KIND_LABELS,
        source_labels=SOURCE_LABELS,
        can_edit=can_change() and tag.kind is not TagKind.SYSTEM,
    )


@bp.route("/tags/new", methods=["GET", "POST"])
@console_page(*EDITORS)
def tag_new() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return _tag_form(None, {}, RuleDraft(), None)
    draft = draft_from_form(request.form)
    values = _tag_fields()
    operator_id, at = console_operator().id, mall_time()

    def create(session: Session) -> int:
        rule = rule_of(draft, load_catalog(session, at, with_tags=False))
        args = load_form(
            TagIn(), {**values, "kind": TagKind.RULE.value, "rule": rule}, labels=TAG_FORM_LABELS
        )
        tag = tags.create_tag(session, **args, operator_id=operator_id, at=at)
        audit_console_action(
            session, "tag.create", "tag", tag.id, {"code": tag.code, "name": tag.name, "rule": tag.rule}
        )
        return tag.id

    try:
        tag_id = run_transaction(create)
    except DomainError as error:
        if error.status not in FORM_STATUSES:
            raise
        return _tag_form(None, values, draft, message_of(error)), error.status
    return redirect(url_for("console.tag_detail", tag_id=tag_id))


@bp.route("/tags/<int:tag_id>/edit", methods=["GET", "POST"])
@console_page(*EDITORS)
def tag_edit(tag_id: int) -> Response | str | tuple[str, int]:
    with transaction() as session:
        tag = tags.get_tag(session, tag_id)
        if tag.kind is TagKind.SYSTEM:
            raise tags.TagReadOnly()
    if request.method == "GET":
        current = {"name": tag.name, "description": tag.description or "", "active": tag.active}
        return _tag_form(tag, current, draft_from_rule(tag.rule), None)
    draft = draft_from_form(request.form)
    values = {**_tag_fields(), "active": request.form.get("active") == "1"}
    at = mall_time()

    def update(session: Session) -> None:
        rule = (
            rule_of(draft, load_catalog(session, at, with_tags=False)) if tag.kind is TagKind.RULE else None
        )
        args = load_form(TagUpdateIn(), {**values, "rule": rule}, labels=TAG_FORM_LABELS)
        stored = tags.get_tag(session, tag_id)
        before = {
            "name": stored.name,
            "description": stored.description,
            "active": stored.active,
            "rule": stored.rule,
        }
        tags.update_tag(session, tag_id, **args, at=at)
        after: dict[str, Any] = {
            "name": stored.name,
            "description": stored.description,
            "active": stored.active,
        }
        if stored.kind is TagKind.RULE:
            after["rule"] = stored.rule
        audit_console_action(session, "tag.update", "tag", tag_id, audit.changes(before, after))

    try:
        run_transaction(update)
    except DomainError as error:
        if error.status not in FORM_STATUSES:
            raise
        return _tag_form(tag, values, draft, message_of(error)), error.status
    return redirect(url_for("console.tag_detail", tag_id=tag_id))


@bp.post("/rules/preview")
@console_page(*EDITORS, changes_data=False)
def rule_preview() -> str | tuple[str, int]:
    """The builder's live count (an htmx fragment): the draft rule through `tags.preview`."""
    draft = draft_from_form(request.form)
    at = mall_time()
    try:
        with transaction() as session:
            rule = rule_of(draft, load_catalog(session, at, with_tags=True))
            preview = tags.preview(session, rule, at)
    except DomainError as error:
        if error.status not in FORM_STATUSES:
            raise
        return render_template("console/_rule_preview.html", error=message_of(error)), error.status
    return render_template("console/_rule_preview.html", preview=preview, error=None)


def _tag_fields() -> dict[str, Any]:
    form = request.form
    fields = {
        "name": form.get("name", "").strip(),
        "description": form.get("description", "").strip() or None,
    }
    if "code" in form:
        fields["code"] = form.get("code", "").strip()
    return fields


def message_of(error: DomainError) -> str:
    return error_text(error) if isinstance(error, InvalidTagRule) else error.message


def _tag_form(tag: Tag | None, values: dict[str, Any], draft: RuleDraft, error: str | None) -> str:
    with transaction() as session:
        catalog = load_catalog(session, mall_time(), with_tags=False)
    return render_template(
        "console/tag_form.html",
        tag=tag,
        values=values,
        error=error,
        with_builder=tag is None or tag.kind is TagKind.RULE,
        kind_labels=KIND_LABELS,
        **builder_context(catalog, draft),
    )

"""The audit log keeps what happened, newest first, and finds it by operator, action and target."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.services import audit
from tests import factories


def test_events_are_filtered_and_paged_newest_first(session: Session) -> None:
    ops = factories.create_operator(session, "ops", "pw-123456")
    other = factories.create_operator(session, "other", "pw-123456")
    first = audit.record(
        session, operator_id=ops.id, action="member.view_phone", target_type="member", target_id=7
    )
    audit.record(
        session,
        operator_id=ops.id,
        action="points.adjust",
        target_type="member",
        target_id=7,
        detail={"points": 50, "reason": "补录"},
        client_ip="10.0.0.1",
    )
    audit.record(session, operator_id=other.id, action="member.view_phone", target_type="member", target_id=8)

    newest = audit.events(session, audit.AuditQuery(limit=2))
    assert [event.action for event in newest] == ["member.view_phone", "points.adjust"]
    older = audit.events(session, audit.AuditQuery(before_id=newest[-1].id))
    assert [event.id for event in older] == [first.id]

    by_ops = audit.events(session, audit.AuditQuery(operator_id=ops.id, action_prefix="member."))
    assert [event.target_id for event in by_ops] == ["7"]
    on_member = audit.events(session, audit.AuditQuery(target_type="member", target_id="7"))
    assert {event.action for event in on_member} == {"member.view_phone", "points.adjust"}
    assert on_member[0].detail == {"points": 50, "reason": "补录"} and on_member[0].client_ip == "10.0.0.1"


def test_changes_lists_only_what_differs() -> None:
    assert audit.changes({"name": "银卡", "threshold": 100}, {"name": "银卡", "threshold": 200}) == {
        "threshold": [100, 200]
    }

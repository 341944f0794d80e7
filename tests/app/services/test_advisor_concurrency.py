"""Advisors racing for the same pool member with real threads on MariaDB: exactly one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.errors import DomainError
from app.extensions import extensions
from app.models import AdvisorAssignment, Member, QrScene, SceneKind, Staff, StaffRole
from app.services import advisors
from tests import factories

pytestmark = pytest.mark.mariadb

CLAIMANTS = 16


def test_sixteen_advisors_claiming_one_member_leave_one_winner(app: Flask, session: Session) -> None:
    tier = factories.create_tiers(session)[0]
    store = factories.create_store(session)
    scene = QrScene(kind=SceneKind.STORE, name="门店码", scene="store-race", store_id=store.id)
    session.add(scene)
    session.flush()
    staff_ids = [
        factories.create_staff(session, f"advisor{n:02d}", StaffRole.ADVISOR, store_id=store.id).id
        for n in range(CLAIMANTS)
    ]
    with app.app_context():
        vault = extensions().phone_vault
    member = factories.create_member(session, vault, "13400000000", tier, signup_scene_id=scene.id)
    session.commit()

    def claim(staff_id: int) -> str:
        try:
            run_transaction(
                lambda s: advisors.claim_member(s, s.get_one(Staff, staff_id), member.id, at=utcnow()),
                app=app,
            )
            return "won"
        except DomainError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=CLAIMANTS) as pool:
        outcomes = list(pool.map(claim, staff_ids))

    assert sorted(outcomes) == ["MEMBER_ALREADY_ASSIGNED"] * (CLAIMANTS - 1) + ["won"]
    winner = staff_ids[outcomes.index("won")]
    assert session.get_one(Member, member.id, populate_existing=True).advisor_id == winner
    assert session.scalar(select(func.count()).select_from(AdvisorAssignment)) == 1
    assert session.scalars(select(AdvisorAssignment.staff_id)).one() == winner

"""Changing a part of the points settings keeps the rest, even when two operators save at once."""

from __future__ import annotations

import threading
import time
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.db import transaction
from app.mall_time import MallTime
from app.models import PointsSettings
from app.services import points_rules
from tests import factories

AT = MallTime.current(ZoneInfo("Asia/Shanghai"))


def test_a_partial_change_keeps_the_other_settings(app: Flask, session: Session) -> None:
    operator = factories.create_operator(session)
    with transaction(app) as work:
        points_rules.change_settings(work, {"checkin_points": 9}, operator_id=operator.id, at=AT)
    with transaction(app) as work:
        points_rules.change_settings(work, {"referrer_points": 300}, operator_id=operator.id, at=AT)

    saved = session.get_one(PointsSettings, 1)
    assert (saved.checkin_points, saved.referrer_points) == (9, 300)
    assert saved.welcome_points == PointsSettings.DEFAULTS["welcome_points"]


def test_only_settings_can_be_changed(app: Flask, session: Session) -> None:
    operator = factories.create_operator(session)
    with pytest.raises(ValueError, match="balance"), transaction(app) as work:
        points_rules.change_settings(work, {"balance": 1}, operator_id=operator.id, at=AT)


@pytest.mark.mariadb
def test_a_change_waits_for_another_in_progress_and_keeps_it(app: Flask, session: Session) -> None:
    operator = factories.create_operator(session)
    with transaction(app) as work:
        points_rules.change_settings(work, {"checkin_points": 1}, operator_id=operator.id, at=AT)

    def referral_change() -> None:
        with transaction(app) as work:
            points_rules.change_settings(work, {"referrer_points": 300}, operator_id=operator.id, at=AT)

    with transaction(app) as first:
        points_rules.change_settings(first, {"checkin_points": 9}, operator_id=operator.id, at=AT)
        second = threading.Thread(target=referral_change)
        second.start()
        time.sleep(0.5)  # the second change is now reading the settings, or waiting to
    second.join(timeout=10)

    saved = session.get_one(PointsSettings, 1, populate_existing=True)
    assert (saved.checkin_points, saved.referrer_points) == (9, 300)

"""Upgrading a database that already holds data, step by step from the first revision (SQLite)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from app.cli import alembic_config


def test_a_populated_first_revision_database_upgrades_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tiers (id, code, name, rank, min_annual_spend_fen, points_multiplier_percent,"
                " free_parking_minutes_per_day) VALUES (1, 'normal', '普卡', 1, 0, 100, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO members (id, phone_ciphertext, phone_index, phone_masked, tier_id,"
                " points_balance, source, joined_at)"
                " VALUES (1, x'00', 'idx', '138****0000', 1, 0, 'wechat', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO wechat_accounts (id, appid, openid, member_id, created_at, last_login_at)"
                " VALUES (1, 'wx', 'o1', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )

    command.upgrade(config, "head")

    with engine.connect() as connection:
        assert connection.execute(text("SELECT points_debt FROM members WHERE id = 1")).scalar() == 0
        assert connection.execute(text("SELECT member_id FROM wechat_accounts")).scalar() == 1
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()

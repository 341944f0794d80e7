"""Merged members: the member a merged one was folded into, and when.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-25 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("merged_into_member_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("merged_at", app.db.UTCDateTime(), nullable=True))
        batch.create_index(batch.f("ix_members_merged_into_member_id"), ["merged_into_member_id"])
        batch.create_foreign_key(
            batch.f("fk_members_merged_into_member_id_members"), "members", ["merged_into_member_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_constraint(batch.f("fk_members_merged_into_member_id_members"), type_="foreignkey")
        batch.drop_index(batch.f("ix_members_merged_into_member_id"))
        batch.drop_column("merged_at")
        batch.drop_column("merged_into_member_id")

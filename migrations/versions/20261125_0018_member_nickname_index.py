"""Members by nickname: operators search nicknames by prefix, which an index answers without a scan.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-25 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_members_nickname"), "members", ["nickname"])


def downgrade() -> None:
    op.drop_index(op.f("ix_members_nickname"), table_name="members")

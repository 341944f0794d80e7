"""Coupon templates get a revision, bumped by every edit of their terms, so that a worker can keep
a copy of a template for claims and know when it is stale.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coupon_templates") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("coupon_templates") as batch:
        batch.drop_column("revision")

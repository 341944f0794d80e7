"""Deleted members (PIPL account deletion and retention purge) and revoked WeChat accounts.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-25 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("deleted_at", app.db.UTCDateTime(), nullable=True))
    with op.batch_alter_table("wechat_accounts") as batch:
        batch.add_column(sa.Column("revoked_at", app.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wechat_accounts") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("deleted_at")

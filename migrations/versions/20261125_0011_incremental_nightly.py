"""An incremental nightly refresh: member statistics lose `as_of` (stamping every row with the day
made every night rewrite all of them) and note the day a member entered their RFM segment; each
night's watermarks are kept (`stats_refreshes`) so the next one recomputes only the members whose
figures can have changed, queued in `member_stats_queue`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    with op.batch_alter_table("member_stats") as batch:
        batch.drop_column("as_of")
        batch.add_column(sa.Column("rfm_segment_since", sa.Date(), nullable=True))
    op.create_table(
        "stats_refreshes",
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("purchase_watermark", sa.Integer(), nullable=False),
        sa.Column("refund_watermark", sa.Integer(), nullable=False),
        sa.Column("settings_key", sa.String(length=64), nullable=False),
        sa.Column("stats_finished_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("tags_finished_at", app.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("business_date", name=op.f("pk_stats_refreshes")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "member_stats_queue",
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_stats_queue")),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("member_stats_queue")
    op.drop_table("stats_refreshes")
    with op.batch_alter_table("member_stats") as batch:
        batch.drop_column("rfm_segment_since")
        batch.add_column(sa.Column("as_of", sa.Date(), nullable=True))

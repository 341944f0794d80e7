"""Purchases: the member index and the time index also carry what the nightly statistics and the
daily KPIs read (time, member, store, amounts), so those read the indexes alone (they replace
ix_purchases_member_id_purchased_at and ix_purchases_purchased_at).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEMBER_COVER = ["member_id", "purchased_at", "amount_fen", "refunded_fen", "store_id"]
TIME_COVER = ["purchased_at", "member_id", "store_id", "amount_fen", "refunded_fen"]


def upgrade() -> None:
    # Created before the old one is dropped: the foreign key on member_id always has an index.
    with op.batch_alter_table("purchases") as batch:
        batch.create_index("ix_purchases_member_cover", MEMBER_COVER, unique=False)
        batch.create_index("ix_purchases_time_cover", TIME_COVER, unique=False)
    with op.batch_alter_table("purchases") as batch:
        batch.drop_index("ix_purchases_member_id_purchased_at")
        batch.drop_index("ix_purchases_purchased_at")


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.create_index("ix_purchases_member_id_purchased_at", ["member_id", "purchased_at"], unique=False)
        batch.create_index("ix_purchases_purchased_at", ["purchased_at"], unique=False)
    with op.batch_alter_table("purchases") as batch:
        batch.drop_index("ix_purchases_member_cover")
        batch.drop_index("ix_purchases_time_cover")

"""Console roles: every operator gets a role (existing ones stay admins), a store manager a store.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25 12:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch_op:
        batch_op.add_column(
            sa.Column(
                "role",
                sa.Enum(
                    "admin",
                    "marketing",
                    "store_manager",
                    "auditor",
                    name="operatorrole",
                    native_enum=False,
                    create_constraint=False,
                    length=16,
                ),
                nullable=False,
                server_default="admin",
            )
        )
        batch_op.add_column(sa.Column("store_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_operators_store_id_stores", "stores", ["store_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("operators") as batch_op:
        batch_op.drop_constraint("fk_operators_store_id_stores", type_="foreignkey")
        batch_op.drop_column("store_id")
        batch_op.drop_column("role")

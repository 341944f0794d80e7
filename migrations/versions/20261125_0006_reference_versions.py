"""Reference versions: a counter per group of operator-configured tables, for per-process caches.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 05:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPS = ("points_rules", "tiers", "stores", "staff")


def upgrade() -> None:
    versions = op.create_table(
        "reference_versions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reference_versions")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.bulk_insert(versions, [{"name": name, "version": 1} for name in GROUPS])


def downgrade() -> None:
    op.drop_table("reference_versions")

"""POS terminals with derived signing keys, their request nonces, and who recorded a purchase or refund.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pos_terminals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("rotated_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_pos_terminals_store_id_stores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pos_terminals")),
        sa.UniqueConstraint("key_id", name=op.f("uq_pos_terminals_key_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_pos_terminals_store_id"), "pos_terminals", ["store_id"])
    op.create_table(
        "pos_request_nonces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["pos_terminals.id"], name=op.f("fk_pos_request_nonces_terminal_id_pos_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pos_request_nonces")),
        sa.UniqueConstraint("terminal_id", "nonce", name=op.f("uq_pos_request_nonces_terminal_id_nonce")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_pos_request_nonces_created_at"), "pos_request_nonces", ["created_at"])
    for table in ("purchases", "purchase_refunds"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("pos_terminal_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                batch.f(f"fk_{table}_pos_terminal_id_pos_terminals"),
                "pos_terminals",
                ["pos_terminal_id"],
                ["id"],
            )


def downgrade() -> None:
    for table in ("purchase_refunds", "purchases"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(batch.f(f"fk_{table}_pos_terminal_id_pos_terminals"), type_="foreignkey")
            batch.drop_column("pos_terminal_id")
    op.drop_index(op.f("ix_pos_request_nonces_created_at"), table_name="pos_request_nonces")
    op.drop_table("pos_request_nonces")
    op.drop_index(op.f("ix_pos_terminals_store_id"), table_name="pos_terminals")
    op.drop_table("pos_terminals")

"""Advisor pages: advisors' notes on a member, and manual tag changes to mirror as WeCom corp tags
(the outbox of `externalcontact/mark_tag` calls, retried until done).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25 11:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("advisor_note", sa.String(length=500), nullable=True))

    op.create_table(
        "wecom_corp_tag_syncs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column(
            "action",
            sa.Enum("add", "remove", name="corptagsyncaction", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("pending", "done", "failed", name="corptagsyncstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("synced_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_wecom_corp_tag_syncs_member_id_members")
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_wecom_corp_tag_syncs_staff_id_staff")),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], name=op.f("fk_wecom_corp_tag_syncs_tag_id_tags")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_corp_tag_syncs")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("wecom_corp_tag_syncs") as batch_op:
        batch_op.create_index("ix_wecom_corp_tag_syncs_member_id", ["member_id"], unique=False)
        batch_op.create_index("ix_wecom_corp_tag_syncs_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("wecom_corp_tag_syncs")
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_column("advisor_note")

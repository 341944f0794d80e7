"""Nicknames in utf8mb4_unicode_520_ci on MySQL/MariaDB: with utf8mb4_unicode_ci, MariaDB's range scan
of the nickname index skips names with a character beyond the BMP (an emoji) right after the typed
prefix, so searching "小美" missed "小美🌸". SQLite has no collations to change.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 13:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _nickname_collation(collation: str) -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    op.alter_column(
        "members",
        "nickname",
        existing_type=mysql.VARCHAR(64),
        type_=mysql.VARCHAR(64, charset="utf8mb4", collation=collation),
        existing_nullable=True,
    )


def upgrade() -> None:
    _nickname_collation("utf8mb4_unicode_520_ci")


def downgrade() -> None:
    _nickname_collation("utf8mb4_unicode_ci")

"""Parking: members' plates, parking rules, quotes, payments and the coupons they used.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 03:45:59.815207
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('parking_rules',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('quote_ttl_seconds', sa.Integer(), nullable=False),
    sa.Column('points_per_yuan', sa.Integer(), nullable=False),
    sa.Column('points_max_fen_per_visit', sa.Integer(), nullable=False),
    sa.Column('spending_free_minutes', sa.JSON(), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('updated_by_operator_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('points_max_fen_per_visit >= 0', name=op.f('ck_parking_rules_points_cap_not_negative')),
    sa.CheckConstraint('points_per_yuan > 0', name=op.f('ck_parking_rules_points_rate_positive')),
    sa.CheckConstraint('quote_ttl_seconds > 0', name=op.f('ck_parking_rules_quote_ttl_positive')),
    sa.ForeignKeyConstraint(['updated_by_operator_id'], ['operators.id'], name=op.f('fk_parking_rules_updated_by_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_rules')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_table('member_plates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_plates_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_plates')),
    sa.UniqueConstraint('plate', name=op.f('uq_member_plates_plate')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('member_plates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_plates_member_id'), ['member_id'], unique=False)

    op.create_table('parking_quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('entry_time', app.db.UTCDateTime(), nullable=False),
    sa.Column('parking_minutes', sa.Integer(), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.Column('tier_minutes', sa.Integer(), nullable=False),
    sa.Column('spending_minutes', sa.Integer(), nullable=False),
    sa.Column('coupon_ids', sa.JSON(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('amount_due_fen', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_parking_quotes_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_quotes')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('parking_quotes', schema=None) as batch_op:
        batch_op.create_index('ix_parking_quotes_member_id_created_at', ['member_id', 'created_at'], unique=False)

    op.create_table('parking_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=96), nullable=False),
    sa.Column('quote_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('entry_time', app.db.UTCDateTime(), nullable=False),
    sa.Column('parking_minutes', sa.Integer(), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.Column('tier_minutes', sa.Integer(), nullable=False),
    sa.Column('spending_minutes', sa.Integer(), nullable=False),
    sa.Column('coupon_minutes', sa.Integer(), nullable=False),
    sa.Column('minutes_value_fen', sa.Integer(), nullable=False),
    sa.Column('coupon_value_fen', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('points_value_fen', sa.Integer(), nullable=False),
    sa.Column('amount_due_fen', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'paid', 'unknown', 'refunded', name='parkingpaymentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('failure_code', sa.String(length=32), nullable=True),
    sa.Column('failure_message', sa.String(length=200), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('settled_at', app.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('amount_due_fen >= 0', name=op.f('ck_parking_payments_amount_due_not_negative')),
    sa.CheckConstraint('points >= 0', name=op.f('ck_parking_payments_points_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_parking_payments_member_id_members')),
    sa.ForeignKeyConstraint(['quote_id'], ['parking_quotes.id'], name=op.f('fk_parking_payments_quote_id_parking_quotes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_payments')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_parking_payments_idempotency_key')),
    sa.UniqueConstraint('order_no', name=op.f('uq_parking_payments_order_no')),
    sa.UniqueConstraint('quote_id', name=op.f('uq_parking_payments_quote_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('parking_payments', schema=None) as batch_op:
        batch_op.create_index('ix_parking_payments_member_id_business_date', ['member_id', 'business_date'], unique=False)
        batch_op.create_index('ix_parking_payments_plate_created_at', ['plate', 'created_at'], unique=False)
        batch_op.create_index('ix_parking_payments_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('parking_payment_coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('value_fen', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_parking_payment_coupons_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['payment_id'], ['parking_payments.id'], name=op.f('fk_parking_payment_coupons_payment_id_parking_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_payment_coupons')),
    sa.UniqueConstraint('payment_id', 'coupon_id', name=op.f('uq_parking_payment_coupons_payment_id_coupon_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('parking_payment_coupons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_payment_coupons_coupon_id'), ['coupon_id'], unique=False)


def downgrade() -> None:
    # Tables only: their indexes go with them (dropping an index first fails on MariaDB when a
    # foreign key needs it).
    op.drop_table('parking_payment_coupons')
    op.drop_table('parking_payments')
    op.drop_table('parking_quotes')
    op.drop_table('member_plates')
    op.drop_table('parking_rules')

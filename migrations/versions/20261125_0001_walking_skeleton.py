"""Walking skeleton: stores, tiers, staff, operators, QR scenes, members, purchases.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 02:30:25.814174
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # members and qr_scenes reference each other; MySQL only accepts that with checks off.
    mysql = op.get_bind().dialect.name in {"mysql", "mariadb"}
    if mysql:
        op.execute("SET FOREIGN_KEY_CHECKS=0")
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('last_login_at', app.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('username', name=op.f('uq_operators_username')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_table('stores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('floor', sa.String(length=16), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stores')),
    sa.UniqueConstraint('code', name=op.f('uq_stores_code')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stores_category'), ['category'], unique=False)

    op.create_table('tiers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('min_annual_spend_fen', sa.Integer(), nullable=False),
    sa.Column('points_multiplier_percent', sa.Integer(), nullable=False),
    sa.Column('free_parking_minutes_per_day', sa.Integer(), nullable=False),
    sa.CheckConstraint('points_multiplier_percent >= 100', name=op.f('ck_tiers_multiplier_at_least_one')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tiers')),
    sa.UniqueConstraint('code', name=op.f('uq_tiers_code')),
    sa.UniqueConstraint('rank', name=op.f('uq_tiers_rank')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wecom_userid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('store_staff', 'advisor', 'manager', name='staffrole', native_enum=False, length=16), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_staff_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('wecom_userid', name=op.f('uq_staff_wecom_userid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_store_id'), ['store_id'], unique=False)

    op.create_table('qr_scenes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('store', 'advisor', 'event', 'poster', 'referral', name='scenekind', native_enum=False, length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scene', sa.String(length=32), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('advisor_id', sa.Integer(), nullable=True),
    sa.Column('referrer_member_id', sa.Integer(), nullable=True),
    sa.Column('created_by_operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['advisor_id'], ['staff.id'], name=op.f('fk_qr_scenes_advisor_id_staff')),
    sa.ForeignKeyConstraint(['created_by_operator_id'], ['operators.id'], name=op.f('fk_qr_scenes_created_by_operator_id_operators')),
    sa.ForeignKeyConstraint(['referrer_member_id'], ['members.id'], name=op.f('fk_qr_scenes_referrer_member_id_members')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_qr_scenes_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qr_scenes')),
    sa.UniqueConstraint('scene', name=op.f('uq_qr_scenes_scene')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('qr_scenes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qr_scenes_advisor_id'), ['advisor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qr_scenes_referrer_member_id'), ['referrer_member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qr_scenes_store_id'), ['store_id'], unique=False)

    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone_ciphertext', sa.LargeBinary().with_variant(sa.VARBINARY(length=64), 'mysql', 'mariadb'), nullable=False),
    sa.Column('phone_index', sa.String(length=64), nullable=False),
    sa.Column('phone_masked', sa.String(length=16), nullable=False),
    sa.Column('nickname', sa.String(length=64), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('tier_id', sa.Integer(), nullable=False),
    sa.Column('points_balance', sa.Integer(), nullable=False),
    sa.Column('advisor_id', sa.Integer(), nullable=True),
    sa.Column('signup_scene_id', sa.Integer(), nullable=True),
    sa.Column('referred_by_member_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.Enum('wechat', 'pos', 'import', name='membersource', native_enum=False, length=16), nullable=False),
    sa.Column('joined_at', app.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('points_balance >= 0', name=op.f('ck_members_points_balance_not_negative')),
    sa.ForeignKeyConstraint(['advisor_id'], ['staff.id'], name=op.f('fk_members_advisor_id_staff')),
    sa.ForeignKeyConstraint(['referred_by_member_id'], ['members.id'], name=op.f('fk_members_referred_by_member_id_members')),
    sa.ForeignKeyConstraint(['signup_scene_id'], ['qr_scenes.id'], name=op.f('fk_members_signup_scene_id_qr_scenes')),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_members_tier_id_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('phone_index', name=op.f('uq_members_phone_index')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_advisor_id'), ['advisor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_joined_at'), ['joined_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_referred_by_member_id'), ['referred_by_member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_signup_scene_id'), ['signup_scene_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_tier_id'), ['tier_id'], unique=False)

    op.create_table('purchases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('receipt_no', sa.String(length=64), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('purchased_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_purchases_amount_positive')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_purchases_member_id_members')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_purchases_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchases')),
    sa.UniqueConstraint('store_id', 'receipt_no', name=op.f('uq_purchases_store_id_receipt_no')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purchases_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_purchases_purchased_at'), ['purchased_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_purchases_store_id'), ['store_id'], unique=False)

    op.create_table('used_member_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('used_by_staff_id', sa.Integer(), nullable=True),
    sa.Column('used_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_used_member_codes_member_id_members')),
    sa.ForeignKeyConstraint(['used_by_staff_id'], ['staff.id'], name=op.f('fk_used_member_codes_used_by_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_used_member_codes')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_used_member_codes_code_digest')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('used_member_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_member_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_used_member_codes_member_id'), ['member_id'], unique=False)

    op.create_table('wechat_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appid', sa.String(length=32), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('unionid', sa.String(length=64), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('last_login_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_wechat_accounts_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_accounts')),
    sa.UniqueConstraint('appid', 'openid', name=op.f('uq_wechat_accounts_appid_openid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_accounts_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wechat_accounts_unionid'), ['unionid'], unique=False)

    op.create_table('member_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('wechat_account_id', sa.Integer(), nullable=True),
    sa.Column('policy_version', sa.String(length=32), nullable=False),
    sa.Column('granted_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_consents_member_id_members')),
    sa.ForeignKeyConstraint(['wechat_account_id'], ['wechat_accounts.id'], name=op.f('fk_member_consents_wechat_account_id_wechat_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_consents')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_consents_member_id'), ['member_id'], unique=False)

    if mysql:
        op.execute("SET FOREIGN_KEY_CHECKS=1")


def downgrade() -> None:
    mysql = op.get_bind().dialect.name in {"mysql", "mariadb"}
    if mysql:
        op.execute("SET FOREIGN_KEY_CHECKS=0")
    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_consents_member_id'))

    op.drop_table('member_consents')
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_accounts_unionid'))
        batch_op.drop_index(batch_op.f('ix_wechat_accounts_member_id'))

    op.drop_table('wechat_accounts')
    with op.batch_alter_table('used_member_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_member_codes_member_id'))
        batch_op.drop_index(batch_op.f('ix_used_member_codes_expires_at'))

    op.drop_table('used_member_codes')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchases_store_id'))
        batch_op.drop_index(batch_op.f('ix_purchases_purchased_at'))
        batch_op.drop_index(batch_op.f('ix_purchases_member_id'))

    op.drop_table('purchases')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_tier_id'))
        batch_op.drop_index(batch_op.f('ix_members_signup_scene_id'))
        batch_op.drop_index(batch_op.f('ix_members_referred_by_member_id'))
        batch_op.drop_index(batch_op.f('ix_members_joined_at'))
        batch_op.drop_index(batch_op.f('ix_members_advisor_id'))

    op.drop_table('members')
    with op.batch_alter_table('qr_scenes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qr_scenes_store_id'))
        batch_op.drop_index(batch_op.f('ix_qr_scenes_referrer_member_id'))
        batch_op.drop_index(batch_op.f('ix_qr_scenes_advisor_id'))

    op.drop_table('qr_scenes')
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_store_id'))

    op.drop_table('staff')
    op.drop_table('tiers')
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stores_category'))

    op.drop_table('stores')
    op.drop_table('operators')
    if mysql:
        op.execute("SET FOREIGN_KEY_CHECKS=1")

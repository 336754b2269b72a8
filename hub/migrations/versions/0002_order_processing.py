"""order processing: plans, processed events, the documents plans release, imported SKU mappings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import hub.store.schema

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('processed_events',
    sa.Column('event_id', sa.BigInteger(), autoincrement=False, nullable=False, comment='outbox id of an order.accepted/changed event; the primary key is the processing claim'),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('order_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='planned | skipped (a newer version exists)'),
    sa.Column('processed_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_processed_events'))
    )
    with op.batch_alter_table('processed_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processed_events_hub_id'), ['hub_id'], unique=False)

    op.create_table('sku_mappings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False, comment="'*' for every channel"),
    sa.Column('shop', sa.String(length=64), nullable=False, comment="'*' for every shop"),
    sa.Column('key_kind', sa.String(length=16), nullable=False, comment='merchant_code | platform_sku_id'),
    sa.Column('key_value', sa.String(length=128), nullable=False),
    sa.Column('master_sku', sa.String(length=128), nullable=False, comment='a master SKU or a bundle code'),
    sa.Column('source', sa.String(length=191), nullable=False, comment='the imported file'),
    sa.Column('imported_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sku_mappings')),
    sa.UniqueConstraint('channel', 'shop', 'key_kind', 'key_value', name=op.f('uq_sku_mappings_channel_shop_key_kind_key_value'))
    )
    op.create_table('order_plans',
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False, comment="+1 whenever the plan's content changes"),
    sa.Column('status', sa.String(length=16), nullable=False, comment='released | held | waiting | blocked | cancelled | closed'),
    sa.Column('order_version', sa.Integer(), nullable=False, comment='the order version last planned'),
    sa.Column('group_key', sa.String(length=191), nullable=True, comment='blocked: what must be fixed'),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('plan', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False, comment='hub.processing.plan.OrderPlan as JSON'),
    sa.Column('recheck_at', hub.store.schema.UTCDateTime(), nullable=True, comment='waiting: plan again at this time'),
    sa.Column('approved_by', sa.String(length=64), nullable=True, comment='who released its holds (release --approve)'),
    sa.Column('approved_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.Column('published_revision', sa.Integer(), nullable=True, comment='the revision whose order.released events are in the outbox'),
    sa.Column('released_fingerprint', sa.String(length=64), nullable=True, comment='what the warehouse was sent to pick (codes, SKUs, quantities) at the last release'),
    sa.Column('merged_into', sa.String(length=40), nullable=True, comment='hub id of the order whose delivery order carries this one'),
    sa.Column('planned_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hub_id'], ['orders.hub_id'], name=op.f('fk_order_plans_hub_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hub_id', name=op.f('pk_order_plans'))
    )
    with op.batch_alter_table('order_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_plans_group_key'), ['group_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_plans_merged_into'), ['merged_into'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_plans_recheck_at'), ['recheck_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_plans_status'), ['status'], unique=False)

    op.create_table('plan_documents',
    sa.Column('document_code', sa.String(length=128), nullable=False, comment='deliveryOrderCode and the like'),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('warehouse', sa.String(length=32), nullable=True),
    sa.Column('line_refs', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False, comment='[{line_id, qty}] of this order the document ships'),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hub_id'], ['orders.hub_id'], name=op.f('fk_plan_documents_hub_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_code', 'hub_id', name=op.f('pk_plan_documents'))
    )
    with op.batch_alter_table('plan_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_documents_hub_id'), ['hub_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('plan_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_documents_hub_id'))

    op.drop_table('plan_documents')
    with op.batch_alter_table('order_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_plans_status'))
        batch_op.drop_index(batch_op.f('ix_order_plans_recheck_at'))
        batch_op.drop_index(batch_op.f('ix_order_plans_merged_into'))
        batch_op.drop_index(batch_op.f('ix_order_plans_group_key'))

    op.drop_table('order_plans')
    op.drop_table('sku_mappings')
    with op.batch_alter_table('processed_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processed_events_hub_id'))

    op.drop_table('processed_events')

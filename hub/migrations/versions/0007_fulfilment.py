"""fulfilment documents: waybills the hub books itself, intercepts, returns

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import hub.store.schema

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('return_receipts',
    sa.Column('sink', sa.String(length=64), nullable=False, comment='the WMS sink that received the goods'),
    sa.Column('return_order_code', sa.String(length=128), nullable=False, comment='RT-<CHANNEL>-<refund id>'),
    sa.Column('hub_id', sa.String(length=40), nullable=False, comment="the order's"),
    sa.Column('refund_id', sa.String(length=128), nullable=True),
    sa.Column('out_biz_code', sa.String(length=128), nullable=False, comment='the WMS message id'),
    sa.Column('delivery_order_code', sa.String(length=128), nullable=True, comment='preDeliveryOrderCode'),
    sa.Column('lines', hub.store.schema.Json, nullable=False,
              comment='[{item_code, inventory_type, planned, received}]'),
    sa.Column('confirmed_at', sa.String(length=32), nullable=True, comment='orderConfirmTime as the WMS sent it'),
    sa.Column('outbox_id', sa.BigInteger(), nullable=True, comment='the return.received event'),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sink', 'return_order_code', name=op.f('pk_return_receipts'))
    )
    op.create_index(op.f('ix_return_receipts_hub_id'), 'return_receipts', ['hub_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_return_receipts_hub_id'), table_name='return_receipts')
    op.drop_table('return_receipts')

"""after-sales: refunds per channel with their versions (refund.* events come from here)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import hub.store.schema  # noqa: F401

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('refunds',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('refund_id', sa.String(length=128), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=True, comment="the order's hub id; NULL while the order has not reached the hub (linked by process)"),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('line_id', sa.String(length=128), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False, comment='refund_only | return_refund | exchange'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='canonical RefundStatus'),
    sa.Column('raw_status', sa.String(length=64), nullable=False),
    sa.Column('requested_amount', sa.BigInteger(), nullable=False, comment='fen'),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False, comment='fen'),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False, comment="the channel's modified time: the version guard"),
    sa.Column('channel_version', sa.String(length=32), nullable=True, comment='refund_version and the like, when given'),
    sa.Column('version', sa.Integer(), nullable=False, comment="the hub's version counter of this refund"),
    sa.Column('document', hub.store.schema.Json, nullable=False, comment='the canonical Refund as JSON'),
    sa.Column('event_pending', sa.Boolean(), nullable=False, comment='its event waits for the order to arrive (a refund can be read before its order)'),
    sa.Column('first_seen_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('stored_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'shop', 'refund_id', name=op.f('pk_refunds'))
    )
    op.create_index('ix_refunds_pending', 'refunds', ['event_pending'], unique=False)
    op.create_index(op.f('ix_refunds_hub_id'), 'refunds', ['hub_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_refunds_hub_id'), table_name='refunds')
    op.drop_index('ix_refunds_pending', table_name='refunds')
    op.drop_table('refunds')

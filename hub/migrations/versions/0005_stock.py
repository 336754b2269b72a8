"""stock: ledger per master SKU and warehouse, available-to-sell per channel, versioned pushes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import hub.store.schema  # noqa: F401

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stock_movements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False, comment='the ledger version: grows with every movement'),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('warehouse', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False, comment='snapshot (a count replaced the level) | change (a reported movement) | level (stock_level)'),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('on_hand_after', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False, comment='who reported it: wms:<sink>, pos:<shop>, cli ...'),
    sa.Column('ref', sa.String(length=191), nullable=True, comment="the report's own id (outBizCode): replays are no-ops"),
    sa.Column('detail', hub.store.schema.Json, nullable=True),
    sa.Column('at', hub.store.schema.UTCDateTime(), nullable=False, comment='when the source says it happened'),
    sa.Column('recorded_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements')),
    sa.UniqueConstraint('source', 'ref', name=op.f('uq_stock_movements_source_ref'))
    )
    op.create_index('ix_stock_movements_sku', 'stock_movements', ['sku', 'warehouse'], unique=False)
    op.create_table('stock_levels',
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('warehouse', sa.String(length=64), nullable=False),
    sa.Column('on_hand', sa.Integer(), nullable=False, comment='physical units, locked ones included'),
    sa.Column('locked', sa.Integer(), nullable=False, comment='of which the warehouse holds for open documents'),
    sa.Column('version', sa.BigInteger(), nullable=False, comment='id of the last movement applied'),
    sa.Column('as_of', hub.store.schema.UTCDateTime(), nullable=False, comment='the time of the last count or report'),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sku', 'warehouse', name=op.f('pk_stock_levels'))
    )
    op.create_table('stock_channel_state',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('target', sa.Integer(), nullable=False, comment='available-to-sell the last push aimed at'),
    sa.Column('pushed_version', sa.BigInteger(), nullable=False, comment='ledger version the last push came from'),
    sa.Column('pushed_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('push_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='sent | acked | rejected'),
    sa.Column('acked_version', sa.BigInteger(), nullable=True, comment='ledger version of the newest acked push'),
    sa.Column('acked_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.Column('channel_qty', sa.Integer(), nullable=True, comment='the shelf quantity the channel reported'),
    sa.Column('channel_at', hub.store.schema.UTCDateTime(), nullable=True, comment="the channel's time for channel_qty"),
    sa.Column('listed', sa.Boolean(), nullable=False, comment='false after a de-list at zero'),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('channel', 'shop', 'sku', name=op.f('pk_stock_channel_state'))
    )
    op.create_table('stock_pushes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False, comment='full | delta'),
    sa.Column('qty', sa.Integer(), nullable=False, comment='what was sent: the quantity (full) or the change'),
    sa.Column('target', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False, comment='set | delist | relist'),
    sa.Column('reason', sa.String(length=16), nullable=False, comment='changed | resync | retry'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='sent | acked | rejected | stale'),
    sa.Column('channel_qty', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('acked_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_pushes'))
    )
    op.create_index('ix_stock_pushes_key', 'stock_pushes', ['channel', 'shop', 'sku'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_stock_pushes_key', table_name='stock_pushes')
    op.drop_table('stock_pushes')
    op.drop_table('stock_channel_state')
    op.drop_table('stock_levels')
    op.drop_index('ix_stock_movements_sku', table_name='stock_movements')
    op.drop_table('stock_movements')

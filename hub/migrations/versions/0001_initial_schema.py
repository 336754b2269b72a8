"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import hub.store.schema

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_trail',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_trail'))
    )
    with op.batch_alter_table('audit_trail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_trail_hub_id'), ['hub_id'], unique=False)

    op.create_table('bindings',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'shop', 'entity', 'external_id', name=op.f('pk_bindings'))
    )
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bindings_hub_id'), ['hub_id'], unique=False)

    op.create_table('dispatches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sink', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=191), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('entity_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='in_flight | in_doubt | done | skipped | parked'),
    sa.Column('document_ref', sa.String(length=191), nullable=True, comment="the target's id for the document"),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=True),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatches')),
    sa.UniqueConstraint('sink', 'event_id', name=op.f('uq_dispatches_sink_event_id'))
    )
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatches_hub_id'), ['hub_id'], unique=False)
        batch_op.create_index('ix_dispatches_key', ['sink', 'idempotency_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispatches_status'), ['status'], unique=False)

    op.create_table('orders',
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('raw_status', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False, comment='1 for the first accepted version, +1 per newer one'),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False, comment="the channel's last-modified time: the guard"),
    sa.Column('placed_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('paid_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.Column('paid_total', sa.BigInteger(), nullable=False, comment='fen'),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('document', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False, comment='the canonical Order as JSON'),
    sa.Column('first_seen_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('last_written_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('hub_id', name=op.f('pk_orders')),
    sa.UniqueConstraint('channel', 'shop', 'order_id', name=op.f('uq_orders_channel_shop_order_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_status'), ['status'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_type', sa.String(length=48), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_hub_id'), ['hub_id'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('error_kind', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('group_key', sa.String(length=191), nullable=True, comment="what must be fixed, e.g. 'unknown value status=X': groups the quarantine by cause"),
    sa.Column('attributes', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('payload', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='open | replayed | discarded'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_group_key'), ['group_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_status'), ['status'], unique=False)

    op.create_table('raw_payloads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=True, comment='the version the channel stamped, if readable'),
    sa.Column('received_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('payload', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_payloads')),
    sa.UniqueConstraint('channel', 'shop', 'entity', 'external_id', 'content_hash', name=op.f('uq_raw_payloads_channel_shop_entity_external_id_content_hash'))
    )
    op.create_table('subscriptions',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False, comment='every outbox id <= position is handled'),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_subscriptions'))
    )
    op.create_table('sync_cursors',
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('position', hub.store.schema.UTCDateTime(), nullable=False, comment='everything modified before this has been read'),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'shop', 'stream', name=op.f('pk_sync_cursors'))
    )
    op.create_table('sync_windows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('window_start', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('window_end', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('records_seen', sa.Integer(), nullable=False),
    sa.Column('reported_total', sa.Integer(), nullable=True),
    sa.Column('scans', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('opened_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('scanned_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('closed_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_windows'))
    )
    with op.batch_alter_table('sync_windows', schema=None) as batch_op:
        batch_op.create_index('ix_sync_windows_open', ['connector', 'shop', 'stream', 'closed'], unique=False)

    op.create_table('order_lines',
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('line_id', sa.String(length=128), nullable=False),
    sa.Column('merchant_sku_code', sa.String(length=128), nullable=True),
    sa.Column('platform_sku_id', sa.String(length=128), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('line_paid', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('raw_status', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['hub_id'], ['orders.hub_id'], name=op.f('fk_order_lines_hub_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hub_id', 'line_id', name=op.f('pk_order_lines'))
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_lines_merchant_sku_code'), ['merchant_sku_code'], unique=False)

    op.create_table('shipments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('shipment_id', sa.String(length=128), nullable=False),
    sa.Column('carrier_code', sa.String(length=32), nullable=False),
    sa.Column('waybill_no', sa.String(length=64), nullable=False),
    sa.Column('document', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False, comment='the canonical Shipment as JSON'),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('shipped_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hub_id'], ['orders.hub_id'], name=op.f('fk_shipments_hub_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipments')),
    sa.UniqueConstraint('hub_id', 'shipment_id', name=op.f('uq_shipments_hub_id_shipment_id'))
    )


def downgrade() -> None:
    op.drop_table('shipments')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_lines_merchant_sku_code'))

    op.drop_table('order_lines')
    with op.batch_alter_table('sync_windows', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_windows_open')

    op.drop_table('sync_windows')
    op.drop_table('sync_cursors')
    op.drop_table('subscriptions')
    op.drop_table('raw_payloads')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_status'))
        batch_op.drop_index(batch_op.f('ix_quarantine_group_key'))

    op.drop_table('quarantine')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_hub_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_status'))

    op.drop_table('orders')
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatches_status'))
        batch_op.drop_index('ix_dispatches_key')
        batch_op.drop_index(batch_op.f('ix_dispatches_hub_id'))

    op.drop_table('dispatches')
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bindings_hub_id'))

    op.drop_table('bindings')
    with op.batch_alter_table('audit_trail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_trail_hub_id'))

    op.drop_table('audit_trail')

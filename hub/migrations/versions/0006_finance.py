"""finance and reviews: payment statements, reconciliation, reviews per order line

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import hub.store.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('receipts',
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False, comment='fen'),
    sa.Column('fee', sa.BigInteger(), nullable=False, comment='fen'),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('paid_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'txn_id', name=op.f('pk_receipts'))
    )
    op.create_index(op.f('ix_receipts_hub_id'), 'receipts', ['hub_id'], unique=False)
    op.create_table('reconciliation_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False, comment='paid_no_order | order_no_payment | amount_differs | refund_not_settled | refund_no_hub_refund | cod_differs | cod_not_collected'),
    sa.Column('movement', sa.String(length=8), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=True),
    sa.Column('out_trade_no', sa.String(length=128), nullable=True),
    sa.Column('refund_no', sa.String(length=128), nullable=True),
    sa.Column('hub_id', sa.String(length=40), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('expected', sa.BigInteger(), nullable=True, comment='fen the hub expects (None: nothing)'),
    sa.Column('actual', sa.BigInteger(), nullable=True, comment='fen the statement holds (None: nothing)'),
    sa.Column('found_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_findings'))
    )
    op.create_index('ix_reconciliation_findings_day', 'reconciliation_findings', ['bill_date', 'source'], unique=False)
    op.create_table('reviews',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('review_id', sa.String(length=128), nullable=False),
    sa.Column('hub_id', sa.String(length=40), nullable=True, comment="the order's; NULL until it is in the hub"),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('line_id', sa.String(length=128), nullable=True),
    sa.Column('platform_item_id', sa.String(length=128), nullable=True),
    sa.Column('merchant_sku_code', sa.String(length=128), nullable=True),
    sa.Column('master_sku', sa.String(length=128), nullable=True),
    sa.Column('rating', sa.String(length=16), nullable=False, comment='as the channel rates'),
    sa.Column('score', sa.Integer(), nullable=False, comment='1-5 (good 5, neutral 3, bad 1)'),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('created_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('alert', sa.String(length=16), nullable=False, comment='none | pending (order not yet in the hub) | raised'),
    sa.Column('stored_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'shop', 'review_id', name=op.f('pk_reviews'))
    )
    op.create_index(op.f('ix_reviews_hub_id'), 'reviews', ['hub_id'], unique=False)
    op.create_index(op.f('ix_reviews_master_sku'), 'reviews', ['master_sku'], unique=False)
    op.create_table('statement_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False, comment='alipay | wechatpay | cod'),
    sa.Column('bill_date', sa.Date(), nullable=False, comment="the statement's day (Asia/Shanghai)"),
    sa.Column('movement', sa.String(length=8), nullable=False, comment='payment | refund'),
    sa.Column('txn_id', sa.String(length=64), nullable=False, comment='支付宝交易号 / 微信订单号 / waybill'),
    sa.Column('out_trade_no', sa.String(length=128), nullable=False, comment='商户订单号: the channel order id'),
    sa.Column('refund_no', sa.String(length=128), nullable=False, comment='refund batch / after-sale id'),
    sa.Column('amount', sa.BigInteger(), nullable=False, comment='fen, positive for payments and refunds alike'),
    sa.Column('fee', sa.BigInteger(), nullable=False, comment='fen the provider charged (negative: given back)'),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('occurred_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.Column('raw', hub.store.schema.Json, nullable=False, comment='the statement row as read'),
    sa.Column('imported_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_lines')),
    sa.UniqueConstraint('source', 'movement', 'txn_id', 'refund_no', name=op.f('uq_statement_lines_source_movement_txn_id_refund_no'))
    )
    op.create_index('ix_statement_lines_day', 'statement_lines', ['source', 'bill_date'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_statement_lines_day', table_name='statement_lines')
    op.drop_table('statement_lines')
    op.drop_index(op.f('ix_reviews_master_sku'), table_name='reviews')
    op.drop_index(op.f('ix_reviews_hub_id'), table_name='reviews')
    op.drop_table('reviews')
    op.drop_index('ix_reconciliation_findings_day', table_name='reconciliation_findings')
    op.drop_table('reconciliation_findings')
    op.drop_index(op.f('ix_receipts_hub_id'), table_name='receipts')
    op.drop_table('receipts')

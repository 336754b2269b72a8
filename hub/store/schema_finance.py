"""Tables of the finance room (finance and reviews: payment statements, reconciliation, reviews per order line).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0006 creates them.

* ``statement_lines``: every money movement of an imported statement (Alipay, WeChat Pay, a carrier's COD
  remittance), amounts in fen; re-importing a day replaces nothing that is already there (natural key).
* ``receipts``: the exactly-once ledger of ``receipt.matched`` events - its primary key (source, txn id) is the claim,
  written in the same transaction as the outbox event.
* ``reconciliation_findings``: the mismatches of the last reconciliation of a (day, source), replaced per run.
* ``reviews``: buyer reviews per order line and master SKU (no buyer nick: personal data is not kept).
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.store.schema import Json, UTCDateTime, metadata

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

statement_lines = sa.Table(
    "statement_lines",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False, comment="alipay | wechatpay | cod"),
    sa.Column("bill_date", sa.Date(), nullable=False, comment="the statement's day (Asia/Shanghai)"),
    sa.Column("movement", sa.String(8), nullable=False, comment="payment | refund"),
    sa.Column("txn_id", sa.String(64), nullable=False, comment="支付宝交易号 / 微信订单号 / waybill"),
    sa.Column("out_trade_no", sa.String(128), nullable=False, comment="商户订单号: the channel order id"),
    sa.Column("refund_no", sa.String(128), nullable=False, default="", comment="refund batch / after-sale id"),
    sa.Column("amount", sa.BigInteger(), nullable=False, comment="fen, positive for payments and refunds alike"),
    sa.Column("fee", sa.BigInteger(), nullable=False, comment="fen the provider charged (negative: given back)"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("raw", Json, nullable=False, comment="the statement row as read"),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "movement", "txn_id", "refund_no"),
    sa.Index("ix_statement_lines_day", "source", "bill_date"),
)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("source", sa.String(16), primary_key=True),
    sa.Column("txn_id", sa.String(64), primary_key=True),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False, comment="fen"),
    sa.Column("fee", sa.BigInteger(), nullable=False, comment="fen"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("paid_at", UTCDateTime(), nullable=False),
    sa.Column("bill_date", sa.Date(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

reconciliation_findings = sa.Table(
    "reconciliation_findings",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("bill_date", sa.Date(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False,
              comment="paid_no_order | order_no_payment | amount_differs | refund_not_settled | refund_no_hub_refund "
                      "| cod_differs | cod_not_collected"),
    sa.Column("movement", sa.String(8), nullable=False),
    sa.Column("txn_id", sa.String(64), nullable=True),
    sa.Column("out_trade_no", sa.String(128), nullable=True),
    sa.Column("refund_no", sa.String(128), nullable=True),
    sa.Column("hub_id", sa.String(40), nullable=True),
    sa.Column("channel", sa.String(32), nullable=True),
    sa.Column("expected", sa.BigInteger(), nullable=True, comment="fen the hub expects (None: nothing)"),
    sa.Column("actual", sa.BigInteger(), nullable=True, comment="fen the statement holds (None: nothing)"),
    sa.Column("found_at", UTCDateTime(), nullable=False),
    sa.Index("ix_reconciliation_findings_day", "bill_date", "source"),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("review_id", sa.String(128), primary_key=True),
    sa.Column("hub_id", sa.String(40), nullable=True, index=True, comment="the order's; NULL until it is in the hub"),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("line_id", sa.String(128), nullable=True),
    sa.Column("platform_item_id", sa.String(128), nullable=True),
    sa.Column("merchant_sku_code", sa.String(128), nullable=True),
    sa.Column("master_sku", sa.String(128), nullable=True, index=True),
    sa.Column("rating", sa.String(16), nullable=False, comment="as the channel rates"),
    sa.Column("score", sa.Integer(), nullable=False, comment="1-5 (good 5, neutral 3, bad 1)"),
    sa.Column("content", sa.Text(), nullable=True),
    sa.Column("reply", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("alert", sa.String(16), nullable=False, comment="none | pending (order not yet in the hub) | raised"),
    sa.Column("stored_at", UTCDateTime(), nullable=False),
)

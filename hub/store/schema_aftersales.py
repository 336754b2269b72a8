"""Tables of the aftersales room (refunds per channel and their versions; refund events).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0004 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from hub.store.schema import Json, LongText, UTCDateTime, metadata  # noqa: F401

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("refund_id", sa.String(128), primary_key=True),
    sa.Column("hub_id", sa.String(40), nullable=True, index=True,
              comment="the order's hub id; NULL while the order has not reached the hub (linked by process)"),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("line_id", sa.String(128), nullable=True),
    sa.Column("type", sa.String(16), nullable=False, comment="refund_only | return_refund | exchange"),
    sa.Column("status", sa.String(16), nullable=False, comment="canonical RefundStatus"),
    sa.Column("raw_status", sa.String(64), nullable=False),
    sa.Column("requested_amount", sa.BigInteger(), nullable=False, comment="fen"),
    sa.Column("refunded_amount", sa.BigInteger(), nullable=False, comment="fen"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False, comment="the channel's modified time: the version guard"),
    sa.Column("channel_version", sa.String(32), nullable=True, comment="refund_version and the like, when given"),
    sa.Column("version", sa.Integer(), nullable=False, comment="the hub's version counter of this refund"),
    sa.Column("document", Json, nullable=False, comment="the canonical Refund as JSON"),
    sa.Column("event_pending", sa.Boolean(), nullable=False,
              comment="its event waits for the order to arrive (a refund can be read before its order)"),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("stored_at", UTCDateTime(), nullable=False),
    sa.Index("ix_refunds_pending", "event_pending"),
)

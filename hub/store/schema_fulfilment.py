"""Tables of the fulfilment room (fulfilment documents: waybills the hub books itself, intercepts, returns).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0007 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.store.schema import Json, UTCDateTime, metadata

return_receipts = sa.Table(
    "return_receipts",
    metadata,
    sa.Column("sink", sa.String(64), primary_key=True, comment="the WMS sink that received the goods"),
    sa.Column("return_order_code", sa.String(128), primary_key=True, comment="RT-<CHANNEL>-<refund id>"),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True, comment="the order's"),
    sa.Column("refund_id", sa.String(128), nullable=True),
    sa.Column("out_biz_code", sa.String(128), nullable=False, comment="the WMS message id"),
    sa.Column("delivery_order_code", sa.String(128), nullable=True, comment="preDeliveryOrderCode"),
    sa.Column("lines", Json, nullable=False, comment="[{item_code, inventory_type, planned, received}]"),
    sa.Column("confirmed_at", sa.String(32), nullable=True, comment="orderConfirmTime as the WMS sent it"),
    sa.Column("outbox_id", sa.BigInteger(), nullable=True, comment="the return.received event"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

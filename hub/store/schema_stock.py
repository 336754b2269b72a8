"""Tables of the stock room (ledger per SKU and warehouse, available-to-sell, pushes).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0005 creates them.

    stock_movements      append-only: every change of on-hand stock; its id is the ledger version
    stock_levels         the current on hand per master SKU and warehouse (the sum of its movements)
    stock_channel_state  per channel, shop and SKU: what was last pushed, from which version, and what the channel
                         acknowledged (the guard: an older acknowledgement never overwrites a newer one)
    stock_pushes         append-only history of every push and its answer (``orderhub stock status --history``)
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.store.schema import Json, LongText, UTCDateTime, metadata  # noqa: F401

stock_movements = sa.Table(
    "stock_movements",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True,
              comment="the ledger version: grows with every movement"),
    sa.Column("sku", sa.String(128), nullable=False),
    sa.Column("warehouse", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False,
              comment="snapshot (a count replaced the level) | change (a reported movement) | level (stock_level)"),
    sa.Column("delta", sa.Integer(), nullable=False),
    sa.Column("on_hand_after", sa.Integer(), nullable=False),
    sa.Column("source", sa.String(64), nullable=False, comment="who reported it: wms:<sink>, pos:<shop>, cli ..."),
    sa.Column("ref", sa.String(191), nullable=True, comment="the report's own id (outBizCode): replays are no-ops"),
    sa.Column("detail", Json, nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False, comment="when the source says it happened"),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "ref"),
    sa.Index("ix_stock_movements_sku", "sku", "warehouse"),
)

stock_levels = sa.Table(
    "stock_levels",
    metadata,
    sa.Column("sku", sa.String(128), primary_key=True),
    sa.Column("warehouse", sa.String(64), primary_key=True),
    sa.Column("on_hand", sa.Integer(), nullable=False, comment="physical units, locked ones included"),
    sa.Column("locked", sa.Integer(), nullable=False, comment="of which the warehouse holds for open documents"),
    sa.Column("version", sa.BigInteger(), nullable=False, comment="id of the last movement applied"),
    sa.Column("as_of", UTCDateTime(), nullable=False, comment="the time of the last count or report"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

stock_channel_state = sa.Table(
    "stock_channel_state",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(128), primary_key=True),
    sa.Column("target", sa.Integer(), nullable=False, comment="available-to-sell the last push aimed at"),
    sa.Column("pushed_version", sa.BigInteger(), nullable=False, comment="ledger version the last push came from"),
    sa.Column("pushed_at", UTCDateTime(), nullable=False),
    sa.Column("push_id", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, comment="sent | acked | rejected"),
    sa.Column("acked_version", sa.BigInteger(), nullable=True, comment="ledger version of the newest acked push"),
    sa.Column("acked_at", UTCDateTime(), nullable=True),
    sa.Column("channel_qty", sa.Integer(), nullable=True, comment="the shelf quantity the channel reported"),
    sa.Column("channel_at", UTCDateTime(), nullable=True, comment="the channel's time for channel_qty"),
    sa.Column("listed", sa.Boolean(), nullable=False, comment="false after a de-list at zero"),
    sa.Column("error", sa.Text(), nullable=True),
)

stock_pushes = sa.Table(
    "stock_pushes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(128), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False, comment="full | delta"),
    sa.Column("qty", sa.Integer(), nullable=False, comment="what was sent: the quantity (full) or the change"),
    sa.Column("target", sa.Integer(), nullable=False),
    sa.Column("action", sa.String(8), nullable=False, comment="set | delist | relist"),
    sa.Column("reason", sa.String(16), nullable=False, comment="changed | resync | retry"),
    sa.Column("status", sa.String(16), nullable=False, comment="sent | acked | rejected | stale"),
    sa.Column("channel_qty", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("acked_at", UTCDateTime(), nullable=True),
    sa.Index("ix_stock_pushes_key", "channel", "shop", "sku"),
)

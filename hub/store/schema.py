"""Tables of the hub. Alembic migrations (hub/migrations) create them; a test keeps both in step.

Identity lives in ``bindings`` (channel, shop, entity, external id -> hub id), the OCA "binder". Orders keep their
channel key denormalised too, under a unique constraint, so a double binding can never slip through.
Column sizes stay within MySQL/InnoDB index limits under utf8mb4.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC with microseconds (DATETIME(6) on MySQL); returns aware UTC; refuses naive input."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Json = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")


def utcnow() -> datetime:
    return datetime.now(UTC)


bindings = sa.Table(
    "bindings",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(128), primary_key=True),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("hub_id", sa.String(40), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("raw_status", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, comment="1 for the first accepted version, +1 per newer one"),
    sa.Column("updated_at", UTCDateTime(), nullable=False, comment="the channel's last-modified time: the guard"),
    sa.Column("placed_at", UTCDateTime(), nullable=False),
    sa.Column("paid_at", UTCDateTime(), nullable=True),
    sa.Column("paid_total", sa.BigInteger(), nullable=False, comment="fen"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("document", Json, nullable=False, comment="the canonical Order as JSON"),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_written_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel", "shop", "order_id"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("hub_id", sa.String(40), sa.ForeignKey("orders.hub_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("line_id", sa.String(128), primary_key=True),
    sa.Column("merchant_sku_code", sa.String(128), nullable=True, index=True),
    sa.Column("platform_sku_id", sa.String(128), nullable=True),
    sa.Column("title", sa.String(255), nullable=True),
    sa.Column("qty", sa.Integer(), nullable=False),
    sa.Column("unit_price", sa.BigInteger(), nullable=False),
    sa.Column("line_paid", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("raw_status", sa.String(64), nullable=False),
)

raw_payloads = sa.Table(
    "raw_payloads",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("external_id", sa.String(128), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=True, comment="the version the channel stamped, if readable"),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("payload", LongText, nullable=False),
    sa.UniqueConstraint("channel", "shop", "entity", "external_id", "content_hash"),
)

sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("connector", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(32), primary_key=True),
    sa.Column("position", UTCDateTime(), nullable=False, comment="everything modified before this has been read"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

sync_windows = sa.Table(
    "sync_windows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("stream", sa.String(32), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=False),
    sa.Column("window_end", UTCDateTime(), nullable=False),
    sa.Column("pages", sa.Integer(), nullable=False, default=0),
    sa.Column("records_seen", sa.Integer(), nullable=False, default=0),
    sa.Column("reported_total", sa.Integer(), nullable=True),
    sa.Column("scans", sa.Integer(), nullable=False, default=1),
    sa.Column("closed", sa.Boolean(), nullable=False, default=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("scanned_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Index("ix_sync_windows_open", "connector", "shop", "stream", "closed"),
)

source_health = sa.Table(
    "source_health",
    metadata,
    sa.Column("connector", sa.String(32), primary_key=True),
    sa.Column("shop", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(32), primary_key=True, comment="a stream name, or '*' for the whole shop"),
    sa.Column("state", sa.String(32), nullable=False,
              comment="ok | quota_exhausted | configuration | transient: what the last run of this source met"),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("how_to_fix", sa.Text(), nullable=True),
    sa.Column("until", UTCDateTime(), nullable=True, comment="quota exhausted: when the platform resets it"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("shop", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("external_id", sa.String(128), nullable=True),
    sa.Column("error_kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("group_key", sa.String(191), nullable=True, index=True,
              comment="what must be fixed, e.g. 'unknown value status=X': groups the quarantine by cause"),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("payload", LongText, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True, comment="open | replayed | discarded"),
    sa.Column("attempts", sa.Integer(), nullable=False, default=1),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_type", sa.String(48), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=False, comment="every outbox id <= position is handled"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

dispatches = sa.Table(
    "dispatches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("sink", sa.String(64), nullable=False),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    sa.Column("idempotency_key", sa.String(191), nullable=False),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("entity_version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True,
              comment="in_flight | in_doubt | done | skipped | parked"),
    sa.Column("document_ref", sa.String(191), nullable=True, comment="the target's id for the document"),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_error", Json, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("sink", "event_id"),
    sa.Index("ix_dispatches_key", "sink", "idempotency_key"),
)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("hub_id", sa.String(40), sa.ForeignKey("orders.hub_id", ondelete="CASCADE"), nullable=False),
    sa.Column("shipment_id", sa.String(128), nullable=False),
    sa.Column("carrier_code", sa.String(32), nullable=False),
    sa.Column("waybill_no", sa.String(64), nullable=False),
    sa.Column("document", Json, nullable=False, comment="the canonical Shipment as JSON"),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("shipped_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("hub_id", "shipment_id"),
)

audit_trail = sa.Table(
    "audit_trail",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("action", sa.String(48), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("detail", Json, nullable=False),
)

# -- order processing (hub/processing) ------------------------------------------------------------------------------

order_plans = sa.Table(
    "order_plans",
    metadata,
    sa.Column("hub_id", sa.String(40), sa.ForeignKey("orders.hub_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("revision", sa.Integer(), nullable=False, comment="+1 whenever the plan's content changes"),
    sa.Column("status", sa.String(16), nullable=False, index=True,
              comment="released | held | waiting | blocked | cancelled | closed"),
    sa.Column("order_version", sa.Integer(), nullable=False, comment="the order version last planned"),
    sa.Column("group_key", sa.String(191), nullable=True, index=True, comment="blocked: what must be fixed"),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("plan", Json, nullable=False, comment="hub.processing.plan.OrderPlan as JSON"),
    sa.Column("recheck_at", UTCDateTime(), nullable=True, index=True, comment="waiting: plan again at this time"),
    sa.Column("approved_by", sa.String(64), nullable=True, comment="who released its holds (release --approve)"),
    sa.Column("approved_at", UTCDateTime(), nullable=True),
    sa.Column("published_revision", sa.Integer(), nullable=True,
              comment="the revision whose order.released events are in the outbox"),
    sa.Column("released_fingerprint", sa.String(64), nullable=True,
              comment="what the warehouse was sent to pick (codes, SKUs, quantities) at the last release"),
    sa.Column("merged_into", sa.String(40), nullable=True, index=True,
              comment="hub id of the order whose delivery order carries this one"),
    sa.Column("planned_at", UTCDateTime(), nullable=False),
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("event_id", sa.BigInteger(), primary_key=True, autoincrement=False,
              comment="outbox id of an order.accepted/changed event; the primary key is the processing claim"),
    sa.Column("hub_id", sa.String(40), nullable=False, index=True),
    sa.Column("order_version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, comment="planned | skipped (a newer version exists)"),
    sa.Column("processed_at", UTCDateTime(), nullable=False),
)

plan_documents = sa.Table(
    "plan_documents",
    metadata,
    sa.Column("document_code", sa.String(128), primary_key=True, comment="deliveryOrderCode and the like"),
    sa.Column("hub_id", sa.String(40), sa.ForeignKey("orders.hub_id", ondelete="CASCADE"), primary_key=True,
              index=True),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("warehouse", sa.String(32), nullable=True),
    sa.Column("line_refs", Json, nullable=False, comment="[{line_id, qty}] of this order the document ships"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

sku_mappings = sa.Table(
    "sku_mappings",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(32), nullable=False, comment="'*' for every channel"),
    sa.Column("shop", sa.String(64), nullable=False, comment="'*' for every shop"),
    sa.Column("key_kind", sa.String(16), nullable=False, comment="merchant_code | platform_sku_id"),
    sa.Column("key_value", sa.String(128), nullable=False),
    sa.Column("master_sku", sa.String(128), nullable=False, comment="a master SKU or a bundle code"),
    sa.Column("source", sa.String(191), nullable=False, comment="the imported file"),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel", "shop", "key_kind", "key_value"),
)


channel_tokens = sa.Table(
    "channel_tokens",
    metadata,
    sa.Column("connector", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(191), primary_key=True, comment="whose tokens: gateway + app key + shop"),
    sa.Column("access_token", sa.Text(), nullable=False),
    sa.Column("refresh_token", sa.Text(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("lifetime_s", sa.Integer(), nullable=True),
    sa.Column("refreshed_at", UTCDateTime(), nullable=False),
    comment="sessions refreshed by the hub: a refresh token is single use, so every process must see the newest",
)

# The later rooms declare their tables in their own modules, on this same metadata (imported last: they import it).
from hub.store import (  # noqa: E402,F401
    schema_aftersales,
    schema_finance,
    schema_fulfilment,
    schema_operations,
    schema_stock,
)

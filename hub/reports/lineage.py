"""One order's full trail, for ``orderhub order show <channel> <id>``: paid -> hub -> every sink document ->
shipped -> written back, with times, and every raw version the channel sent.

Read only from the hub's tables: the order and its bindings, ``raw_payloads`` (each distinct version received),
``audit_trail`` (accepted, changed, planned, dispatched, shipped, written back, refunds, receipts, reviews), the
outbox events, ``dispatches`` (document refs per sink), shipments, refunds, receipts and reviews.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.errors import ConfigurationError
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema_aftersales import refunds as refunds_t
from hub.store.schema_finance import receipts, reviews


@dataclass
class Step:
    at: datetime | None
    what: str
    who: str
    detail: str = ""


@dataclass
class Lineage:
    channel: str
    shop: str
    order_id: str
    hub_id: str
    status: str
    version: int
    paid_total: int
    steps: list[Step] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)  # sink, event, status, document ref, attempts
    raw_versions: list[dict[str, Any]] = field(default_factory=list)  # received_at, updated_at, hash, payload


def _short(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail or "")
    keep = {k: v for k, v in detail.items() if v not in (None, "", [], {})}
    return ", ".join(f"{k}={v}" for k, v in keep.items())[:160]


def order_lineage(engine: Engine, channel: str, order_id: str, shop: str | None = None) -> Lineage:
    with reading(engine) as conn:
        q = sa.select(t.orders).where(t.orders.c.channel == channel, t.orders.c.order_id == order_id)
        if shop:
            q = q.where(t.orders.c.shop == shop)
        found = conn.execute(q).all()
        if not found:
            raise ConfigurationError(f"no {channel} order {order_id} in the hub",
                                     how_to_fix="check the channel and id, or sync the shop first "
                                                "(`orderhub sync --channel ...`)")
        if len(found) > 1:
            raise ConfigurationError(f"{channel} order {order_id} exists in several shops",
                                     how_to_fix="pass --shop")
        order = found[0]
        hub_id = order.hub_id
        lineage = Lineage(channel, order.shop, order_id, hub_id, order.status, order.version, order.paid_total)
        steps = lineage.steps
        document = order.document if isinstance(order.document, dict) else json.loads(order.document)
        steps.append(Step(order.placed_at, "placed", channel))
        if order.paid_at:
            steps.append(Step(order.paid_at, "paid", channel, f"paid_total={order.paid_total} fen"))
        steps.append(Step(order.first_seen_at, "in the hub", "sync", f"version 1 of {order.version}"))
        for r in conn.execute(sa.select(t.audit_trail).where(t.audit_trail.c.hub_id == hub_id)
                              .order_by(t.audit_trail.c.at, t.audit_trail.c.id)):
            steps.append(Step(r.at, r.action, r.actor, _short(r.detail)))
        for r in conn.execute(sa.select(t.shipments).where(t.shipments.c.hub_id == hub_id)):
            steps.append(Step(r.shipped_at, "shipped", r.source, f"{r.carrier_code} {r.waybill_no}"))
        if document.get("shipped_at") and not any(s.what == "shipped" for s in steps):
            steps.append(Step(datetime.fromisoformat(document["shipped_at"]), "shipped", channel,
                              "as the channel says"))
        for r in conn.execute(sa.select(refunds_t).where(refunds_t.c.hub_id == hub_id)):
            steps.append(Step(r.updated_at, f"refund {r.status.lower()}", channel,
                              f"{r.refund_id} {r.refunded_amount or r.requested_amount} fen"))
        for r in conn.execute(sa.select(receipts).where(receipts.c.hub_id == hub_id)):
            steps.append(Step(r.paid_at, "payment settled", r.source, f"{r.txn_id} {r.amount} fen, fee {r.fee}"))
        for r in conn.execute(sa.select(reviews).where(reviews.c.hub_id == hub_id)):
            steps.append(Step(r.created_at, f"reviewed {r.rating}", channel, f"line {r.line_id} score {r.score}"))
        events = {e.id: e for e in conn.execute(sa.select(t.outbox.c.id, t.outbox.c.event_type, t.outbox.c.version)
                                                .where(t.outbox.c.hub_id == hub_id))}
        for d in conn.execute(sa.select(t.dispatches).where(t.dispatches.c.hub_id == hub_id)
                              .order_by(t.dispatches.c.id)):
            event = events.get(d.event_id)
            lineage.documents.append({"sink": d.sink, "event": event.event_type if event else d.event_id,
                                      "version": d.entity_version, "status": d.status,
                                      "document": d.document_ref or "-", "attempts": d.attempts,
                                      "at": d.updated_at})
        for r in conn.execute(sa.select(t.raw_payloads).where(
                t.raw_payloads.c.channel == channel, t.raw_payloads.c.shop == order.shop,
                t.raw_payloads.c.entity == "order", t.raw_payloads.c.external_id == order_id)
                .order_by(t.raw_payloads.c.received_at, t.raw_payloads.c.id)):
            lineage.raw_versions.append({"received_at": r.received_at, "updated_at": r.updated_at,
                                         "hash": r.content_hash[:12], "payload": r.payload})
    steps.sort(key=lambda s: (s.at is None, s.at or datetime.min))
    return lineage

"""After-sales (售后): refunds from every channel into the hub, with the same promises as orders.

A refund is the one record that changes what the warehouse must do: requested before the parcel left, the delivery
order must be intercepted; after, the goods may come back. So every new refund and every change of one becomes an
outbox event on its ORDER (``refund.requested`` the first time, ``refund.changed`` after), carrying whether any parcel
of that order had shipped when the hub learned of it, and sinks (the WMS intercept, the ERP credit) follow it in order
with the order's other events.

Refunds are read by their own stream (``entity = "refund"``) and may arrive before their order (a refund created
minutes after payment, in a window read before the order's). Such a refund is stored with ``event_pending``; the
process step links it once the order is in the hub (``link_pending_refunds``), so its event is never lost and never
precedes the order's acceptance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.errors import RecordError
from hub.ingest import IngestResult, Source, archive_raw, close_page, raw_json, storable_id
from hub.logging import get_logger
from hub.models import OrderStatus, Refund
from hub.store import schema as t
from hub.store.schema import utcnow
from hub.store.schema_aftersales import refunds

log = get_logger(__name__)

ENTITY = "refund"
SHIPPED_STATUSES = frozenset({OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
                              OrderStatus.COMPLETED})


def _newer(refund: Refund, channel_version: str | None, updated_at: datetime) -> bool:
    """Is ``refund`` newer than a copy stamped (channel_version, updated_at)? The channel's own refund version
    decides when both have one (two changes can share a modified second); otherwise the modified time."""
    if refund.version and channel_version and refund.version.isdigit() and channel_version.isdigit():
        return int(refund.version) > int(channel_version)
    return refund.updated_at > updated_at


def ingest_refunds(engine: Engine, source: Source, records: Iterable[Mapping[str, Any]], *,
                   in_same_transaction=None, actor: str = "sync",
                   quarantine_ids: Mapping[int, int] | None = None) -> IngestResult:
    """Map, validate and store refunds in one transaction (see hub/entities.py for what every ingester promises)."""
    now = utcnow()
    result = IngestResult()
    context = {"channel": source.channel, "shop": source.shop}
    good: dict[str, Refund] = {}
    raws: list[dict[str, Any]] = []
    bad: list[tuple[int, str | None, RecordError, str]] = []
    for index, record in enumerate(records):
        result.received += 1
        ext = source.external_id(record) if isinstance(record, Mapping) else None
        raw, unreadable = raw_json(record)  # personal values sealed when a key is configured
        if unreadable is not None:
            bad.append((index, storable_id(ext), unreadable, raw))
            continue
        try:
            refund = source.mapper.to_model(record, context)
        except RecordError as exc:
            bad.append((index, ext, exc, raw))
            continue
        raws.append({"external_id": refund.refund_id, "raw": raw, "updated_at": refund.updated_at})
        previous = good.get(refund.refund_id)
        if previous is None or _newer(refund, previous.version, previous.updated_at):
            good[refund.refund_id] = refund

    with engine.begin() as conn:
        archive_raw(conn, source, raws, now)
        stored = _stored(conn, source, list(good))
        order_hubs = _order_hub_ids(conn, source, {r.order_id for r in good.values()})
        events, audits = [], []
        for refund_id, refund in good.items():
            previous = stored.get(refund_id)
            hub_id = order_hubs.get(refund.order_id)
            if previous is not None and not _newer(refund, previous.channel_version, previous.updated_at):
                result.unchanged += 1
                continue
            version = 1 if previous is None else previous.version + 1
            row = _row(source, refund, hub_id, version, now)
            if previous is None:
                conn.execute(sa.insert(refunds).values(first_seen_at=now, event_pending=hub_id is None, **row))
                result.new += 1
            else:
                # version-guarded: a concurrent writer that stored a newer change wins
                updated = conn.execute(sa.update(refunds).where(
                    refunds.c.channel == source.channel, refunds.c.shop == source.shop,
                    refunds.c.refund_id == refund_id, refunds.c.version == previous.version,
                ).values(event_pending=hub_id is None or previous.event_pending, **row)).rowcount
                if updated != 1:
                    result.unchanged += 1
                    continue
                result.changed += 1
            if hub_id is not None and (previous is None or not previous.event_pending):
                event_type = "refund.requested" if previous is None else "refund.changed"
                events.append(_event(conn, event_type, hub_id, refund, version, now))
                audits.append({"hub_id": hub_id, "at": now, "action": event_type, "actor": actor,
                               "detail": {"refund_id": refund_id, "status": refund.status.value,
                                          "version": version}})
                result.hub_ids.append(hub_id)
            elif hub_id is not None:  # stored earlier without its order, which has arrived since: link now
                _link(conn, source.channel, source.shop, refund_id, hub_id, now, actor)
                result.hub_ids.append(hub_id)
        if events:
            conn.execute(sa.insert(t.outbox), events)
        if audits:
            conn.execute(sa.insert(t.audit_trail), audits)
        result.quarantined = close_page(conn, source, bad, now, quarantine_ids, in_same_transaction)
    for _index, ext, exc, _raw in bad:
        log.warning("refund quarantined", external_id=ext, error=exc.to_dict())
    return result


def link_pending_refunds(engine: Engine, actor: str = "process") -> int:
    """Refunds stored before their order: link those whose order is in the hub now and emit their event."""
    with engine.begin() as conn:
        pending = list(conn.execute(sa.select(refunds.c.channel, refunds.c.shop, refunds.c.refund_id,
                                              refunds.c.order_id).where(refunds.c.event_pending.is_(True))))
        linked = 0
        for row in pending:
            hub_id = _order_hub_ids(conn, Source(row.channel, row.shop, None, lambda r: None), {row.order_id}
                                    ).get(row.order_id)
            if hub_id is not None:
                _link(conn, row.channel, row.shop, row.refund_id, hub_id, utcnow(), actor)
                linked += 1
    if linked:
        log.info("refunds linked to their orders", linked=linked)
    return linked


def _link(conn: Connection, channel: str, shop: str, refund_id: str, hub_id: str, now: datetime,
          actor: str) -> None:
    row = conn.execute(sa.select(refunds).where(refunds.c.channel == channel, refunds.c.shop == shop,
                                                refunds.c.refund_id == refund_id)).one()
    refund = Refund.model_validate_json(row.document if isinstance(row.document, str) else json.dumps(row.document))
    claimed = conn.execute(sa.update(refunds).where(
        refunds.c.channel == channel, refunds.c.shop == shop, refunds.c.refund_id == refund_id,
        refunds.c.event_pending.is_(True)).values(hub_id=hub_id, event_pending=False)).rowcount
    if claimed != 1:  # another process linked it first
        return
    conn.execute(sa.insert(t.outbox), [_event(conn, "refund.requested", hub_id, refund, row.version, now)])
    conn.execute(sa.insert(t.audit_trail), [{"hub_id": hub_id, "at": now, "action": "refund.requested",
                                            "actor": actor, "detail": {"refund_id": refund_id, "linked": True,
                                                                       "status": refund.status.value}}])


def refunds_of(conn: Connection, hub_id: str) -> list[Refund]:
    """Every refund of one order, as canonical models (sinks deciding an intercept or a credit read these)."""
    rows = conn.execute(sa.select(refunds.c.document).where(refunds.c.hub_id == hub_id)
                        .order_by(refunds.c.first_seen_at, refunds.c.refund_id))
    return [Refund.model_validate_json(d if isinstance(d, str) else json.dumps(d)) for (d,) in rows]


def _stored(conn: Connection, source: Source, refund_ids: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(refund_ids), 500):
        rows = conn.execute(sa.select(refunds.c.refund_id, refunds.c.updated_at, refunds.c.channel_version,
                                      refunds.c.version, refunds.c.event_pending).where(
            refunds.c.channel == source.channel, refunds.c.shop == source.shop,
            refunds.c.refund_id.in_(refund_ids[start:start + 500])))
        found.update({r.refund_id: r for r in rows})
    return found


def _order_hub_ids(conn: Connection, source: Source, order_ids: set[str]) -> dict[str, str]:
    if not order_ids:
        return {}
    rows = conn.execute(sa.select(t.bindings.c.external_id, t.bindings.c.hub_id).where(
        t.bindings.c.channel == source.channel, t.bindings.c.shop == source.shop, t.bindings.c.entity == "order",
        t.bindings.c.external_id.in_(sorted(order_ids))))
    return dict(rows.all())


def _shipped(conn: Connection, hub_id: str) -> bool:
    """Had any parcel of the order left when the hub learned of the refund? Hub shipments or the channel's status."""
    if conn.execute(sa.select(t.shipments.c.id).where(t.shipments.c.hub_id == hub_id).limit(1)).first():
        return True
    status = conn.execute(sa.select(t.orders.c.status).where(t.orders.c.hub_id == hub_id)).scalar()
    return status in SHIPPED_STATUSES


def _event(conn: Connection, event_type: str, hub_id: str, refund: Refund, version: int, now: datetime
           ) -> dict[str, Any]:
    return {"event_type": event_type, "entity": ENTITY, "hub_id": hub_id, "version": version, "created_at": now,
            "payload": {"channel": refund.platform, "shop": refund.shop_id, "order_id": refund.order_id,
                        "refund_id": refund.refund_id, "status": refund.status.value, "type": refund.type.value,
                        "requested_amount": refund.requested_amount, "refunded_amount": refund.refunded_amount,
                        "line_id": refund.line_id, "reason": refund.reason, "shipped": _shipped(conn, hub_id),
                        "version": version, "updated_at": refund.updated_at.isoformat()}}


def _row(source: Source, refund: Refund, hub_id: str | None, version: int, now: datetime) -> dict[str, Any]:
    return {"channel": source.channel, "shop": source.shop, "refund_id": refund.refund_id, "hub_id": hub_id,
            "order_id": refund.order_id, "line_id": refund.line_id, "type": refund.type.value,
            "status": refund.status.value, "raw_status": refund.raw_status[:64],
            "requested_amount": refund.requested_amount, "refunded_amount": refund.refunded_amount,
            "currency": refund.currency, "updated_at": refund.updated_at, "channel_version": refund.version,
            "version": version, "document": json.loads(refund.model_dump_json()), "stored_at": now}

"""Intercept (拦截): stop a delivery order the WMS has not shipped yet, with Qimen ``deliveryorder.cancel``.

Two outbox events ask for it, both on the ORDER, so they follow that order's ``order.released`` documents in the same
subscription and can never overtake them:

* ``refund.requested`` (hub/aftersales.py) whose payload says nothing had shipped (``shipped: false``);
* ``order.changed`` where the order became CANCELLED / CLOSED_REFUNDED, or a line's ``refund_status`` is REQUESTED.

Which delivery orders: the documents processing bound to this order (``plan_documents``) and the ones this sink
delivered (``bindings``), when the sink was given the hub's engine; otherwise the codes are derived from the channel
order alone (``TMALL-<tid>``, then ``-1``, ``-2``… of a split) and the WMS says which exist. A cancel is idempotent
in the WMS (a canceled order answers success again), so a cancel whose answer was lost is simply sent again; an
order the WMS never created answers ``order-not-exist`` and needs nothing. A cancel the WMS refuses because the
parcel already left (``order-already-delivered``) is NOT dropped: it raises a RecordError that dispatch parks with
the reason "already shipped: intercept failed" (``orderhub status`` counts it under the sink's parked events, and the
audit trail keeps the codes), so a person can stop the parcel with the carrier or turn it into a return. A document
whose shipment the hub already recorded is not asked at all (an order closed by a refund after delivery is a return).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from connectors.qimen_wms.client import QimenClient, to_xml
from hub.connector import Delivery
from hub.errors import RecordError
from hub.logging import get_logger
from hub.models import Order, OrderStatus, RefundStatus

log = get_logger(__name__)

CANCEL = "deliveryorder.cancel"
INTERCEPT_EVENTS = ("order.changed", "refund.requested")
CLOSED = frozenset({OrderStatus.CANCELLED, OrderStatus.CLOSED_REFUNDED})
SHIPPED = frozenset({OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
                     OrderStatus.COMPLETED})
FAILED_REASON = "already shipped: intercept failed"
MAX_SPLIT = 20  # derived codes: a split beyond this many documents is not guessed (the engine path knows them)


def wanted(order: Order, event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(why to intercept, or None) and the line to intercept for (None: the whole order)."""
    payload = event.get("payload") or {}
    if event.get("event_type") == "refund.requested":
        if payload.get("shipped"):
            return None, None  # the goods left before the refund: a return, not an intercept
        if payload.get("status") in (RefundStatus.CLOSED.value, RefundStatus.REJECTED.value):
            return None, None
        return f"refund {payload.get('refund_id')} requested before shipment", payload.get("line_id")
    if order.status in CLOSED:
        return f"order {order.status.value.lower()}", None
    requested = [line.line_id for line in order.lines if line.refund_status == RefundStatus.REQUESTED.value]
    if requested and order.status not in SHIPPED:
        return "refund requested on line(s) " + ",".join(requested), requested[0] if len(requested) == 1 else None
    return None, None


def candidate_codes(order: Order, engine, sink_name: str, line_id: str | None
                    ) -> tuple[list[str], list[str], list[str]]:
    """(codes to cancel, merged codes that carry other orders too, codes the hub already recorded as shipped).
    Without an engine: all empty (the codes are derived and the WMS is asked)."""
    if engine is None:
        return [], [], []
    from hub.store import schema as t
    from hub.store.db import reading

    with reading(engine) as conn:
        hub_id = conn.execute(sa.select(t.orders.c.hub_id).where(
            t.orders.c.channel == order.platform, t.orders.c.shop == order.shop_id,
            t.orders.c.order_id == order.order_id)).scalar()
        if hub_id is None:
            return [], [], []
        docs = list(conn.execute(sa.select(t.plan_documents.c.document_code, t.plan_documents.c.line_refs)
                                 .where(t.plan_documents.c.hub_id == hub_id)))
        codes = {d.document_code for d in docs
                 if line_id is None or any(ref.get("line_id") == line_id for ref in (d.line_refs or []))}
        if line_id is None or not docs:
            codes |= set(conn.execute(sa.select(t.bindings.c.external_id).where(
                t.bindings.c.channel == sink_name, t.bindings.c.shop == "-", t.bindings.c.entity == "document",
                t.bindings.c.hub_id == hub_id)).scalars())
        merged, shipped = set(), set()
        if codes:
            merged = set(conn.execute(sa.select(t.plan_documents.c.document_code).where(
                t.plan_documents.c.document_code.in_(sorted(codes)), t.plan_documents.c.hub_id != hub_id)).scalars())
            # a document whose parcel the hub already recorded left the warehouse before the order closed (a
            # return-refund after delivery closes the trade too): nothing to intercept, and no false alarm
            shipped = {code for code in codes if conn.execute(sa.select(t.shipments.c.id).where(
                t.shipments.c.hub_id == hub_id, t.shipments.c.shipment_id.like(f"{code}/%")).limit(1)).first()}
    return sorted(codes - merged - shipped), sorted(merged - shipped), sorted(shipped)


def cancel_body(settings, code: str, reason: str) -> str:
    return to_xml("request", {"warehouseCode": settings.warehouse_code, "ownerCode": settings.customer_id,
                              "orderCode": code, "orderType": "JYCK", "cancelReason": reason[:120]})


def cancel(client: QimenClient, code: str, reason: str) -> str:
    """One cancel: 'canceled' (also when it already was), 'missing' (never created), 'shipped' (refused)."""
    try:
        client.call(CANCEL, cancel_body(client.settings, code, reason), write=True)
    except RecordError as exc:
        wms_code = str(exc.attributes.get("code") or "")
        if wms_code == "order-not-exist":
            return "missing"
        if wms_code == "order-already-delivered":
            return "shipped"
        raise
    return "canceled"


def intercept(client: QimenClient, engine, sink_name: str, order: Order, event: Mapping[str, Any]) -> Delivery:
    reason, line_id = wanted(order, event)
    if reason is None:
        return Delivery(None, skipped_reason=f"{event.get('event_type')}: nothing to intercept")
    codes, merged, known_shipped = candidate_codes(order, engine, sink_name, line_id)
    outcomes: dict[str, str] = {}
    if engine is not None:
        for code in codes:
            outcomes[code] = cancel(client, code, reason)
    else:
        base = f"{order.platform.upper()}-{order.order_id}"
        outcomes[base] = cancel(client, base, reason)
        if outcomes[base] == "missing":  # a split order's documents are numbered -1, -2, … (hub.processing.plan)
            del outcomes[base]
            for no in range(1, MAX_SPLIT + 1):
                found = cancel(client, f"{base}-{no}", reason)
                if found == "missing":
                    break
                outcomes[f"{base}-{no}"] = found
    canceled = sorted(c for c, o in outcomes.items() if o == "canceled")
    shipped = sorted(c for c, o in outcomes.items() if o == "shipped")
    detail = {"intercept": reason, "canceled": canceled, "shipped": shipped, "merged": merged,
              "recorded_shipped": known_shipped}
    if shipped or merged:
        log.warning("intercept failed", order_id=order.order_id, shipped=shipped, merged=merged)
        why = FAILED_REASON if shipped else "merged delivery order: intercept needs a person"
        raise RecordError(
            why, sink=sink_name, group_key=why, documents=shipped or merged, canceled=canceled,
            how_to_fix=("the parcel left the warehouse: ask the carrier to stop it, or handle it as a return; this "
                        "parked event is the record (a replay asks the WMS again)" if shipped else
                        "the delivery order also carries other orders: cancel or amend it in the WMS by hand"))
    if not canceled:
        why = "already shipped (recorded): a return, not an intercept" if known_shipped else (
            "no delivery order in the WMS to cancel")
        return Delivery(None, skipped_reason=f"{reason}: {why}")
    log.info("delivery order intercepted", order_id=order.order_id, documents=canceled)
    return Delivery(canceled[0], detail=detail)

"""Returns (退货入库): announce an after-sales return with goods to the WMS with Qimen ``returnorder.create``, and read
the WMS's ``returnorder.confirm`` receipts back.

A refund event (``refund.requested`` / ``refund.changed``, hub/aftersales.py) asks for a return order when the
refund is a return (``type: return_refund``), something had shipped (``shipped: true``), and the buyer has been told
to send the goods back or has done so (status WAIT_RETURN or RETURNED): a return the seller has not agreed to yet
may still be refused, and the warehouse should not expect it. The return order code is ``RT-<CHANNEL>-<refund id>``:
the WMS de-duplicates on it, so the later events of the same refund, or a create whose answer was lost, answer
success again and create nothing. The lines are the refunded channel line's master SKUs as processing released them
(``plan_documents.line_refs``), with the delivery order they left in as ``preDeliveryOrderCode``.

``poll_returns`` reads the WMS's return receipts (the sandbox's ``/qimen/_returns`` feed, same shape and signature as
the confirm feed) into ``ReturnReceipt``s: what came back, per item and inventory type (ZP sellable, CC damaged...).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import sqlalchemy as sa

from connectors.qimen_wms.client import QimenClient, to_xml
from hub.connector import Delivery
from hub.errors import RecordError, TransientError
from hub.models import Order, RefundStatus, RefundType

CREATE_RETURN = "returnorder.create"
RETURN_EVENTS = ("refund.requested", "refund.changed")
EXPECT_GOODS = frozenset({RefundStatus.WAIT_RETURN.value, RefundStatus.RETURNED.value})


def return_order_code(order: Order, refund_id: str) -> str:
    return f"RT-{order.platform.upper()}-{refund_id}"


def wants_return(event: Mapping[str, Any]) -> bool:
    payload = event.get("payload") or {}
    return (event.get("event_type") in RETURN_EVENTS and payload.get("type") == RefundType.RETURN_REFUND.value
            and bool(payload.get("shipped")) and payload.get("status") in EXPECT_GOODS)


def _planned(engine, order: Order, line_id: str | None) -> list[tuple[str, str, str, int]]:
    """(document code, channel line id, master SKU, qty) the refund takes back, from what processing released."""
    from hub.store import schema as t
    from hub.store.db import reading

    with reading(engine) as conn:
        hub_id = conn.execute(sa.select(t.orders.c.hub_id).where(
            t.orders.c.channel == order.platform, t.orders.c.shop == order.shop_id,
            t.orders.c.order_id == order.order_id)).scalar()
        docs = list(conn.execute(sa.select(t.plan_documents.c.document_code, t.plan_documents.c.line_refs)
                                 .where(t.plan_documents.c.hub_id == hub_id)
                                 .order_by(t.plan_documents.c.document_code)))
    out = []
    for doc in docs:
        for ref in doc.line_refs or []:
            if line_id is None or ref.get("line_id") == line_id:
                out.extend((doc.document_code, ref["line_id"], sku, int(qty))
                           for sku, qty in (ref.get("skus") or {}).items())
    return out


def announce_return(client: QimenClient, engine, sink_name: str, order: Order,
                    event: Mapping[str, Any]) -> Delivery:
    payload = event.get("payload") or {}
    if not wants_return(event):
        return Delivery(None, skipped_reason=f"{event.get('event_type')} ({payload.get('type')}, "
                                             f"{payload.get('status')}): no goods expected back")
    refund_id = str(payload["refund_id"])
    line_id = payload.get("line_id")
    if engine is not None:
        planned = _planned(engine, order, line_id)
    else:  # no hub database: the channel lines' own SKU codes (right when they are the master SKUs)
        planned = [(f"{order.platform.upper()}-{order.order_id}", line.line_id,
                    line.merchant_sku_code or line.platform_sku_id or "", line.qty)
                   for line in order.lines if line_id is None or line.line_id == line_id]
    if not planned:
        raise RecordError(f"refund {refund_id}: no released line to take back", sink=sink_name,
                          group_key="return without released lines",
                          how_to_fix="the refunded line never reached the WMS: receive the goods by hand")
    s = client.settings
    code = return_order_code(order, refund_id)
    document = {
        "returnOrder": {
            "returnOrderCode": code, "warehouseCode": s.warehouse_code, "orderType": "THRK",
            "preDeliveryOrderCode": planned[0][0], "sourcePlatformCode": s.platform_codes.get(order.platform, "OTHER"),
            "logisticsCode": s.logistics_code, "returnReason": (payload.get("reason") or "")[:120] or None,
            "buyerNick": order.buyer_ref,
        },
        "orderLines": [
            {"orderLineNo": str(i), "sourceOrderCode": order.order_id, "subSourceOrderCode": line,
             "ownerCode": s.customer_id, "itemCode": sku, "inventoryType": "ZP", "planQty": str(qty)}
            for i, (_doc, line, sku, qty) in enumerate(planned, start=1)
        ],
    }
    answer = client.call(CREATE_RETURN, to_xml("request", document), write=True)
    return Delivery(code, detail={"return_order": code, "wms_id": answer.get("returnOrderId"),
                                  "delivery_order": planned[0][0], "refund_id": refund_id})


@dataclass(frozen=True)
class ReturnLine:
    item_code: str
    inventory_type: str
    planned: int
    received: int
    source_order_code: str | None = None
    sub_source_order_code: str | None = None


@dataclass(frozen=True)
class ReturnReceipt:
    return_order_code: str
    out_biz_code: str
    delivery_order_code: str | None
    confirmed_at: str | None
    lines: list[ReturnLine] = field(default_factory=list)


def _text(node: ET.Element | None, tag: str) -> str:
    child = node.find(tag) if node is not None else None
    return (child.text or "").strip() if child is not None else ""


def parse_return_confirm(body: str) -> ReturnReceipt:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise RecordError(f"returnorder.confirm is not XML: {exc}", group_key="malformed wms return") from exc
    head = root.find("returnOrder")
    code = _text(head, "returnOrderCode")
    if not code:
        raise RecordError("returnorder.confirm without returnOrderCode", group_key="malformed wms return")
    lines = [ReturnLine(_text(n, "itemCode"), _text(n, "inventoryType") or "ZP", int(_text(n, "planQty") or 0),
                        int(_text(n, "actualQty") or 0), _text(n, "sourceOrderCode") or None,
                        _text(n, "subSourceOrderCode") or None) for n in root.iterfind("orderLines/orderLine")]
    return ReturnReceipt(code, _text(head, "outBizCode") or code, _text(head, "preDeliveryOrderCode") or None,
                         _text(head, "orderConfirmTime") or None, lines)


def poll_returns(settings, feed_url: str, after: int, limit: int = 200) -> list[tuple[int, ReturnReceipt | None,
                                                                                   Exception | None, str]]:
    """(seq, receipt or None, the RecordError why not, raw body) of the return receipts after ``after``."""
    try:
        resp = requests.get(feed_url, params={"after": after, "limit": limit}, timeout=settings.http.timeout_s)
    except requests.RequestException as exc:
        raise TransientError(f"cannot read the WMS return feed: {type(exc).__name__}", endpoint=feed_url) from exc
    if resp.status_code != 200:
        raise TransientError(f"WMS return feed answered HTTP {resp.status_code}", endpoint=feed_url)
    client = QimenClient(settings)
    out = []
    for item in resp.json().get("returns") or []:
        params, body = dict(item.get("params") or {}), str(item.get("body") or "")
        try:
            if not client.verify_incoming(params, body):
                raise RecordError("return receipt with a wrong signature", group_key="wms return signature mismatch")
            out.append((int(item["seq"]), parse_return_confirm(body), None, body))
        except RecordError as exc:
            out.append((int(item["seq"]), None, exc, body))
    return out


RECEIVED = "return.received"


def record_return(engine, sink_name: str, receipt: ReturnReceipt) -> str:
    """Store one return receipt and write its ``return.received`` outbox event (the ERP credit follows it), in one
    transaction; 'recorded' or 'duplicate' (the same return order received before), RecordError when unknown."""
    from hub.ingest import load_order
    from hub.store import schema as t
    from hub.store.schema import utcnow
    from hub.store.schema_fulfilment import return_receipts as rr

    now = utcnow()
    with engine.begin() as conn:
        hub_id = conn.execute(sa.select(t.bindings.c.hub_id).where(
            t.bindings.c.channel == sink_name, t.bindings.c.shop == "-", t.bindings.c.entity == "document",
            t.bindings.c.external_id == receipt.return_order_code)).scalar()
        if hub_id is None:
            raise RecordError(f"return receipt for unknown return order {receipt.return_order_code}",
                              sink=sink_name, group_key="return receipt for unknown return order")
        if conn.execute(sa.select(rr.c.hub_id).where(rr.c.sink == sink_name,
                                                     rr.c.return_order_code == receipt.return_order_code)).first():
            return "duplicate"
        loaded = load_order(conn, hub_id)
        assert loaded is not None
        order, version = loaded
        prefix = f"RT-{order.platform.upper()}-"
        refund_id = receipt.return_order_code.removeprefix(prefix) if receipt.return_order_code.startswith(
            prefix) else None
        lines = [{"item_code": r.item_code, "inventory_type": r.inventory_type, "planned": r.planned,
                  "received": r.received, "line_id": r.sub_source_order_code} for r in receipt.lines]
        conn.execute(sa.insert(rr).values(
            sink=sink_name, return_order_code=receipt.return_order_code, hub_id=hub_id, refund_id=refund_id,
            out_biz_code=receipt.out_biz_code, delivery_order_code=receipt.delivery_order_code, lines=lines,
            confirmed_at=receipt.confirmed_at, created_at=now))
        outbox_id = conn.execute(sa.insert(t.outbox).values(
            event_type=RECEIVED, entity="return", hub_id=hub_id, version=version, created_at=now,
            payload={"channel": order.platform, "shop": order.shop_id, "order_id": order.order_id,
                     "refund_id": refund_id, "return_order_code": receipt.return_order_code,
                     "delivery_order_code": receipt.delivery_order_code, "lines": lines})).inserted_primary_key[0]
        conn.execute(sa.update(rr).where(rr.c.sink == sink_name, rr.c.return_order_code == receipt.return_order_code)
                     .values(outbox_id=outbox_id))
        conn.execute(sa.insert(t.audit_trail).values(
            hub_id=hub_id, at=now, action=RECEIVED, actor=sink_name,
            detail={"return_order_code": receipt.return_order_code, "message_id": receipt.out_biz_code,
                    "received": sum(r.received for r in receipt.lines), "outbox_id": outbox_id}))
    return "recorded"


def take_returns(engine, settings) -> dict[str, int]:
    """Poll the WMS's return feed from this sink's own position (``subscriptions`` row ``returns:<sink>``) and
    record every receipt once; bad ones go to quarantine with their raw body. Returns counts."""
    from hub.store import schema as t
    from hub.store.db import reading
    from hub.store.schema import utcnow

    counts = {"received": 0, "recorded": 0, "duplicates": 0, "rejected": 0}
    feed = settings.returns_feed_url
    if not feed:
        return counts
    name = f"returns:{settings.name}"
    while True:
        with reading(engine) as conn:
            after = int(conn.execute(sa.select(t.subscriptions.c.position)
                                     .where(t.subscriptions.c.name == name)).scalar() or 0)
        items = poll_returns(settings, feed, after)
        if not items:
            return counts
        for seq, receipt, error, raw in items:
            counts["received"] += 1
            if error is None and receipt is not None:
                try:
                    outcome = record_return(engine, settings.name, receipt)
                    counts["recorded" if outcome == "recorded" else "duplicates"] += 1
                except RecordError as exc:
                    error = exc
            if error is not None:
                counts["rejected"] += 1
                _quarantine(engine, settings.name, raw, error)
            with engine.begin() as conn:
                updated = conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.name == name)
                                       .values(position=seq, updated_at=utcnow())).rowcount
                if not updated:
                    conn.execute(sa.insert(t.subscriptions).values(name=name, position=seq, updated_at=utcnow()))


def _quarantine(engine, sink_name: str, raw: str, error: Exception) -> None:
    from hub.store import schema as t
    from hub.store.schema import utcnow

    attributes = dict(getattr(error, "attributes", {}) or {})
    message = getattr(error, "message", str(error))
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.insert(t.quarantine).values(
            channel=sink_name, shop="-", entity="return_receipt", external_id=None,
            error_kind=getattr(error, "kind", "record"), reason=message,
            group_key=str(attributes.get("group_key") or message)[:191],
            attributes={k: v for k, v in attributes.items() if k != "group_key"}, payload=raw,
            status="open", attempts=1, created_at=now, updated_at=now))

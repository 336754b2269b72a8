"""Qimen WMS sink: each fulfilment group the hub's processing released becomes one ``deliveryorder.create``
(specs §6.2).

The sink subscribes to ``order.released``: one event per group, carrying the group itself (warehouse, master SKU
lines with their allocated money, COD amount), so the document is built from exactly what processing decided and
the sink holds no business rules. The delivery order code comes with the group and is derived from the channel order
alone (``TMALL-3817…``, ``TMALL-3817…-2`` for the second of a split), never from a hub-generated id, so the WMS's
own idempotency on ``deliveryOrderCode`` protects us even if the hub's database were rebuilt: a repeated create
answers success with the same WMS id and creates nothing.

The same subscription carries the order's after-sales events, so they stay in order behind its delivery orders:
``order.changed`` / ``refund.requested`` that ask for an intercept (``deliveryorder.cancel``, intercept.py) and refund
events of a return with goods (``returnorder.create``, returns.py). ``Hub.sinks`` hands the sink the hub's engine
(``attach_engine``) so both read which documents the order was released in.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors.qimen_wms.client import QimenClient, to_xml
from connectors.qimen_wms.intercept import INTERCEPT_EVENTS, intercept
from connectors.qimen_wms.returns import RETURN_EVENTS, announce_return, take_returns, wants_return
from connectors.qimen_wms.settings import QimenWmsSettings
from connectors.tmall.client import top_time
from hub.connector import Delivery
from hub.models import Order

CREATE = "deliveryorder.create"


def yuan(fen: int) -> str:
    return f"{(Decimal(fen) / 100).quantize(Decimal('0.01'))}"


def delivery_order_code(order: Order, group: Mapping[str, Any] | None = None) -> str:
    return str(group["document_code"]) if group else f"{order.platform.upper()}-{order.order_id}"


class QimenWmsSink:
    # the intercept events ride the same subscription, so a cancel never overtakes its order's delivery orders
    event_types = ("order.released", *INTERCEPT_EVENTS, "refund.changed")

    def __init__(self, settings: QimenWmsSettings, client: QimenClient | None = None, engine=None) -> None:
        self.settings = settings
        self.name = settings.name
        self.client = client or QimenClient(settings)
        self.engine = engine  # the hub's, when given (Hub.sinks): the intercept reads which documents were sent

    def attach_engine(self, engine) -> None:
        self.engine = engine

    def take_feedback(self) -> dict[str, int]:
        """Return receipts (``returns_feed_url``) into the hub: each one a ``return.received`` event, once."""
        if self.engine is None:
            return {}
        return take_returns(self.engine, self.settings)

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        if event.get("event_type") in (*INTERCEPT_EVENTS, *RETURN_EVENTS):
            refund = (event.get("payload") or {}).get("refund_id") or "order"
            return f"{self.name}:cancel:{order.platform}:{order.shop_id}:{order.order_id}:{refund}:v{event['version']}"
        code = ((event.get("payload") or {}).get("document") or {}).get("document_code") or order.order_id
        return f"{self.name}:{order.platform}:{order.shop_id}:{code}:r{event['version']}"

    def document(self, order: Order, group: Mapping[str, Any]) -> dict[str, Any]:
        """The ``deliveryorder.create`` body for one fulfilment group (hub.processing.plan.FulfilmentGroup as JSON).
        Amounts are the group's allocated shares, so the documents of a split order add up to its paid total."""
        s = self.settings
        platform_code = s.platform_codes.get(order.platform, "OTHER")
        r = order.receiver
        lines = group["lines"]
        total = sum(line["allocated_paid_fen"] for line in lines)
        cod = int(group.get("cod_amount_fen") or 0)
        flags = [flag for flag, on in (("COD", cod > 0), ("PRESELL", group.get("presale")),
                                       ("SPLIT", group.get("of", 1) > 1)) if on]
        return {
            "deliveryOrder": {
                "deliveryOrderCode": delivery_order_code(order, group),
                "orderType": "JYCK",
                "warehouseCode": group.get("warehouse") or s.warehouse_code,
                "sourcePlatformCode": platform_code,
                "sourcePlatformName": order.platform,
                "createTime": top_time(order.created_at),
                "placeOrderTime": top_time(order.created_at),
                "payTime": top_time(order.paid_at) if order.paid_at else None,
                "payNo": order.payments[0].channel_txn_id if order.payments else None,
                "shopNick": order.shop_id,
                "totalAmount": yuan(total),
                "itemAmount": yuan(sum(line["gross_fen"] for line in lines)),
                "discountAmount": yuan(sum(line["discount_fen"] for line in lines)),
                "freight": yuan(sum(line["shipping_fen"] for line in lines)),
                "arAmount": yuan(cod),              # what the carrier collects (COD)
                "gotAmount": yuan(total - cod),     # what the buyer already paid
                "orderFlag": ",".join(flags) or None,
                "logisticsCode": s.logistics_code,
                "buyerMessage": None,
                "receiverInfo": {"name": r.name, "mobile": r.phone, "province": r.province, "city": r.city,
                                 "area": r.district, "town": r.town, "detailAddress": r.address,
                                 "oaid": r.receiver_ref},
            },
            "orderLines": [
                {"orderLineNo": str(i), "sourceOrderCode": line["order_id"], "subSourceOrderCode": line["line_id"],
                 "ownerCode": s.customer_id, "itemCode": line["master_sku"], "itemName": line.get("title"),
                 "inventoryType": "ZP", "planQty": str(line["qty"]),
                 "retailPrice": yuan(line["gross_fen"] // line["qty"]),
                 # per unit, to the fen; the exact line total is allocated_paid_fen (finance reads the hub)
                 "actualPrice": yuan(line["allocated_paid_fen"] // line["qty"]),
                 "discountAmount": yuan(line["discount_fen"])}
                for i, line in enumerate(lines, start=1)
            ],
        }

    def documents(self, order: Order, groups: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """What this sink would send for a plan: document code -> document (``orderhub replay`` diffs these)."""
        return {delivery_order_code(order, g): self.document(order, g) for g in groups}

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        if wants_return(event):  # a return with goods: announce it (returns.py)
            return announce_return(self.client, self.engine, self.name, order, event)
        if event.get("event_type") in INTERCEPT_EVENTS:
            return intercept(self.client, self.engine, self.name, order, event)
        if event.get("event_type") in RETURN_EVENTS:
            return Delivery(None, skipped_reason=f"{event.get('event_type')}: nothing for the warehouse")
        group = (event.get("payload") or {}).get("document")
        if not group:
            return Delivery(None, skipped_reason=f"{event.get('event_type')} carries no fulfilment group")
        if order.shop_id in self.settings.exclude_shops:
            return Delivery(None, skipped_reason=f"shop {order.shop_id} is shipped by another sink")
        body = to_xml("request", self.document(order, group))
        answer = self.client.call(CREATE, body, write=True)
        # our own code is the reference: the WMS's confirmations carry it, and it never changes
        return Delivery(delivery_order_code(order, group), detail={"wms_id": answer.get("deliveryOrderId"),
                                                                   "warehouse": answer.get("warehouseCode")})

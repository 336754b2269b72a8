"""Qimen WMS sink: a paid order becomes one ``deliveryorder.create`` (specs §6.2).

The delivery order code is derived from the channel order id alone (``TMALL-3817…``), never from a hub-generated
id, so the WMS's own idempotency on ``deliveryOrderCode`` protects us even if the hub's database were rebuilt:
a repeated create answers success with the same WMS id and creates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors.qimen_wms.client import QimenClient, to_xml
from connectors.qimen_wms.settings import QimenWmsSettings
from connectors.tmall.client import top_time
from hub.connector import Delivery
from hub.models import Order, OrderStatus

CREATE = "deliveryorder.create"


def yuan(fen: int) -> str:
    return f"{(Decimal(fen) / 100).quantize(Decimal('0.01'))}"


def delivery_order_code(order: Order) -> str:
    return f"{order.platform.upper()}-{order.order_id}"


class QimenWmsSink:
    event_types = ("order.accepted", "order.changed")

    def __init__(self, settings: QimenWmsSettings, client: QimenClient | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.client = client or QimenClient(settings)

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        return f"{self.name}:{order.platform}:{order.shop_id}:{order.order_id}:v{event['version']}"

    def document(self, order: Order) -> dict[str, Any]:
        s = self.settings
        platform_code = s.platform_codes.get(order.platform, "OTHER")
        discount = order.discount_total
        r = order.receiver
        return {
            "deliveryOrder": {
                "deliveryOrderCode": delivery_order_code(order),
                "orderType": "JYCK",
                "warehouseCode": s.warehouse_code,
                "sourcePlatformCode": platform_code,
                "sourcePlatformName": order.platform,
                "createTime": top_time(order.created_at),
                "placeOrderTime": top_time(order.created_at),
                "payTime": top_time(order.paid_at) if order.paid_at else None,
                "payNo": order.payments[0].channel_txn_id if order.payments else None,
                "shopNick": order.shop_id,
                "totalAmount": yuan(order.paid_total),
                "itemAmount": yuan(order.goods_total),
                "discountAmount": yuan(discount),
                "freight": yuan(order.shipping_fee),
                "arAmount": "0.00",
                "gotAmount": yuan(order.paid_total),
                "logisticsCode": s.logistics_code,
                "buyerMessage": None,
                "receiverInfo": {"name": r.name, "mobile": r.phone, "province": r.province, "city": r.city,
                                 "area": r.district, "town": r.town, "detailAddress": r.address, "oaid": r.receiver_ref},
            },
            "orderLines": [
                {"orderLineNo": str(i), "sourceOrderCode": order.order_id, "subSourceOrderCode": line.line_id,
                 "ownerCode": s.customer_id, "itemCode": line.merchant_sku_code or line.platform_sku_id,
                 "itemName": line.title, "inventoryType": "ZP", "planQty": str(line.qty),
                 "retailPrice": yuan(line.unit_price),
                 "actualPrice": yuan(line.line_paid // line.qty if line.qty else 0),
                 "discountAmount": yuan(line.line_discount)}
                for i, line in enumerate(order.lines, start=1)
            ],
        }

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        if order.status is not OrderStatus.PAID:
            return Delivery(None, skipped_reason=f"status {order.status.value}: no delivery order needed")
        body = to_xml("request", self.document(order))
        answer = self.client.call(CREATE, body, write=True)
        # our own code is the reference: the WMS's confirmations carry it, and it never changes
        return Delivery(delivery_order_code(order), detail={"wms_id": answer.get("deliveryOrderId"),
                                                            "warehouse": answer.get("warehouseCode")})

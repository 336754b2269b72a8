"""Write "shipped + waybill" back to the WeChat shop with ``order/delivery/send`` (specs §3.3).

The carrier is the WeChat ``delivery_id`` from mappings/carriers.yaml (column ``wechat_shop``; real ids come from
``order/deliverycompanylist/get``). The shipped units are always named (``product_infos`` from the shipment's line
refs, or every line of the order): omitting them is UNCONFIRMED. Idempotent by the channel's own state: WeChat
refuses a second send of the same parcel (order no longer 20/21, or no units left), so a refusal or a retry after a
lost answer (in doubt) re-reads the order; when the waybill is already among its parcels, that is the success it
looks like, not a failure (the sandbox docs advise matching on "non-zero errcode + re-read", not on the number).
"""

from __future__ import annotations

from typing import Any

from connectors.wechat_shop.client import WxClient
from hub.connector import ShipResult
from hub.errors import RecordError
from hub.logging import get_logger
from hub.models import Order, Shipment

log = get_logger(__name__)
EXPRESS = 1  # deliver_type 1: self-arranged express (needs delivery_id + waybill_id)


def _product_infos(order: Order, shipment: Shipment) -> list[dict[str, Any]]:
    by_id = {line.line_id: line for line in order.lines}
    refs = [(ref.line_id, ref.qty) for ref in shipment.line_refs] or [(line.line_id, line.qty) for line in order.lines]
    infos = []
    for line_id, qty in refs:
        line = by_id.get(line_id)
        if line is None or not line.platform_sku_id:
            raise RecordError(f"shipment names line {line_id}, which order {order.order_id} does not have",
                              channel="wechat_shop", shop=order.shop_id, endpoint="order/delivery/send")
        infos.append({"product_id": line.platform_item_id, "sku_id": line.platform_sku_id, "product_cnt": qty})
    return infos


def already_shipped(client: WxClient, order_id: str, waybill_no: str) -> bool:
    """Does the order on WeChat already carry this waybill among its parcels?"""
    order = client.call("/channels/ec/order/get", {"order_id": order_id}).get("order") or {}
    parcels = ((order.get("order_detail") or {}).get("delivery_info") or {}).get("delivery_product_info") or []
    return any(str(p.get("waybill_id")) == waybill_no for p in parcels if isinstance(p, dict))


def ship(settings, order: Order, shipment: Shipment, company_code: str, *, client: WxClient | None = None
         ) -> ShipResult:
    client = client or WxClient(settings)
    body = {"order_id": order.order_id, "delivery_list": [{
        "delivery_id": company_code, "waybill_id": shipment.waybill_no, "deliver_type": EXPRESS,
        "product_infos": _product_infos(order, shipment)}]}
    try:
        client.call("/channels/ec/order/delivery/send", body, write=True)
    except RecordError as exc:
        if already_shipped(client, order.order_id, shipment.waybill_no):
            log.info("WeChat already has this parcel; the write-back is done", order_id=order.order_id,
                     errcode=exc.attributes.get("errcode"))
            return ShipResult(accepted=True, already_done=True, detail=str(exc.attributes.get("errmsg") or ""))
        raise
    return ShipResult(accepted=True)

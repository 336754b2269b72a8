"""Write "shipped + waybill" back to Tmall with ``taobao.logistics.offline.send`` (specs §1.7).

Idempotent by the channel's own state: once a trade is consigned TOP refuses a second send, so a retry after a
lost response (in doubt) that meets "already consigned" is the success it looks like, not a failure.
"""

from __future__ import annotations

from connectors.tmall.client import TopClient
from hub.connector import ShipResult
from hub.errors import RecordError
from hub.models import Order, Shipment

ALREADY_CONSIGNED_SUB_CODES = ("isv.logistics-offline-service-error",)


def ship(settings, order: Order, shipment: Shipment, company_code: str, *, client: TopClient | None = None
         ) -> ShipResult:
    client = client or TopClient(settings)
    params = {"tid": order.order_id, "out_sid": shipment.waybill_no, "company_code": company_code}
    shipped_lines = [ref.line_id for ref in shipment.line_refs]
    if shipped_lines and len(shipped_lines) < len(order.lines):
        params.update(sub_tid=",".join(shipped_lines), is_split=1)
    try:
        body = client.call("taobao.logistics.offline.send", write=True, **params)
    except RecordError as exc:
        if exc.attributes.get("sub_code") in ALREADY_CONSIGNED_SUB_CODES:
            return ShipResult(accepted=True, already_done=True, detail=str(exc.attributes.get("sub_msg") or ""))
        raise
    shipping = body.get("shipping") or {}
    if not shipping.get("is_success", False):
        raise RecordError("TOP did not confirm the shipment", channel="tmall", shop=settings.shop,
                          endpoint="taobao.logistics.offline.send")
    return ShipResult(accepted=True)

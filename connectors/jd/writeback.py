"""Write "shipped + waybill" back to JD with ``jingdong.pop.order.shipment`` (specs §2.6).

JD reports refusals inside a ``code "0"`` envelope (``sopjosshipment_result.success false`` with an
``error_code``). "Already shipped" (1002) is what a retry after a lost reply meets: the shipment did happen, so it is
``already_done``. Every other refusal (order on hold, cancelled, unknown carrier...) is a RecordError with JD's reason,
which the hub parks for a person.
"""

from __future__ import annotations

from connectors.jd.client import JdClient
from hub.connector import ShipResult
from hub.errors import RecordError
from hub.models import Order, Shipment

ALREADY_SHIPPED_CODES = ("1002",)
METHOD = "jingdong.pop.order.shipment"


def ship(settings, order: Order, shipment: Shipment, company_code: str, *, client: JdClient | None = None
         ) -> ShipResult:
    """``company_code`` is JD's carrier id (logiCoprId) from the carriers crosswalk (mappings/carriers.yaml)."""
    client = client or JdClient(settings)
    business = {"orderId": order.order_id, "logiCoprId": company_code, "logiNo": shipment.waybill_no}
    try:
        client.call(METHOD, business, write=True)
    except RecordError as exc:
        if str(exc.attributes.get("code")) in ALREADY_SHIPPED_CODES:
            return ShipResult(accepted=True, already_done=True, detail=str(exc.attributes.get("reason") or ""))
        raise
    return ShipResult(accepted=True)

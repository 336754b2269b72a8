"""No write-back for POS: a store sale is handed over at the till, so there is no shipment to report to the channel.

The hub never asks the WMS to ship a receipt (it arrives COMPLETED), so no shipment should ever reach here; if one
does (a receipt re-planned by hand), it is acknowledged as already done with the reason, rather than failing the
write-back queue for a channel that has no such call.
"""

from __future__ import annotations

from hub.connector import ShipResult
from hub.models import Order, Shipment


def ship(settings, order: Order, shipment: Shipment, company_code: str) -> ShipResult:
    return ShipResult(accepted=True, already_done=True,
                      detail=f"POS receipt {order.order_id} was handed over at the till; the middleware has no "
                             "shipment call and needs none")

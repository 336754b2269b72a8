"""Write "shipped + waybill" back to Pinduoduo: not implemented yet. The spec (§4) names no ship API, so rather than
guess one, a write-back attempt stops with a configuration error that says what is missing (see README.md)."""

from __future__ import annotations

from connectors.pdd.client import PddClient
from hub.connector import ShipResult
from hub.errors import ConfigurationError
from hub.models import Order, Shipment


def ship(settings, order: Order, shipment: Shipment, company_code: str, *, client: PddClient | None = None
         ) -> ShipResult:
    raise ConfigurationError(f"the pdd connector has no shipment write-back yet (order {order.order_id})",
                             how_to_fix="implement connectors/pdd/writeback.py from PDD's ship API "
                                        "(pdd.logistics.online.send), or ship these orders in the PDD merchant "
                                        "backend")

"""Feedback into the hub: WMS ship confirmations become shipments; shipments are written back to the channel.

A confirmation is de-duplicated twice: by its message id (``outBizCode``) and by (order, package), so a WMS that
pushes the same confirm again, or a poller that re-reads its feed, never records a shipment twice. Each new shipment
writes a ``shipment.recorded`` event to the outbox; the write-back subscription (a sink like any other, so it gets
claims, in-doubt handling and parking for free) calls the channel's ``ship``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from hub.connector import Delivery, ShipResult
from hub.errors import RecordError
from hub.ingest import load_order
from hub.logging import get_logger
from hub.models import Order, Shipment, ShipmentLineRef
from hub.store import schema as t
from hub.store.schema import utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class ConfirmPackage:
    carrier_code: str
    waybill_no: str
    package_code: str | None
    items: list[tuple[str, int]]


@dataclass(frozen=True)
class ShipConfirm:
    """A target's statement that a document shipped, in the hub's terms (the WMS connector parses its wire form)."""

    sink: str
    document_ref: str
    message_id: str
    shipped_at: datetime | None
    packages: list[ConfirmPackage]
    final: bool = True


def record_confirm(engine: Engine, confirm: ShipConfirm) -> str:
    """Store the shipments of one confirmation; returns 'recorded', 'duplicate' or raises RecordError.

    The document code finds its orders through ``plan_documents`` (written when processing released it: one row per
    order the document carries, with the channel lines it ships), or, for documents sent before processing existed,
    through the binding dispatch made. A merged delivery order therefore records one shipment on each of its orders.
    """
    try:
        with engine.begin() as conn:
            return _record_confirm(conn, confirm, utcnow())
    except IntegrityError:
        # another worker polling the same feed recorded this message at the same moment: its message binding (or
        # shipment) committed first and ours rolled back whole, so the confirmation is in exactly once
        return "duplicate"


def _record_confirm(conn: Connection, confirm: ShipConfirm, now: datetime) -> str:
    """The body of record_confirm, inside its transaction."""
    targets = [(r.hub_id, list(r.line_refs))
               for r in conn.execute(sa.select(t.plan_documents.c.hub_id, t.plan_documents.c.line_refs)
                                     .where(t.plan_documents.c.document_code == confirm.document_ref)
                                     .order_by(t.plan_documents.c.hub_id))]
    if not targets:
        bound = conn.execute(sa.select(t.bindings.c.hub_id).where(
            t.bindings.c.channel == confirm.sink, t.bindings.c.shop == "-", t.bindings.c.entity == "document",
            t.bindings.c.external_id == confirm.document_ref)).scalar()
        targets = [(bound, None)] if bound is not None else []
    if not targets:
        raise RecordError(f"confirmation for unknown document {confirm.document_ref}", sink=confirm.sink,
                          group_key="confirm for unknown document")
    seen = conn.execute(sa.select(t.bindings.c.hub_id).where(
        t.bindings.c.channel == confirm.sink, t.bindings.c.shop == "-", t.bindings.c.entity == "message",
        t.bindings.c.external_id == confirm.message_id)).first()
    if seen is not None:
        return "duplicate"
    conn.execute(sa.insert(t.bindings).values(channel=confirm.sink, shop="-", entity="message",
                                              external_id=confirm.message_id, hub_id=targets[0][0],
                                              created_at=now))
    recorded = 0
    for hub_id, planned_refs in targets:
        recorded += _record_packages(conn, confirm, hub_id, planned_refs, now)
    return "recorded" if recorded else "duplicate"


def _planned_line_refs(planned: list[dict[str, Any]], items: list[tuple[str, int]]) -> list[ShipmentLineRef]:
    """The channel lines one package ships: all of the document's lines when the package lists no items (or none
    of them match), otherwise each line whose master SKUs the package's items cover (several parcels of one
    delivery order then write back their own lines, with their own waybill)."""
    everything = [ShipmentLineRef(line_id=ref["line_id"], qty=ref["qty"]) for ref in planned]
    if not items:
        return everything
    remaining: dict[str, int] = {}
    for code, qty in items:
        remaining[code] = remaining.get(code, 0) + qty
    refs = []
    for ref in planned:
        need = ref.get("skus") or {}
        if need and all(remaining.get(sku, 0) >= qty for sku, qty in need.items()):
            for sku, qty in need.items():
                remaining[sku] -= qty
            refs.append(ShipmentLineRef(line_id=ref["line_id"], qty=ref["qty"]))
    return refs or everything


def _record_packages(conn, confirm: ShipConfirm, hub_id: str, planned_refs: list[dict[str, Any]] | None,
                     now: datetime) -> int:
    loaded = load_order(conn, hub_id)
    assert loaded is not None
    order, version = loaded
    recorded = 0
    for package in confirm.packages:
        shipment_id = f"{confirm.document_ref}/{package.package_code or package.waybill_no}"
        exists = conn.execute(sa.select(t.shipments.c.id).where(t.shipments.c.hub_id == hub_id,
                                                                t.shipments.c.shipment_id == shipment_id)).first()
        if exists:
            continue
        # planned refs: the channel lines this document ships (its items are master SKUs, maybe bundle parts)
        refs = (_planned_line_refs(planned_refs, package.items) if planned_refs is not None
                else _line_refs(order, package.items))
        shipment = Shipment(
            shipment_id=shipment_id, order_id=order.order_id, carrier_code=package.carrier_code,
            waybill_no=package.waybill_no, line_refs=refs, shipped_at=confirm.shipped_at or now, source="wms")
        doc = shipment.model_dump(mode="json")
        conn.execute(sa.insert(t.shipments).values(
            hub_id=hub_id, shipment_id=shipment_id, carrier_code=shipment.carrier_code,
            waybill_no=shipment.waybill_no, document=doc, source="wms", shipped_at=shipment.shipped_at,
            created_at=now))
        conn.execute(sa.insert(t.outbox).values(
            event_type="shipment.recorded", entity="shipment", hub_id=hub_id, version=version, created_at=now,
            payload={"channel": order.platform, "shop": order.shop_id, "order_id": order.order_id,
                     "shipment": doc}))
        conn.execute(sa.insert(t.audit_trail).values(
            hub_id=hub_id, at=now, action="shipment.recorded", actor=confirm.sink,
            detail={"shipment_id": shipment_id, "carrier_code": shipment.carrier_code,
                    "waybill_no": shipment.waybill_no, "message_id": confirm.message_id}))
        recorded += 1
    return recorded


def _line_refs(order: Order, items: list[tuple[str, int]]) -> list[ShipmentLineRef]:
    """Match a package's items (WMS item codes) to order lines; a package without items covers every line."""
    if not items:
        return [ShipmentLineRef(line_id=line.line_id, qty=line.qty) for line in order.lines]
    refs = []
    remaining = dict()
    for code, qty in items:
        remaining[code] = remaining.get(code, 0) + qty
    for line in order.lines:
        code = line.merchant_sku_code or line.platform_sku_id
        if code in remaining and remaining[code] > 0:
            qty = min(line.qty, remaining[code])
            remaining[code] -= qty
            refs.append(ShipmentLineRef(line_id=line.line_id, qty=qty))
    return refs


def load_carriers(path) -> dict[str, dict[str, str]]:
    data = yaml.safe_load(open(path, encoding="utf-8")) or {}
    return {str(k): {str(ch): str(code) for ch, code in (v or {}).items()} for k, v in
            (data.get("carriers") or {}).items()}


class ChannelWriteback:
    """The write-back subscription: ``shipment.recorded`` -> the order's channel (``ship`` of its connector)."""

    name = "channel_writeback"
    event_types = ("shipment.recorded",)

    def __init__(self, carriers: Mapping[str, Mapping[str, str]],
                 ship_for: Callable[[Order, Shipment, str], ShipResult]) -> None:
        self.carriers = carriers
        self.ship_for = ship_for

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        shipment_id = (event.get("payload") or {}).get("shipment", {}).get("shipment_id")
        return f"{self.name}:{order.platform}:{order.order_id}:{shipment_id}"

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        shipment = Shipment.model_validate_json(_json(event["payload"]["shipment"]))
        code = self.carriers.get(shipment.carrier_code, {}).get(order.platform)
        if not code:
            raise RecordError(f"no carrier code for {order.platform} for carrier {shipment.carrier_code}",
                              how_to_fix="add it to mappings/carriers.yaml, then `orderhub dispatch --replay`",
                              group_key=f"unmapped carrier {shipment.carrier_code}@{order.platform}")
        result = self.ship_for(order, shipment, code)
        return Delivery(f"{order.platform}:{order.order_id}:{shipment.waybill_no}",
                        detail={"already_done": result.already_done, "company_code": code,
                                "waybill_no": shipment.waybill_no})


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment else None

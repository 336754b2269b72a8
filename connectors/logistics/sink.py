"""Waybill sink: for documents the hub ships itself (no WMS assigns a waybill), book one with SF or Cainiao and
record it as the hub's shipment, so the existing write-back (hub/feedback.py) sends it to the channel.

It subscribes to ``order.released`` like the WMS does, and takes only the documents of its ``warehouses`` / ``shops``
(the others belong to the WMS). The carrier's key is our document code (``TMALL-<tid>``, ``…-2`` for a split): SF's
``orderId`` and Cainiao's ``objectId``, both de-duplicated by the carrier, so a booking whose answer was lost is sent
again and gets the same number, never a second one. ``probe`` (before re-sending an event in doubt) asks SF for the
order by ``orderId``; Cainiao has no lookup, and its repeat answer is the same waybill anyway.

The shipment is recorded through ``hub.feedback.record_confirm`` under the message id ``<provider>:<code>:<waybill>``
(recorded once however often it is booked or probed); its lines are the document's lines (``plan_documents``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.logistics.client import CainiaoClient, SfClient
from connectors.logistics.settings import LogisticsSettings
from hub.connector import Delivery
from hub.errors import RecordError
from hub.logging import get_logger
from hub.models import Order
from hub.store.schema import utcnow

log = get_logger(__name__)


class WaybillSink:
    event_types = ("order.released",)

    def __init__(self, settings: LogisticsSettings, client: SfClient | CainiaoClient | None = None,
                 engine=None) -> None:
        self.settings = settings
        self.name = settings.name
        self.client = client or (SfClient(settings) if settings.provider == "sf" else CainiaoClient(settings))
        self.engine = engine  # the hub's (Hub.sinks): where the booked waybill is recorded as a shipment

    def attach_engine(self, engine) -> None:
        self.engine = engine

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        code = ((event.get("payload") or {}).get("document") or {}).get("document_code") or order.order_id
        return f"{self.name}:{self.settings.provider}:{code}:r{event['version']}"

    # -- what to book ---------------------------------------------------------------------------------------------

    def _ours(self, order: Order, group: Mapping[str, Any]) -> str | None:
        """None when this sink books the document, else why not."""
        s = self.settings
        if s.shops and order.shop_id not in s.shops:
            return f"shop {order.shop_id} is not shipped by {self.name}"
        if s.warehouses and (group.get("warehouse") or "") not in s.warehouses:
            return f"warehouse {group.get('warehouse') or 'default'} is not shipped by {self.name}"
        return None

    def _cargo(self, group: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"name": (line.get("title") or line["master_sku"])[:60], "count": line["qty"], "unit": "件"}
                for line in group["lines"]]

    def sf_order(self, order: Order, group: Mapping[str, Any]) -> dict[str, Any]:
        s, r, snd = self.settings, order.receiver, self.settings.sender
        msg: dict[str, Any] = {
            "language": "zh-CN", "orderId": group["document_code"], "expressTypeId": s.express_type,
            "payMethod": s.pay_method, "parcelQty": 1, "isReturnRoutelabel": 1, "cargoDetails": self._cargo(group),
            "contactInfoList": [
                {"contactType": 1, "contact": snd.name, "mobile": snd.mobile, "company": snd.company,
                 "province": snd.province, "city": snd.city, "county": snd.district, "address": snd.address},
                {"contactType": 2, "contact": r.name, "mobile": r.phone, "province": r.province, "city": r.city,
                 "county": r.district, "address": " ".join(p for p in (r.town, r.address) if p)},
            ],
        }
        if s.monthly_card:
            msg["monthlyCard"] = s.monthly_card
        return msg

    def cainiao_request(self, order: Order, group: Mapping[str, Any]) -> dict[str, Any]:
        s, r, snd = self.settings, order.receiver, self.settings.sender
        orders = [order.order_id, *[o for o in group.get("merged_orders") or [] if o != order.order_id]]
        return {
            "cpCode": s.cp_code,
            "sender": {"name": snd.name, "mobile": snd.mobile,
                       "address": {"province": snd.province, "city": snd.city, "district": snd.district,
                                   "detail": snd.address}},
            "tradeOrderInfoDtos": [{
                "objectId": group["document_code"],
                "orderInfo": {"orderChannelsType": s.channel_types.get(order.platform, "OTHERS"),
                              "tradeOrderList": orders[:100]},
                "packageInfo": {"id": group["document_code"], "items": self._cargo(group)},
                "recipient": {"name": r.name, "mobile": r.phone, "oaid": r.receiver_ref,
                              "address": {"province": r.province, "city": r.city, "district": r.district,
                                          "town": r.town, "detail": r.address}},
            }],
        }

    # -- sink -----------------------------------------------------------------------------------------------------

    def book(self, order: Order, group: Mapping[str, Any]) -> str:
        if self.settings.provider == "sf":
            answer = self.client.call(SfClient.CREATE, self.sf_order(order, group), write=True)
            numbers = [w.get("waybillNo") for w in answer.get("waybillNoInfoList") or [] if w.get("waybillType") == 1]
        else:
            answer = self.client.call(CainiaoClient.GET, self.cainiao_request(order, group), write=True)
            numbers = [m.get("waybillCode") for m in answer.get("waybillCloudPrintResponseList") or []
                       if m.get("objectId") == group["document_code"]]
        if not numbers or not numbers[0]:
            raise RecordError(f"{self.settings.provider} answered without a waybill number", sink=self.name,
                              document=group["document_code"], group_key="carrier answered without a waybill")
        return str(numbers[0])

    def _record(self, group: Mapping[str, Any], waybill: str) -> dict[str, Any]:
        detail = {"waybill_no": waybill, "carrier": self.settings.carrier_code, "provider": self.settings.provider}
        if not self.settings.record_shipment or self.engine is None:
            return {**detail, "shipment": "not recorded"}
        from hub.feedback import ConfirmPackage, ShipConfirm, record_confirm

        code = group["document_code"]
        outcome = record_confirm(self.engine, ShipConfirm(
            sink=self.name, document_ref=code, message_id=f"{self.settings.provider}:{code}:{waybill}",
            shipped_at=utcnow(), packages=[ConfirmPackage(self.settings.carrier_code, waybill, None, [])]))
        return {**detail, "shipment": outcome}

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        group = (event.get("payload") or {}).get("document")
        if not group:
            return Delivery(None, skipped_reason=f"{event.get('event_type')} carries no fulfilment group")
        not_ours = self._ours(order, group)
        if not_ours:
            return Delivery(None, skipped_reason=not_ours)
        if int(group.get("cod_amount_fen") or 0) > 0:
            raise RecordError("a cash-on-delivery document needs the carrier's COD service, which this sink does not "
                              "book", sink=self.name, document=group["document_code"], group_key="COD via waybill sink",
                              how_to_fix="ship COD orders through the WMS (or book them by hand), then skip the event")
        waybill = self.book(order, group)
        log.info("waybill booked", document=group["document_code"], waybill_no=waybill)
        return Delivery(group["document_code"], detail=self._record(group, waybill))

    def probe(self, order: Order, event: Mapping[str, Any]) -> Delivery | None:
        group = (event.get("payload") or {}).get("document")
        if not group or self.settings.provider != "sf" or self._ours(order, group):
            return None  # Cainiao has no lookup: re-sending the same objectId returns the same waybill
        try:
            answer = self.client.call(SfClient.SEARCH, {"orderId": group["document_code"]})
        except RecordError as exc:
            if str(exc.attributes.get("code")) == SfClient.NOT_FOUND:
                return None
            raise
        numbers = [w.get("waybillNo") for w in answer.get("waybillNoInfoList") or [] if w.get("waybillType") == 1]
        if not numbers or answer.get("resStatus") == 4:
            return None
        return Delivery(group["document_code"], detail=self._record(group, str(numbers[0])))

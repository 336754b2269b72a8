"""Tryton sink: each released fulfilment group becomes one confirmed sale (``sale.sale``) whose ``reference`` is the
group's stable document code (``TMALL-<tid>``, ``TMALL-<tid>-2``), sold to a party per shop (or per buyer) and made
of products found by code = master SKU (created from the master SKU when missing, or mapped in settings).

Tryton keeps no unique key on ``sale.reference`` (specs §5.6 #10), so idempotency is ours: every write is preceded by
a search by its natural key (party code, product code, sale reference), and a write whose answer is lost is never
re-sent blindly: the sink searches again and carries on from what it finds (draft -> quotation -> confirmed).
``probe`` (hub.dispatch calls it before re-sending an event in doubt) is a ``search_read`` by reference; it reports
the sale as found once it is confirmed (or further), otherwise ``deliver`` finishes it.

A ``return.received`` event (the WMS received an after-sales return) becomes a return sale with negative quantities,
reference ``RT-<CHANNEL>-<refund id>``, priced like the original sale's lines; confirming it makes Tryton's credit
note (and customer return shipment). Same look-before-write path, so it is created once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.tryton.client import TrytonRPC
from connectors.tryton.settings import TrytonSettings
from hub.connector import Delivery
from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.models import Order

CST = ZoneInfo("Asia/Shanghai")
DONE_STATES = ("confirmed", "processing", "done")
ATTEMPTS = 4  # look-then-write rounds per step when answers keep getting lost


def unit_price(allocated_fen: int, qty: int) -> Decimal:
    """Tryton prices have 4 decimals: the line total can differ from the allocated fen by < qty * 0.00005."""
    return (Decimal(allocated_fen) / 100 / qty).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


RETURN_EVENT = "return.received"  # the WMS received a return (connectors/qimen_wms/returns.py)


class TrytonSink:
    event_types = ("order.released", RETURN_EVENT)

    def __init__(self, settings: TrytonSettings, rpc: TrytonRPC | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.rpc = rpc or TrytonRPC(settings)
        self._ids: dict[tuple[str, str], int] = {}  # (what, natural key) -> Tryton id, found or created
        self._wrote = False  # a sale write was sent during the current delivery

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        if event.get("event_type") == RETURN_EVENT:
            return f"{self.name}:return:{(event.get('payload') or {}).get('return_order_code')}"
        code = ((event.get("payload") or {}).get("document") or {}).get("document_code") or order.order_id
        return f"{self.name}:{order.platform}:{order.shop_id}:{code}:r{event['version']}"

    # -- look up or create by natural key -------------------------------------------------------------------

    def _one(self, model: str, domain: list[Any], fields: list[str] | None = None) -> dict[str, Any] | None:
        rows = self.rpc.search_read(model, domain, ["id", *(fields or [])], limit=1)
        return rows[0] if rows else None

    def _setup_id(self, model: str, domain: list[Any], what: str) -> int:
        key = (model, repr(domain))
        if key not in self._ids:
            row = self._one(model, domain)
            if row is None:
                raise ConfigurationError(f"Tryton has no {what}", sink=self.name, model=model,
                                         how_to_fix=f"create it in Tryton or change `{what}` in this sink's settings")
            self._ids[key] = row["id"]
        return self._ids[key]

    def _find_or_create(self, model: str, key_domain: list[Any], create: dict[str, Any]) -> int:
        """Search by the natural key, create when absent; a create whose answer is lost is searched for again,
        never re-sent blindly."""
        for _ in range(ATTEMPTS):
            row = self._one(model, key_domain)
            if row is not None:
                return row["id"]
            try:
                (new_id,) = self.rpc.call(model, "create", [create], write=True)
                return new_id
            except InDoubtError:
                continue
        raise InDoubtError(f"Tryton {model} {key_domain} stays in doubt", sink=self.name)

    def party(self, order: Order) -> tuple[str, str]:
        """(code, name) of the party the order is sold to; per buyer the code is a digest of the channel's buyer
        reference (which may be a nick), so no personal data becomes an ERP key."""
        s = self.settings
        if s.party_by == "buyer" and order.buyer_ref:
            digest = hashlib.sha256(f"{order.platform}:{order.buyer_ref}".encode()).hexdigest()[:16].upper()
            return f"{order.platform.upper()}-B-{digest}", f"{order.platform} buyer {digest} ({order.shop_id})"
        if order.shop_id in s.parties:
            return s.parties[order.shop_id], order.shop_id
        return f"{order.platform}-{order.shop_id}".upper(), f"{order.platform} {order.shop_id}"

    def ensure_party(self, order: Order) -> tuple[int, int]:
        """(party id, address id): Tryton needs an invoice and a shipment address to quote (§5.6 #6); a shop's
        party gets one generic address (the parcel's address stays in the WMS document, not in the ERP)."""
        code, name = self.party(order)
        key = ("party", code)
        if key not in self._ids:
            self._ids[key] = self._find_or_create("party.party", [("code", "=", code)], {
                "code": code, "name": name, "addresses": [["create", [{"street": name}]]]})
        party_id = self._ids[key]
        if ("address", code) not in self._ids:
            address = self._one("party.address", [("party", "=", party_id)])
            if address is None:  # an existing party without any address: add one
                address_id = self._find_or_create("party.address", [("party", "=", party_id)],
                                                  {"party": party_id, "street": name})
            else:
                address_id = address["id"]
            self._ids[("address", code)] = address_id
        return party_id, self._ids[("address", code)]

    def ensure_product(self, sku: str, title: str | None, price: Decimal) -> int:
        s = self.settings
        code = s.products.get(sku, sku)
        key = ("product", code)
        if key in self._ids:
            return self._ids[key]
        row = self._one("product.product", [("code", "=", code)])
        if row is None and not s.create_products:
            raise RecordError(f"Tryton has no product with code {code}", sink=self.name, master_sku=sku)
        if row is not None:
            self._ids[key] = row["id"]
            return row["id"]
        unit = self._setup_id("product.uom", [("name", "=", s.unit)], "unit")
        category = self._setup_id("product.category", [("name", "=", s.product_category)], "product_category")
        self._find_or_create("product.template", [("products.code", "=", code)], {
            "name": title or sku, "type": "goods", "salable": True, "default_uom": unit, "sale_uom": unit,
            "list_price": price, "account_category": category,
            # a variant's code is computed (template prefix + suffix): writing "code" itself is refused
            "products": [["create", [{"suffix_code": code}]]]})
        row = self._one("product.product", [("code", "=", code)])
        if row is None:
            raise FatalError(f"Tryton product {code} was created but cannot be found", sink=self.name)
        self._ids[key] = row["id"]
        return row["id"]

    # -- sale -----------------------------------------------------------------------------------------------

    def sale_values(self, order: Order, group: Mapping[str, Any], party: int, address: int) -> dict[str, Any]:
        s = self.settings
        unit = self._setup_id("product.uom", [("name", "=", s.unit)], "unit")
        term_domain = [("name", "=", s.payment_term)] if s.payment_term else []
        lines = []
        for line in group["lines"]:
            price = unit_price(line["allocated_paid_fen"], line["qty"])
            product = self.ensure_product(line["master_sku"], line.get("title"), price)
            lines.append({"type": "line", "product": product, "quantity": float(line["qty"]), "unit": unit,
                          "unit_price": price, "description": line.get("title") or line["master_sku"]})
        values = {
            "party": party, "invoice_address": address, "shipment_address": address,  # no on_change over RPC
            "reference": group["document_code"],
            "description": f"{order.platform} {order.shop_id} {order.order_id}",
            "sale_date": (order.paid_at or order.created_at).astimezone(CST).date(),
            "lines": [["create", lines]],
        }
        values["payment_term"] = self._setup_id("account.invoice.payment_term", term_domain, "payment_term")
        return values

    def lookup(self, code: str) -> dict[str, Any] | None:
        return self._one("sale.sale", [("reference", "=", code)], ["state", "number"])

    def return_group(self, receipt: Mapping[str, Any]) -> dict[str, Any]:
        """A return sale (negative quantities) for what the WMS received, priced like the sale the goods left in
        (read back from Tryton by its reference): Tryton's confirm then makes the credit note and the return
        shipment. Shaped like a released group so the one create / quote / confirm path serves both."""
        prices: dict[int, Decimal] = {}
        original = self._one("sale.sale", [("reference", "=", receipt.get("delivery_order_code") or "")], ["lines"])
        if original is not None and original["lines"]:
            for line in self.rpc.call("sale.line", "read", original["lines"], ["product", "unit_price"]):
                if line.get("product") is not None:
                    prices.setdefault(line["product"], Decimal(str(line["unit_price"])))
        lines = []
        for n, line in enumerate(receipt.get("lines") or []):
            qty = int(line.get("received") or 0)
            if qty <= 0:
                continue
            product = self.ensure_product(line["item_code"], None, Decimal(0))
            price_fen = int((prices.get(product, Decimal(0)) * 100).to_integral_value(rounding=ROUND_HALF_UP))
            lines.append({"master_sku": line["item_code"], "qty": -qty, "allocated_paid_fen": -price_fen * qty,
                          "title": f"return {line['item_code']} ({line.get('inventory_type') or 'ZP'})",
                          "line_id": line.get("line_id") or str(n)})
        return {"document_code": receipt["return_order_code"], "lines": lines}

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        if event.get("event_type") == RETURN_EVENT:
            group = self.return_group(event.get("payload") or {})
            if not group["lines"]:
                return Delivery(None, skipped_reason="the return receipt received nothing")
        else:
            group = (event.get("payload") or {}).get("document")
        if not group:
            return Delivery(None, skipped_reason=f"{event.get('event_type')} carries no fulfilment group")
        self._wrote = False
        try:
            return self._deliver(order, group)
        except TransientError as exc:
            if self._wrote and not isinstance(exc, InDoubtError):
                # Tryton went away after a sale write was sent: it may have taken effect, so the event is in
                # doubt (probed next run), not parked
                raise InDoubtError(f"Tryton failed after a write to sale {group['document_code']}: {exc.message}",
                                   **exc.attributes) from exc
            raise

    def _deliver(self, order: Order, group: Mapping[str, Any]) -> Delivery:
        code = group["document_code"]
        sale = self.lookup(code)
        existed = sale is not None
        if sale is None:
            party, address = self.ensure_party(order)
            values = self.sale_values(order, group, party, address)
            for _ in range(ATTEMPTS):
                try:
                    self._wrote = True
                    (sale_id,) = self.rpc.call("sale.sale", "create", [values], write=True)
                    sale = {"id": sale_id, "state": "draft"}
                    break
                except InDoubtError:
                    sale = self.lookup(code)  # look before creating again: reference is not unique in Tryton
                    if sale is not None:
                        break
            if sale is None:
                raise InDoubtError(f"Tryton sale {code} stays in doubt", sink=self.name)
        final = DONE_STATES if self.settings.confirm else ("draft", *DONE_STATES)
        for _ in range(ATTEMPTS):
            if sale["state"] in final:
                break
            button = "quote" if sale["state"] == "draft" else "confirm"
            if sale["state"] not in ("draft", "quotation"):
                raise RecordError(f"Tryton sale {code} is {sale['state']}", sink=self.name, document=code)
            try:
                self._wrote = True
                self.rpc.call("sale.sale", button, [sale["id"]], write=True)
                if button == "quote":
                    sale = {**sale, "state": "quotation"}
                    continue
            except InDoubtError:
                pass  # read the state again: the button may have run
            sale = self.lookup(code) or sale  # after confirm: its number and state (processing)
        else:
            raise InDoubtError(f"Tryton sale {code} does not reach confirmed", sink=self.name)
        return Delivery(code, detail={"tryton_id": sale["id"], "number": sale.get("number"), "state": sale["state"],
                                      **({"existed": True} if existed else {})})

    def probe(self, order: Order, event: Mapping[str, Any]) -> Delivery | None:
        payload = event.get("payload") or {}
        code = payload.get("return_order_code") if event.get("event_type") == RETURN_EVENT else (
            (payload.get("document") or {}).get("document_code"))
        if not code:
            return None
        group = {"document_code": code}
        sale = self.lookup(group["document_code"])
        if sale is None or (self.settings.confirm and sale["state"] not in DONE_STATES):
            return None  # absent, or still draft/quotation: deliver finishes it
        return Delivery(group["document_code"], detail={"tryton_id": sale["id"], "number": sale.get("number"),
                                                         "state": sale["state"]})

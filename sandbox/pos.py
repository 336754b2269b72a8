"""Simulated store POS middleware: a REST feed of receipts and returns per store, and store stock.

The spec has no POS section (only the field table of specs/platform-apis.md §10), so this models what a typical
retail POS middleware exposes to an order hub; every choice is documented in ``sandbox/docs/pos.md``:

* auth by a static API key in the ``X-Api-Key`` header (401 otherwise);
* ``GET /api/receipts?store=&since=&cursor=&limit=``: receipts in **upload order**. Tills work offline and upload
  later, so ``sale_time`` (when the customer paid) can be much older than ``uploaded_at`` (when the middleware
  received it); ``since`` filters on ``uploaded_at`` and the cursor follows the upload sequence, so a reader that
  keys on the cursor never misses a late receipt, while one that windows on ``sale_time`` does;
* receipts are immutable: a return is a new receipt of type ``RETURN`` with negative quantities and amounts that
  names the original in ``original_receipt_no``;
* ``GET /api/stock?store=``: the store's on-hand quantity per SKU; sales take it down (possibly below zero - tills
  never refuse a sale for want of a stock record), returns put it back;
* money as decimal strings in yuan, times as ISO 8601 with the +08:00 offset, member ids masked.

Served on the shared port under ``/pos`` (``/pos/api/receipts``) and alone at ``/api/...``.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.common import admin_at
from sandbox.common import json_response as _json
from sandbox.faults import _TIMEOUT_FIELDS, _count, _number
from sandbox.system import ChannelSystem
from sandbox.world import Sku, WorldError

NAME = "pos"
PREFIX = "/pos"
API_KEY_HEADER = "X-Api-Key"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# (store slug, receipt prefix, display name, tills)
STORES = (
    ("store-sh-001", "SH001", "橙舍上海南京西路店", ("POS-01", "POS-02")),
    ("store-hz-002", "HZ002", "橙舍杭州湖滨店", ("POS-01",)),
)
PAYMENT_METHODS = ("CASH", "CARD", "ALIPAY", "WECHAT_PAY")
MALFORMED_KINDS = ("bad_amount", "missing_receipt_no", "unknown_payment")
BAD_AMOUNT = "12.3.4"
# A method the hub's mapping does not know yet: the digital yuan, which real tills added recently.
UNKNOWN_PAYMENT = "E_CNY"
# Members get 5 % off (the receipt's line_discount); a realistic reason for non-zero discounts at a till.
MEMBER_DISCOUNT = Decimal("0.05")


class PosError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _iso(moment: datetime) -> str:
    return moment.astimezone(clock.shanghai()).isoformat(timespec="seconds")


def _ean13(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def barcode(sku: Sku) -> str:
    """A deterministic EAN-13 per merchant code (690-699 = China's GS1 prefixes)."""
    digits = int.from_bytes(sku.outer_sku_id.encode(), "big") % 10**9
    return _ean13(f"697{digits:09d}")


@dataclass
class Store:
    slug: str
    code: str
    name: str
    tills: tuple[str, ...]
    stock: dict[str, int] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)  # upload order; index + 1 = upload seq
    daily: dict[str, int] = field(default_factory=dict)  # yyyymmdd -> last receipt number that day


@dataclass
class Receipt:
    store: str
    receipt_no: str
    seq: int
    sale_time: datetime
    uploaded_at: datetime
    data: dict
    malformed: str | None = None
    returned: dict[int, int] = field(default_factory=dict)  # line_no -> qty returned so far (sales only)


_KNOBS: dict[str, object] = {
    f"{NAME}.latency_ms": 0,
    f"{NAME}.http_500": {"calls": 0},
    f"{NAME}.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
}
_SCHEMA: dict[str, object] = {
    f"{NAME}.latency_ms": _number,
    f"{NAME}.http_500": {"calls": _count},
    f"{NAME}.timeout_after_success": _TIMEOUT_FIELDS,
}
API = {"/api/receipts": "receipts", "/api/stock": "stock"}


class PosSystem(ChannelSystem):
    """Receipts, returns and stock of two stores behind one POS middleware API key."""

    name = NAME
    shops = tuple(slug for slug, *_ in STORES)
    knob_defaults = _KNOBS
    knob_schema = _SCHEMA

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._build()

    def _build(self) -> None:
        master = random.Random(f"{self.app.seed}:{NAME}")
        self.api_key = "pk_" + f"{master.getrandbits(160):040x}"
        self.sales_rng = random.Random(master.getrandbits(64))
        stock_rng = random.Random(master.getrandbits(64))
        self.stores: dict[str, Store] = {}
        for slug, code, title, tills in STORES:
            store = Store(slug, code, title, tills)
            store.stock = {sku.outer_sku_id: stock_rng.randint(20, 80) for sku in self.app.world.catalogue}
            self.stores[slug] = store
        self.receipts: dict[str, Receipt] = {}

    def reset(self) -> None:
        super().reset()
        self._build()

    # ------------------------------------------------------------------------------------------- routes

    def rules(self) -> list[Rule]:
        return [Rule(PREFIX + path, endpoint=f"{NAME}:{name}", methods=["GET"]) for path, name in API.items()]

    def standalone_rules(self) -> list[Rule]:
        return [Rule(path, endpoint=f"{NAME}:{name}", methods=["GET"]) for path, name in API.items()]

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            return {
                "api_key": self.api_key, "api_key_header": API_KEY_HEADER,
                "base_path": PREFIX + "/api", "standalone_base_path": "/api",
                "receipts_path": PREFIX + "/api/receipts", "stock_path": PREFIX + "/api/stock",
                "stores": [{"store": s.slug, "code": s.code, "name": s.name, "tills": list(s.tills)}
                           for s in self.stores.values()],
            }

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        method = endpoint.split(":", 1)[1]
        app = self.app
        with app.lock:
            latency_ms = app.faults.get(f"{NAME}.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)  # type: ignore[arg-type]
        stall = None
        with app.lock:
            try:
                if app.faults.consume(f"{NAME}.http_500"):
                    raise PosError(500, "INTERNAL_ERROR", "upstream database unavailable, try again later")
                key = request.headers.get(API_KEY_HEADER)
                if not key:
                    raise PosError(401, "UNAUTHORIZED", f"missing {API_KEY_HEADER} header")
                if key != self.api_key:
                    raise PosError(401, "UNAUTHORIZED", "invalid API key")
                store = self._store(request.args.get("store"))
                payload = self.receipts_page(store, request.args) if method == "receipts" else self.stock(store)
                response = _json(payload)
                stall = app.faults.consume_timeout(f"{NAME}.timeout_after_success", method)
            except PosError as error:
                response = _json({"error": {"code": error.code, "message": error.message}}, error.status)
        if stall:
            app.stall(stall, request.environ)
        return response

    def _store(self, slug: str | None) -> Store:
        if not slug:
            raise PosError(400, "INVALID_PARAMETER", "store is required")
        store = self.stores.get(slug)
        if store is None:
            raise PosError(404, "STORE_NOT_FOUND", f"unknown store {slug}")
        return store

    # ------------------------------------------------------------------------------------------- reads

    def receipts_page(self, store: Store, args: Mapping[str, str]) -> dict:
        limit = _limit(args.get("limit"))
        cursor = args.get("cursor")
        if cursor:
            # The cursor wins over since: it is the resumable position in the upload sequence.
            after = _decode_cursor(cursor, store.slug)
            candidates = store.receipts[after:]
        else:
            since = _since(args.get("since"))
            candidates = [r for r in store.receipts if since is None or r.uploaded_at >= since]
            after = candidates[0].seq - 1 if candidates else len(store.receipts)
        page = candidates[:limit]
        last = page[-1].seq if page else after
        return {"store": store.slug, "receipts": [self._wire(r) for r in page],
                "next_cursor": _encode_cursor(store.slug, last), "has_more": len(candidates) > limit}

    @staticmethod
    def _wire(receipt: Receipt) -> dict:
        data = copy.deepcopy(receipt.data)
        if receipt.malformed == "missing_receipt_no":
            del data["receipt_no"]
        return data

    def stock(self, store: Store) -> dict:
        items = []
        for code, qty in sorted(store.stock.items()):
            sku = self.app.world._listing(code)
            items.append({"sku": code, "barcode": barcode(sku), "item_name": sku.title, "qty": qty})
        return {"store": store.slug, "as_of": _iso(self.app.now()), "items": items}

    # ------------------------------------------------------------------------------------------- writes

    def _next_receipt_no(self, store: Store, at: datetime) -> str:
        day = at.astimezone(clock.shanghai()).strftime("%Y%m%d")
        store.daily[day] = store.daily.get(day, 0) + 1
        return f"{store.code}-{day}-{store.daily[day]:06d}"

    def _add(self, store: Store, receipt_no: str, at: datetime, data: dict, malformed: str | None) -> Receipt:
        receipt = Receipt(store.slug, receipt_no, len(store.receipts) + 1, at, clock.now(), data, malformed)
        data["uploaded_at"] = _iso(receipt.uploaded_at)
        store.receipts.append(receipt)
        self.receipts[receipt_no] = receipt
        return receipt

    def create_orders(self, shop: str, count: int, at: datetime | None, malformed: str | None,
                      lines: list[dict] | None) -> list[str]:
        if shop not in self.stores:
            raise WorldError(f"unknown POS store {shop!r}; known: {', '.join(self.stores)}")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"malformed must be one of {', '.join(MALFORMED_KINDS)}")
        if lines is not None and (not isinstance(lines, list) or not lines or not all(
                isinstance(line, dict) and isinstance(line.get("sku"), str)
                and isinstance(line.get("num", 1), int) and line.get("num", 1) >= 1 for line in lines)):
            raise WorldError('lines must be a list like [{"sku": "SKU-001-RED-M", "num": 2}]')
        with self.app.lock:
            return [self._new_sale(self.stores[shop], at or self.app.now(), malformed, lines).receipt_no
                    for _ in range(count)]

    def _new_sale(self, store: Store, at: datetime, malformed: str | None, chosen: list[dict] | None) -> Receipt:
        rng = self.sales_rng
        world = self.app.world
        if chosen:
            picks = [(world._listing(line["sku"]), int(line.get("num", 1))) for line in chosen]
        else:
            picks = [(sku, rng.randint(1, 2)) for sku in rng.sample(list(world.catalogue), rng.randint(1, 4))]
        member = rng.random() < 0.6
        member_id = f"VIP****{rng.randint(0, 9999):04d}" if member else None
        lines = []
        for number, (sku, qty) in enumerate(picks, start=1):
            total = sku.price * qty
            discount = (total * MEMBER_DISCOUNT).quantize(CENT, ROUND_HALF_UP) if member else ZERO
            lines.append({"line_no": number, "sku": sku.outer_sku_id, "barcode": barcode(sku),
                          "item_code": sku.outer_iid, "item_name": _item_name(sku),
                          "qty": qty, "unit_price": _money(sku.price), "line_total": _money(total),
                          "line_discount": _money(discount)})
            # Tills sell what is on the shelf even when the stock record says zero: stock may go negative.
            store.stock[sku.outer_sku_id] = store.stock.get(sku.outer_sku_id, 0) - qty
        gross = sum((Decimal(line["line_total"]) for line in lines), ZERO)
        discount = sum((Decimal(line["line_discount"]) for line in lines), ZERO)
        paid = gross - discount
        payments = _payments(rng, paid, at)
        if malformed == "unknown_payment":
            payments[0]["method"] = UNKNOWN_PAYMENT
        receipt_no = self._next_receipt_no(store, at)
        data = {
            "receipt_no": receipt_no, "store": store.slug, "type": "SALE", "pos_id": rng.choice(store.tills),
            "cashier_id": f"C{rng.randint(1, 12):02d}", "sale_time": _iso(at), "uploaded_at": None,
            "member_id": member_id, "currency": "CNY", "total_amount": _money(gross),
            "discount_amount": _money(discount), "paid_amount": BAD_AMOUNT if malformed == "bad_amount" else
            _money(paid), "lines": lines, "payments": payments, "original_receipt_no": None, "remark": None,
        }
        return self._add(store, receipt_no, at, data, malformed)

    def modify_order(self, order_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: a customer brings goods back. ``{"return": [{"sku", "qty"}] (default: everything left),
        "at"}`` -> ``{"receipt_no", "return_receipt_no"}``. Receipts themselves never change."""
        with self.app.lock:
            original = self.receipts.get(str(order_id))
            if original is None:
                raise WorldError(f"no POS receipt {order_id}", 404)
            if original.data["type"] != "SALE":
                raise WorldError(f"{order_id} is a {original.data['type']} receipt; only sales can be returned")
            unknown = set(changes) - {"return", "at"}
            if unknown:
                raise WorldError(f"unknown change(s) {', '.join(sorted(unknown))}; POS receipts are immutable, "
                                 'only {"return": [...]} is supported')
            at = admin_at(changes, clock.now())
            wanted = self._return_lines(original, changes.get("return"))
            return {"receipt_no": original.receipt_no,
                    "return_receipt_no": self._new_return(original, wanted, at).receipt_no}

    @staticmethod
    def _return_lines(original: Receipt, spec: object) -> list[tuple[dict, int]]:
        left = {line["line_no"]: line["qty"] - original.returned.get(line["line_no"], 0)
                for line in original.data["lines"]}
        if spec is None:
            wanted = [(line, left[line["line_no"]]) for line in original.data["lines"] if left[line["line_no"]] > 0]
        else:
            if not isinstance(spec, list) or not spec:
                raise WorldError('return must be a list like [{"sku": "SKU-001-RED-M", "qty": 1}]')
            wanted = []
            for item in spec:
                line = next((ln for ln in original.data["lines"]
                             if isinstance(item, dict) and ln["sku"] == item.get("sku")), None)
                qty = item.get("qty", 1) if isinstance(item, dict) else None
                if line is None:
                    raise WorldError(f"receipt {original.receipt_no} has no line with sku {item!r}")
                if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= left[line["line_no"]]:
                    raise WorldError(f"qty for {line['sku']} must be between 1 and {left[line['line_no']]}")
                wanted.append((line, qty))
        if not wanted:
            raise WorldError(f"receipt {original.receipt_no} has nothing left to return")
        return wanted

    def _new_return(self, original: Receipt, wanted: list[tuple[dict, int]], at: datetime) -> Receipt:
        store = self.stores[original.store]
        lines = []
        for number, (line, qty) in enumerate(wanted, start=1):
            unit = Decimal(line["unit_price"])
            # The refund gives back the discount share of the returned units, so the amounts mirror the sale.
            share = (Decimal(line["line_discount"]) * qty / line["qty"]).quantize(CENT, ROUND_HALF_UP)
            lines.append({**line, "line_no": number, "qty": -qty, "line_total": _money(-unit * qty),
                          "line_discount": _money(-share), "original_line_no": line["line_no"]})
            original.returned[line["line_no"]] = original.returned.get(line["line_no"], 0) + qty
            store.stock[line["sku"]] = store.stock.get(line["sku"], 0) + qty
        gross = sum((Decimal(line["line_total"]) for line in lines), ZERO)
        discount = sum((Decimal(line["line_discount"]) for line in lines), ZERO)
        refund = gross - discount
        # Refunds go back to the original tender (the first payment of the sale).
        first = original.data["payments"][0]
        payments = [{"method": first["method"], "amount": _money(refund), "trace_no": first["trace_no"]}]
        receipt_no = self._next_receipt_no(store, at)
        data = {**copy.deepcopy(original.data), "receipt_no": receipt_no, "type": "RETURN",
                "sale_time": _iso(at), "total_amount": _money(gross), "discount_amount": _money(discount),
                "paid_amount": _money(refund), "lines": lines, "payments": payments,
                "original_receipt_no": original.receipt_no, "remark": "顾客退货"}
        return self._add(store, receipt_no, at, data, None)

    # ------------------------------------------------------------------------------------------- truth

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            stores: dict[str, Any] = {slug: {"orders": {}, "stock": dict(store.stock)}
                                      for slug, store in self.stores.items()}
            for receipt in self.receipts.values():
                data = receipt.data
                if data["type"] == "RETURN":
                    status = "RETURN"
                else:
                    returned = sum(receipt.returned.values())
                    sold = sum(line["qty"] for line in data["lines"])
                    status = "COMPLETED" if not returned else "RETURNED" if returned >= sold else "PARTIALLY_RETURNED"
                stores[receipt.store]["orders"][receipt.receipt_no] = {
                    "status": status, "type": data["type"], "modified": clock.format_wire(receipt.sale_time),
                    "uploaded_at": clock.format_wire(receipt.uploaded_at), "seq": receipt.seq,
                    "malformed": receipt.malformed is not None, "malformed_kind": receipt.malformed,
                    "original_receipt_no": data["original_receipt_no"], "paid_amount": data["paid_amount"]}
            return {"channels": {NAME: stores}}


def _payments(rng: random.Random, paid: Decimal, at: datetime) -> list[dict]:
    def trace(method: str) -> str | None:
        if method == "CASH":
            return None
        if method == "CARD":  # terminal trace number (6 digits) + reference number (12 digits)
            return f"{rng.randint(0, 999999):06d}{rng.randint(0, 10**12 - 1):012d}"
        # Alipay trade_no: yyyyMMdd + "22" + digits; WeChat Pay transaction_id: "42000" + ... + yyyyMMdd + digits.
        if method == "ALIPAY":
            return at.strftime("%Y%m%d") + "22" + "".join(rng.choices(string.digits, k=18))
        return "4200" + "".join(rng.choices(string.digits, k=6)) + at.strftime("%Y%m%d") + \
            "".join(rng.choices(string.digits, k=10))

    method = rng.choices(PAYMENT_METHODS, weights=(1, 2, 3, 4))[0]
    if paid > 100 and rng.random() < 0.15:
        # A split tender: part by card, the rest (a round-ish amount) in cash.
        cash = Decimal(rng.randint(1, int(paid // 2)))
        return [{"method": "CARD", "amount": _money(paid - cash), "trace_no": trace("CARD")},
                {"method": "CASH", "amount": _money(cash), "trace_no": None}]
    return [{"method": method, "amount": _money(paid), "trace_no": trace(method)}]


def _item_name(sku: Sku) -> str:
    # "纯棉圆领T恤 红色/M", as a till prints it: the title plus the variant values.
    values = [part.split(":", 1)[1] for part in sku.sku_properties_name.split(";") if ":" in part]
    return f"{sku.title} {'/'.join(values)}".strip()


def _limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise PosError(400, "INVALID_PARAMETER", "limit must be an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        raise PosError(400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PosError(400, "INVALID_PARAMETER", "since must be ISO 8601, e.g. 2026-03-01T10:00:00+08:00") from None
    # No offset: store-local time (Asia/Shanghai), as a store's staff would type it.
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.shanghai())


def _encode_cursor(store: str, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": store, "q": seq}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, store: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        seq, bound = int(decoded["q"]), decoded["s"]
    except (ValueError, KeyError, TypeError):
        raise PosError(400, "INVALID_CURSOR", "cursor was not issued by this API") from None
    if bound != store or seq < 0:
        raise PosError(400, "INVALID_CURSOR", f"cursor belongs to store {bound}, not {store}")
    return seq



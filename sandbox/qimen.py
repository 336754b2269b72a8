"""Simulated Qimen WMS (``/qimen/router``; ``/router/qimen/service`` when served alone), per specs §6.

Inbound (ERP -> WMS): system parameters in the URL query, the XML document as the raw body, signed with the TOP md5
rule over the query parameters with the body appended (§6.1). Business methods, each under its short name and its
``taobao.qimen.`` name: ``deliveryorder.create`` (idempotent on ``deliveryOrderCode``, as §6.1 requires of every WMS),
``order.cancel`` / ``deliveryorder.cancel`` (intercept before shipping), ``inventory.query`` (§6.4) and
``returnorder.create`` (idempotent on ``returnOrderCode``).

Outbound (WMS -> ERP), each a signed request exactly as the WMS would POST it to the ERP, in three feeds with their
own sequence numbers (a sandbox convenience: real WMSes only push) and pushed to the registered callback URL by
:class:`ConfirmPusher`, one background stream per feed that retries until the receiver answers
``<flag>success</flag>``:

* ``deliveryorder.confirm`` (§6.3; ``GET /qimen/_confirms``) when a delivery order ships - at once with the
  ``wms.auto_ship`` knob, or on ``POST /_sandbox/wms/ship``, which can also split a shipment into several parcels and
  ship part of an order (``confirmType`` 1, then 0 for the rest);
* ``returnorder.confirm`` (``GET /qimen/_returns``) when the warehouse receives a return
  (``POST /_sandbox/wms/return/receive``);
* ``stockchange.report`` (``GET /qimen/_stockchanges``) for stock movements not tied to an ERP document (counts,
  damage: ``POST /_sandbox/wms/stock``), visible only after ``wms.stock_report_lag_s``.

The WMS keeps a stock book per warehouse and item (seeded from the catalogue): ``deliveryorder.create`` locks the
planned quantity, shipping takes it off the shelf, a cancel unlocks what was not shipped, a received return puts
sellable (``ZP``) units back.

Failure codes, the gateway URL and the stockchange quantity sign are UNCONFIRMED in the spec (§11); the sandbox's
choices are listed in ``sandbox/docs/qimen.md``.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from connectors.top_signing import sign, verify
from sandbox import clock
from sandbox.common import admin_body as _admin_body
from sandbox.common import json_response as _json
from sandbox.top import TIMESTAMP_SKEW
from sandbox.world import WorldError

if TYPE_CHECKING:
    from sandbox.app import SandboxApp
    from sandbox.world import World

SYSTEM_NAME = "qimen_wms"
ROUTER_PATH = "/qimen/router"
# The Qimen gateway path an ERP calls in production (spec §6.1, URL UNCONFIRMED); used when served alone.
STANDALONE_ROUTER_PATH = "/router/qimen/service"
CONFIRMS_PATH = "/qimen/_confirms"
RETURNS_PATH = "/qimen/_returns"
STOCKCHANGES_PATH = "/qimen/_stockchanges"
LONG_PREFIX = "taobao.qimen."

# Outbound feeds: name -> (Qimen method, feed path).
FEEDS = {
    "confirms": ("deliveryorder.confirm", CONFIRMS_PATH),
    "returns": ("returnorder.confirm", RETURNS_PATH),
    "stockchanges": ("stockchange.report", STOCKCHANGES_PATH),
}

# §6.5 logisticsCode list (code -> name used in confirm packages).
LOGISTICS = {
    "SF": "顺丰",
    "EMS": "标准快递",
    "EYB": "经济快件",
    "ZJS": "宅急送",
    "YTO": "圆通",
    "ZTO": "中通",
    "HTKY": "百世汇通",
    "UC": "优速",
    "STO": "申通",
    "TTKDEX": "天天",
    "QFKD": "全峰",
    "FAST": "快捷",
    "POSTB": "邮政小包",
    "GTO": "国通",
    "YUNDA": "韵达",
    "JD": "京东配送",
    "DD": "当当宅配",
    "AMAZON": "亚马逊物流",
    "OTHER": "其他",
}
DEFAULT_CARRIER = "SF"
INVENTORY_TYPES = ("ZP", "CC", "JS", "XS", "ZT")  # §6.5; only ZP (正品) is sellable stock in the book
RETURN_ORDER_TYPES = ("THRK", "HHRK")  # §6.4: 退货入库 | 换货入库
# Parcel weight the WMS "measures": a fixed 0.5 kg per unit keeps confirms deterministic.
WEIGHT_PER_UNIT = Decimal("0.5")
MAX_CRITERIA = 100  # inventory.query criteria per call (a sandbox limit; production's is UNCONFIRMED)

log = logging.getLogger(__name__)


class QimenFailure(Exception):
    """A request the WMS answers with ``<flag>failure</flag>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ------------------------------------------------------------------------------------------------ the WMS's memory


@dataclass
class OrderLine:
    line_no: str
    item_code: str
    plan_qty: int
    source_order_code: str
    sub_source_order_code: str
    shipped_qty: int = 0

    def as_json(self) -> dict:
        return {
            "order_line_no": self.line_no,
            "item_code": self.item_code,
            "plan_qty": self.plan_qty,
            "source_order_code": self.source_order_code,
            "sub_source_order_code": self.sub_source_order_code,
            "shipped_qty": self.shipped_qty,
        }


@dataclass
class Package:
    package_code: str
    logistics_code: str
    express_code: str
    items: dict[str, int]  # itemCode -> quantity
    out_biz_code: str

    def as_json(self) -> dict:
        return {
            "package_code": self.package_code,
            "logistics_code": self.logistics_code,
            "express_code": self.express_code,
            "items": [{"item_code": code, "quantity": qty} for code, qty in self.items.items()],
            "out_biz_code": self.out_biz_code,
        }


@dataclass
class DeliveryOrder:
    """One ``deliveryOrderCode`` as the WMS knows it; a record exists from the first receipt, even a failed one."""

    code: str
    received: int = 0
    created: int = 0
    delivery_order_id: str | None = None
    create_time: datetime | None = None
    warehouse_code: str | None = None
    order_type: str = "JYCK"
    logistics_code: str | None = None
    shop_nick: str | None = None
    total_amount: str | None = None
    lines: list[OrderLine] = field(default_factory=list)
    status: str | None = None
    express_code: str | None = None  # the first parcel's waybill (what a single-parcel order has)
    confirm_seq: int | None = None  # feed seq of the latest confirm
    packages: list[Package] = field(default_factory=list)
    confirms: list[dict] = field(default_factory=list)
    cancels: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def set_status(self, status: str, at: datetime) -> None:
        self.status = status
        self.history.append({"status": status, "at": clock.format_wire(at)})

    def remaining(self) -> int:
        return sum(line.plan_qty - line.shipped_qty for line in self.lines)

    def truth(self) -> dict:
        sources = [line.source_order_code for line in self.lines if line.source_order_code]
        return {
            "received": self.received,
            "created": self.created,
            "delivery_order_id": self.delivery_order_id,
            "source_order_codes": list(dict.fromkeys(sources)),
            "shop_nick": self.shop_nick,
            "status": self.status,
            "express_code": self.express_code,
            "logistics_code": self.logistics_code,
            "warehouse_code": self.warehouse_code,
            "total_amount": self.total_amount,
            "lines": [line.as_json() for line in self.lines],
            "confirm_seq": self.confirm_seq,
            "packages": [package.as_json() for package in self.packages],
            "confirms": copy.deepcopy(self.confirms),
            "cancels": [dict(cancel) for cancel in self.cancels],
            "status_history": [dict(entry) for entry in self.history],
        }


@dataclass
class ReturnLine:
    line_no: str
    item_code: str
    plan_qty: int
    inventory_type: str
    source_order_code: str
    sub_source_order_code: str
    actual_qty: int | None = None
    received_inventory_type: str | None = None

    def as_json(self) -> dict:
        return {
            "order_line_no": self.line_no,
            "item_code": self.item_code,
            "plan_qty": self.plan_qty,
            "inventory_type": self.inventory_type,
            "source_order_code": self.source_order_code,
            "sub_source_order_code": self.sub_source_order_code,
            "actual_qty": self.actual_qty,
            "received_inventory_type": self.received_inventory_type,
        }


@dataclass
class ReturnOrder:
    """One ``returnOrderCode`` (expected customer return, §6.4)."""

    code: str
    received: int = 0
    created: int = 0
    return_order_id: str | None = None
    create_time: datetime | None = None
    warehouse_code: str | None = None
    order_type: str = "THRK"
    pre_delivery_order_code: str | None = None
    pre_delivery_order_id: str | None = None
    logistics_code: str | None = None
    express_code: str | None = None
    return_reason: str | None = None
    lines: list[ReturnLine] = field(default_factory=list)
    status: str | None = None
    confirm_seq: int | None = None
    out_biz_code: str | None = None
    history: list[dict] = field(default_factory=list)

    def set_status(self, status: str, at: datetime) -> None:
        self.status = status
        self.history.append({"status": status, "at": clock.format_wire(at)})

    def truth(self) -> dict:
        return {
            "received": self.received,
            "created": self.created,
            "return_order_id": self.return_order_id,
            "status": self.status,
            "warehouse_code": self.warehouse_code,
            "order_type": self.order_type,
            "pre_delivery_order_code": self.pre_delivery_order_code,
            "pre_delivery_order_id": self.pre_delivery_order_id,
            "logistics_code": self.logistics_code,
            "express_code": self.express_code,
            "return_reason": self.return_reason,
            "lines": [line.as_json() for line in self.lines],
            "confirm_seq": self.confirm_seq,
            "out_biz_code": self.out_biz_code,
            "status_history": [dict(entry) for entry in self.history],
        }


@dataclass
class StockLevel:
    """Sellable (ZP) stock of one item in one warehouse: on the shelf, and of that locked by open delivery orders."""

    item_id: str
    on_hand: int
    locked: int = 0

    @property
    def available(self) -> int:
        # inventory.query's ``quantity`` is the unlocked stock (可用/未冻结), ``lockQuantity`` the locked part.
        # It goes negative when more is ordered than stocked: the sandbox accepts such orders (it never short-picks).
        return self.on_hand - self.locked

    def as_json(self) -> dict:
        return {"item_id": self.item_id, "quantity": self.available, "lock_quantity": self.locked,
                "on_hand": self.on_hand}


@dataclass
class WmsBook:
    """The WMS's memory: documents by code, the stock book, and the append-only outbound feeds."""

    waybill_base: int
    delivery_orders: dict[str, DeliveryOrder] = field(default_factory=dict)
    returns: dict[str, ReturnOrder] = field(default_factory=dict)
    stock: dict[tuple[str, str], StockLevel] = field(default_factory=dict)
    # feed name -> entries {"seq", "params", "body"} (stock changes also carry "visible_at", kept out of the wire)
    feeds: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in FEEDS})
    # deliveryorder.confirm messages held back by wms.out_of_order_confirm, not yet in the feed
    held: list[dict] = field(default_factory=list)
    created_count: int = 0
    return_count: int = 0
    message_count: int = 0
    package_count: int = 0
    adjustment_count: int = 0

    @classmethod
    def build(cls, seed: int, world: World | None = None) -> WmsBook:
        # Own streams so waybill numbers and stock do not depend on how many trades the Tmall side generated.
        rng = random.Random(f"orderhub-sandbox/{seed}/waybills")
        book = cls(waybill_base=rng.randint(100_000_000_000, 500_000_000_000))
        if world is not None:
            stock_rng = random.Random(f"orderhub-sandbox/{seed}/wms-stock")
            for warehouse in world.wms.warehouses:
                for index, sku in enumerate(world.catalogue, start=1):
                    book.stock[(warehouse, sku.outer_sku_id)] = StockLevel(
                        item_id=f"WMS-IT-{index:04d}", on_hand=stock_rng.randint(100, 1000))
        return book

    @property
    def confirms(self) -> list[dict]:
        return self.feeds["confirms"]

    @property
    def last_seq(self) -> int:
        return len(self.feeds["confirms"])

    def next_out_biz_code(self) -> str:
        self.message_count += 1
        return f"WMS-MSG-{self.message_count:06d}"

    def visible(self, feed: str, now: datetime | None = None) -> int:
        """How many entries of ``feed`` a reader may see: the prefix whose ``visible_at`` has passed.

        A prefix, never a filter, so a cursor (``after``) can never skip an entry that becomes visible later.
        """
        entries = self.feeds[feed]
        moment = now or clock.precise_now()
        for index, entry in enumerate(entries):
            if entry.get("visible_at") is not None and entry["visible_at"] > moment:
                return index
        return len(entries)

    def truth(self) -> dict:
        stock: dict[str, dict[str, dict]] = {}
        for (warehouse, item), level in self.stock.items():
            stock.setdefault(warehouse, {})[item] = level.as_json()
        return {
            "delivery_orders": {code: do.truth() for code, do in self.delivery_orders.items()},
            "returns": {code: ro.truth() for code, ro in self.returns.items()},
            "stock": stock,
            "reported": {name: [copy.deepcopy(entry["report"]) for entry in self.feeds[name]] for name in FEEDS},
            "held_confirms": [copy.deepcopy(entry["report"]) for entry in self.held],
        }


# ------------------------------------------------------------------------------------------------ router


class QimenRouter:
    """The WSGI-level handler for the Qimen router and the outbound feeds."""

    METHODS = ("deliveryorder.create", "order.cancel", "deliveryorder.cancel", "inventory.query",
               "returnorder.create")

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self._handlers: dict[str, Callable[[ET.Element], tuple[dict[str, str], list[ET.Element]]]] = {
            "deliveryorder.create": lambda root: (self.deliveryorder_create(root), []),
            "order.cancel": lambda root: (self.order_cancel(root), []),
            "deliveryorder.cancel": lambda root: (self.order_cancel(root), []),
            "inventory.query": lambda root: ({}, [self.inventory_query(root)]),
            "returnorder.create": lambda root: (self.returnorder_create(root), []),
        }

    def dispatch(self, endpoint: str, request: Request) -> Response:
        """Entry point from ``SandboxApp``: ``qimen`` (the router) or ``qimen_<feed>``."""
        if endpoint == "qimen":
            return self(request)
        return self.feed(endpoint.removeprefix("qimen_"), request)

    def __call__(self, request: Request) -> Response:
        params = {key: request.args[key] for key in request.args}
        raw = request.get_data(cache=False)
        app = self.app
        with app.lock:
            latency_ms = app.faults.get("wms.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)

        stall = None
        with app.lock:
            if app.faults.consume("wms.http_500"):
                # A broken front proxy, not a WMS answer: no <response>, no effect.
                return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", status=500,
                                mimetype="text/html")
            settle(app)
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = None
            try:
                if body is None:
                    raise QimenFailure("invalid-xml", "body must be UTF-8")
                method = self._authenticate(params, body)
                fields, children = self._handlers[method](_parse_request(raw))
                response = _xml_response("success", "0", "ok", fields, children)
                stall = app.faults.consume_timeout("wms.timeout_after_success", method, LONG_PREFIX + method)
            except QimenFailure as failure:
                response = _xml_response("failure", failure.code, failure.message, {})
        if stall:
            app.stall(stall, request.environ)
        return response

    def _authenticate(self, params: Mapping[str, str], body: str) -> str:
        """Check the system parameters in the order of §6.1; returns the short method name."""
        wms = self.app.world.wms
        for name in ("method", "app_key", "customerId", "timestamp", "sign"):
            if not params.get(name):
                raise QimenFailure("missing-parameter", f"缺少系统参数 {name}")
        method = params["method"].removeprefix(LONG_PREFIX)
        if method not in self.METHODS:
            raise QimenFailure("invalid-method", f"方法 {params['method']} 不支持 (not implemented by the sandbox)")
        if params["app_key"] != wms.app_key:
            raise QimenFailure("invalid-app-key", f"app_key {params['app_key']} 不存在")
        if params["customerId"] != wms.customer_id:
            raise QimenFailure("invalid-customer-id", f"customerId {params['customerId']} 不存在")
        try:
            sent_at = clock.parse_wire(params["timestamp"])
        except ValueError:
            raise QimenFailure("invalid-timestamp", "timestamp must be 'yyyy-MM-dd HH:mm:ss' GMT+8") from None
        if abs(self.app.now() - sent_at) > TIMESTAMP_SKEW:
            raise QimenFailure("invalid-timestamp", "timestamp differs from server time by more than 10 minutes")
        if (params.get("sign_method") or "md5") != "md5" or not verify(params, wms.app_secret, body=body):
            raise QimenFailure("sign-check-failure", "Illegal request")
        if (params.get("format") or "xml") != "xml":
            raise QimenFailure("invalid-format", "the sandbox WMS implements format=xml only")
        if params.get("v", "2.0") != "2.0":
            raise QimenFailure("invalid-version", "v must be 2.0")
        return method

    # ------------------------------------------------------------------------------------------- methods

    def deliveryorder_create(self, root: ET.Element) -> dict[str, str]:
        app = self.app
        book = app.wms
        header = root.find("deliveryOrder")
        if header is None:
            raise QimenFailure("missing-parameter", "缺少 deliveryOrder")
        code = _text(header, "deliveryOrderCode")
        if not code:
            raise QimenFailure("missing-parameter", "缺少 deliveryOrderCode")

        record = book.delivery_orders.setdefault(code, DeliveryOrder(code=code))
        record.received += 1
        if app.faults.consume("wms.fail_create"):
            raise QimenFailure("system-error", "系统繁忙，请稍后重试 (wms.fail_create fault)")
        if record.created:
            # Idempotent on the document code (§6.1): same answer, nothing new - even once canceled.
            return _create_answer(record)

        warehouse = self._warehouse(_text(header, "warehouseCode"))
        logistics = self._carrier(_text(header, "logisticsCode"))
        total_amount = _text(header, "totalAmount") or None
        for name in ("totalAmount", "itemAmount", "discountAmount", "freight", "arAmount", "gotAmount"):
            value = _text(header, name)
            if value:
                try:
                    Decimal(value)
                except InvalidOperation:
                    raise QimenFailure("invalid-parameter", f"{name} 不是金额: {value}") from None
        _check_receiver(header.find("receiverInfo"))
        lines = [
            OrderLine(line_no=no, item_code=item, plan_qty=qty, source_order_code=_text(element, "sourceOrderCode"),
                      sub_source_order_code=_text(element, "subSourceOrderCode"))
            for no, item, qty, element in self._parse_lines(root)
        ]

        now = app.now()
        book.created_count += 1
        record.created = 1
        record.delivery_order_id = f"WMS-DO-{book.created_count:06d}"
        record.create_time = now
        record.warehouse_code = warehouse
        record.order_type = _text(header, "orderType") or "JYCK"
        record.logistics_code = logistics
        record.shop_nick = _text(header, "shopNick") or None
        record.total_amount = total_amount
        record.lines = lines
        record.set_status("ACCEPT", now)
        for line in lines:
            _level(book, warehouse, line.item_code).locked += line.plan_qty
        if app.faults.get("wms.auto_ship"):
            ship(app, record)
        return _create_answer(record)

    def order_cancel(self, root: ET.Element) -> dict[str, str]:
        """``order.cancel`` (§6.1 "单据取消"): ``orderCode`` (or ``deliveryOrderCode``/``returnOrderCode``),
        ``orderId``, ``orderType``, ``warehouseCode``, ``cancelReason``.

        Cancels a delivery order still in the warehouse, or an expected return not yet received. Once anything has
        shipped the WMS refuses with ``order-already-delivered``: the parcel has left, the ERP needs a return."""
        app = self.app
        book = app.wms
        code = _text(root, "orderCode") or _text(root, "deliveryOrderCode") or _text(root, "returnOrderCode")
        if not code:
            raise QimenFailure("missing-parameter", "缺少 orderCode")
        order_type = _text(root, "orderType")
        reason = _text(root, "cancelReason") or None
        now = app.now()
        wants_return = order_type in RETURN_ORDER_TYPES or (code in book.returns and code not in book.delivery_orders)
        if wants_return:
            ret = book.returns.get(code)
            if ret is None or not ret.created:
                raise QimenFailure("order-not-exist", f"单据 {code} 不存在")
            if ret.status == "FULFILLED":
                raise QimenFailure("order-already-received", f"退货单 {code} 已入库，不能取消")
            if ret.status != "CANCELED":
                ret.set_status("CANCELED", now)
            return {}

        record = book.delivery_orders.get(code)
        if record is None or not record.created:
            if record is not None:
                record.cancels.append({"at": clock.format_wire(now), "outcome": "not-exist", "reason": reason})
            raise QimenFailure("order-not-exist", f"单据 {code} 不存在")
        entry = {"at": clock.format_wire(now), "outcome": "", "reason": reason}
        record.cancels.append(entry)
        if record.status == "CANCELED":
            entry["outcome"] = "already-canceled"  # a repeated cancel is a success that changes nothing
            return {}
        if record.status != "ACCEPT":
            # Shipped (wholly or partly): the parcel has left; the ERP must handle it as a return.
            entry["outcome"] = "refused-shipped"
            raise QimenFailure("order-already-delivered",
                               f"单据 {code} 已发货 ({record.status})，取消失败")
        entry["outcome"] = "canceled"
        for line in record.lines:
            _level(book, record.warehouse_code or "", line.item_code).locked -= line.plan_qty - line.shipped_qty
        record.set_status("CANCELED", now)
        return {}

    def inventory_query(self, root: ET.Element) -> ET.Element:
        """``inventory.query`` (§6.4): one ``<item>`` per (warehouse, item) matching each criteria, ZP stock only."""
        book = self.app.wms
        container = root.find("criteriaList")
        criteria = container.findall("criteria") if container is not None else []
        if not criteria:
            raise QimenFailure("missing-parameter", "缺少 criteriaList")
        if len(criteria) > MAX_CRITERIA:
            raise QimenFailure("invalid-parameter", f"criteriaList 最多 {MAX_CRITERIA} 条")
        items = ET.Element("items")
        for index, element in enumerate(criteria, start=1):
            warehouse = _text(element, "warehouseCode")
            item_code, item_id = _text(element, "itemCode"), _text(element, "itemId")
            inventory_type = _text(element, "inventoryType") or "ZP"
            if not (item_code or item_id):
                raise QimenFailure("missing-parameter", f"criteria {index} 缺少 itemCode")
            if warehouse and warehouse not in self.app.world.wms.warehouses:
                raise QimenFailure("invalid-parameter", f"仓库 {warehouse} 不存在")
            if inventory_type not in INVENTORY_TYPES:
                raise QimenFailure("invalid-parameter", f"inventoryType {inventory_type} 不支持")
            if inventory_type != "ZP":
                continue  # the book holds sellable stock only; other types have no rows
            for (wh, code), level in book.stock.items():
                if (warehouse and wh != warehouse) or (item_code and code != item_code) or (
                        item_id and level.item_id != item_id):
                    continue
                row = ET.SubElement(items, "item")
                for tag, value in (("warehouseCode", wh), ("itemCode", code), ("itemId", level.item_id),
                                   ("inventoryType", "ZP"), ("quantity", str(level.available)),
                                   ("lockQuantity", str(level.locked)), ("batchCode", ""), ("productDate", ""),
                                   ("expireDate", "")):
                    _add(row, tag, value)
        return items

    def returnorder_create(self, root: ET.Element) -> dict[str, str]:
        app = self.app
        book = app.wms
        header = root.find("returnOrder")
        if header is None:
            raise QimenFailure("missing-parameter", "缺少 returnOrder")
        code = _text(header, "returnOrderCode")
        if not code:
            raise QimenFailure("missing-parameter", "缺少 returnOrderCode")
        record = book.returns.setdefault(code, ReturnOrder(code=code))
        record.received += 1
        if record.created:
            return _return_answer(record)  # idempotent on returnOrderCode, like deliveryorder.create

        warehouse = self._warehouse(_text(header, "warehouseCode"))
        order_type = _text(header, "orderType") or "THRK"
        if order_type not in RETURN_ORDER_TYPES:
            raise QimenFailure("invalid-parameter", f"orderType {order_type} 不是退货入库类型 (THRK/HHRK)")
        logistics = self._carrier(_text(header, "logisticsCode"))
        lines = []
        for no, item, qty, element in self._parse_lines(root):
            inventory_type = _text(element, "inventoryType") or "ZP"
            if inventory_type not in INVENTORY_TYPES:
                raise QimenFailure("invalid-parameter", f"inventoryType {inventory_type} 不支持")
            lines.append(ReturnLine(line_no=no, item_code=item, plan_qty=qty, inventory_type=inventory_type,
                                    source_order_code=_text(element, "sourceOrderCode"),
                                    sub_source_order_code=_text(element, "subSourceOrderCode")))
        now = app.now()
        book.return_count += 1
        record.created = 1
        record.return_order_id = f"WMS-RO-{book.return_count:06d}"
        record.create_time = now
        record.warehouse_code = warehouse
        record.order_type = order_type
        record.pre_delivery_order_code = _text(header, "preDeliveryOrderCode") or None
        record.pre_delivery_order_id = _text(header, "preDeliveryOrderId") or None
        record.logistics_code = logistics
        record.express_code = _text(header, "expressCode") or None
        record.return_reason = _text(header, "returnReason") or None
        record.lines = lines
        record.set_status("ACCEPT", now)
        return _return_answer(record)

    def _warehouse(self, warehouse: str) -> str:
        if not warehouse:
            raise QimenFailure("missing-parameter", "缺少 warehouseCode")
        if warehouse not in self.app.world.wms.warehouses:
            raise QimenFailure("invalid-parameter", f"仓库 {warehouse} 不存在")
        return warehouse

    @staticmethod
    def _carrier(code: str) -> str | None:
        if code and code not in LOGISTICS:
            raise QimenFailure("invalid-parameter", f"物流公司编码 {code} 不支持")
        return code or None

    def _parse_lines(self, root: ET.Element) -> list[tuple[str, str, int, ET.Element]]:
        container = root.find("orderLines")
        elements = container.findall("orderLine") if container is not None else []
        if not elements:
            raise QimenFailure("missing-parameter", "缺少 orderLines")
        lines = []
        for index, element in enumerate(elements, start=1):
            item_code = _text(element, "itemCode")
            if not item_code:
                raise QimenFailure("missing-parameter", f"orderLine {index} 缺少 itemCode")
            # Items must be known to the WMS (synchronised beforehand); the sandbox knows the world's catalogue.
            if self.app.world.sku(item_code) is None:
                raise QimenFailure("invalid-parameter", f"商品 {item_code} 不存在")
            try:
                plan_qty = int(_text(element, "planQty"))
            except ValueError:
                plan_qty = 0
            if plan_qty <= 0:
                raise QimenFailure("invalid-parameter", f"orderLine {index} planQty 必须为正整数")
            lines.append((_text(element, "orderLineNo") or str(index), item_code, plan_qty, element))
        return lines

    # ------------------------------------------------------------------------------------------- feeds

    def confirms_feed(self, request: Request) -> Response:
        return self.feed("confirms", request)

    def feed(self, name: str, request: Request) -> Response:
        """``GET /qimen/_<feed>?after=<seq>&limit=<n>`` -> ``{"<feed>": [...], "last_seq", "has_more"}``."""
        if name not in FEEDS:
            return _json({"error": f"no feed {name!r}"}, 404)
        try:
            after = int(request.args.get("after", "0"))
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            return _json({"error": "after and limit must be integers"}, 400)
        if after < 0 or not 1 <= limit <= 1000:
            return _json({"error": "after must be >= 0 and limit between 1 and 1000"}, 400)
        with self.app.lock:
            settle(self.app)
            visible = self.app.wms.visible(name)
            entries = self.app.wms.feeds[name][:visible]
            page = [_wire_entry(entry) for entry in entries[after: after + limit]]
            has_more = after + limit < len(entries)
        # last_seq is the cursor to pass back as ``after``: the last seq in this page (or ``after`` when empty),
        # never the global maximum, so a limited page cannot make a poller skip messages.
        last_seq = page[-1]["seq"] if page else after
        return _json({name: page, "last_seq": last_seq, "has_more": has_more})


def qimen_rules(standalone: bool = False) -> list[Rule]:
    """The Qimen routes: the router (at the real gateway path when served alone) and the three pull feeds."""
    return [
        Rule(STANDALONE_ROUTER_PATH if standalone else ROUTER_PATH, endpoint="qimen", methods=["POST"]),
        *(Rule(path, endpoint=f"qimen_{name}", methods=["GET"]) for name, (_, path) in FEEDS.items()),
    ]


def credentials(app: SandboxApp) -> dict:
    wms = app.world.wms
    return {
        "app_key": wms.app_key,
        "app_secret": wms.app_secret,
        "customer_id": wms.customer_id,
        "warehouses": list(wms.warehouses),
        "router_path": STANDALONE_ROUTER_PATH if app.only == SYSTEM_NAME else ROUTER_PATH,
        "standalone_router_path": STANDALONE_ROUTER_PATH,
        "confirms_path": CONFIRMS_PATH,
        "returns_path": RETURNS_PATH,
        "stockchanges_path": STOCKCHANGES_PATH,
    }


# ------------------------------------------------------------------------------------------------ outbound messages


def _signed(app: SandboxApp, method: str, body: str, stamp: str) -> dict[str, str]:
    # Signed with the same app_key/app_secret the ERP uses to call the WMS (see docs: a sandbox choice).
    wms = app.world.wms
    params = {"method": method, "app_key": wms.app_key, "customerId": wms.customer_id, "format": "xml",
              "sign_method": "md5", "timestamp": stamp, "v": "2.0"}
    params["sign"] = sign(params, wms.app_secret, "md5", body=body)
    return params


def _append(app: SandboxApp, feed: str, entry: dict) -> int:
    """Give ``entry`` the feed's next seq, append it and wake the pusher; returns the seq."""
    entries = app.wms.feeds[feed]
    entry["seq"] = len(entries) + 1
    entry["report"]["seq"] = entry["seq"]
    entries.append(entry)
    app.pusher.notify()
    return entry["seq"]


def _publish_confirm(app: SandboxApp, entry: dict) -> None:
    """Put a deliveryorder.confirm in the feed, applying wms.duplicate_confirm / wms.out_of_order_confirm."""
    book = app.wms
    batch = [entry]
    if app.faults.consume("wms.duplicate_confirm"):
        # The same message again (same outBizCode, body and signature), as a WMS that lost the ERP's answer resends.
        batch.append(dict(entry, params=dict(entry["params"]), report=dict(entry["report"], duplicate=True)))
    if app.faults.get("wms.out_of_order_confirm") and not book.held:
        book.held.extend(batch)  # overtaken by the next confirm
        return
    released, book.held = book.held, []
    _release(app, [*batch, *released])  # the newer message first, then the one it overtook


def settle(app: SandboxApp) -> None:
    """Release confirms still held back once ``wms.out_of_order_confirm`` was switched off (caller holds the lock)."""
    book = app.wms
    if book.held and not app.faults.get("wms.out_of_order_confirm"):
        released, book.held = book.held, []
        _release(app, released)


def _release(app: SandboxApp, messages: list[dict]) -> None:
    for message in messages:
        seq = _append(app, "confirms", message)
        target = app.wms.delivery_orders[message["report"]["delivery_order_code"]]
        target.confirm_seq = seq
        for confirm in target.confirms:
            if confirm["out_biz_code"] == message["report"]["out_biz_code"]:
                confirm["seqs"].append(seq)


def ship(app: SandboxApp, record: DeliveryOrder, parcels: int = 1, quantities: dict[int, int] | None = None) -> dict:
    """Ship ``quantities`` (line index -> units; default: everything left) of a created delivery order in
    ``parcels`` packages and emit the signed ``deliveryorder.confirm`` (§6.3). Returns the confirm entry.

    ``confirmType`` is 1 (intermediate) while units remain unshipped, 0 with the last ones; each confirm carries
    only its own packages and, per line, the ``actualQty`` of this shipment.
    """
    book = app.wms
    with app.lock:
        if not record.created or record.status not in ("ACCEPT", "PARTDELIVERED"):
            raise WorldError(f"delivery order {record.code} is {record.status or 'not created'}; nothing to ship")
        if quantities is None:
            quantities = {i: line.plan_qty - line.shipped_qty for i, line in enumerate(record.lines)}
        quantities = {i: qty for i, qty in quantities.items() if qty > 0}
        units = [record.lines[i].item_code for i in sorted(quantities) for _ in range(quantities[i])]
        if not units:
            raise WorldError(f"delivery order {record.code} has nothing left to ship")
        now = app.now()
        stamp = clock.format_wire(now)
        carrier = record.logistics_code or DEFAULT_CARRIER
        record.logistics_code = carrier
        out_biz_code = book.next_out_biz_code()

        # Split the units into ``parcels`` contiguous runs, as even as possible (never an empty parcel).
        count = max(1, min(parcels, len(units)))
        size, extra = divmod(len(units), count)
        packages, start = [], 0
        for number in range(count):
            run = units[start: start + size + (1 if number < extra else 0)]
            start += len(run)
            items: dict[str, int] = {}
            for item in run:
                items[item] = items.get(item, 0) + 1
            book.package_count += 1
            packages.append(Package(package_code=f"P{len(record.packages) + len(packages) + 1}",
                                    logistics_code=carrier,
                                    express_code=f"{carrier}{book.waybill_base + book.package_count:012d}",
                                    items=items, out_biz_code=out_biz_code))
        for index, qty in quantities.items():
            line = record.lines[index]
            line.shipped_qty += qty
            level = _level(book, record.warehouse_code or "", line.item_code)
            level.on_hand -= qty
            level.locked -= qty
        record.packages.extend(packages)
        record.express_code = record.express_code or packages[0].express_code
        final = record.remaining() == 0
        status = "DELIVERED" if final else "PARTDELIVERED"
        record.set_status(status, now)

        body = _confirm_body(record, packages, quantities, status, "0" if final else "1", out_biz_code, stamp)
        report = {"seq": None, "out_biz_code": out_biz_code, "delivery_order_code": record.code,
                  "confirm_type": 0 if final else 1, "status": status,
                  "package_codes": [p.package_code for p in packages], "at": stamp}
        record.confirms.append({"out_biz_code": out_biz_code, "confirm_type": report["confirm_type"],
                                "status": status, "package_codes": report["package_codes"], "at": stamp,
                                "seqs": []})
        entry = {"seq": None, "params": _signed(app, "deliveryorder.confirm", body, stamp), "body": body,
                 "report": report}
        _publish_confirm(app, entry)
        return entry


def ship_pending(app: SandboxApp, codes: list[str] | None = None, parcels: int = 1, partial: bool = False,
                 lines: Mapping[str, int] | None = None) -> list[str]:
    """Ship the given delivery orders (every created order with something left when ``codes`` is empty).

    ``partial`` ships the first half (rounded down, at least one unit) of what is left, in line order; ``lines``
    (``{orderLineNo: units}``, one code only) ships exactly those units. Returns the codes shipped.
    """
    with app.lock:
        settle(app)
        book = app.wms
        if codes:
            unknown = [code for code in codes if not getattr(book.delivery_orders.get(code), "created", 0)]
            if unknown:
                raise WorldError(f"no created delivery order for code(s): {', '.join(unknown)}", 404)
            records = [book.delivery_orders[code] for code in codes]
        else:
            records = [record for record in book.delivery_orders.values() if record.created]
        if lines is not None and len(codes or []) != 1:
            raise WorldError("lines needs exactly one delivery order code")
        plans: list[tuple[DeliveryOrder, dict[int, int] | None]] = []
        for record in records:
            if record.status not in ("ACCEPT", "PARTDELIVERED"):
                if codes and lines is not None:
                    raise WorldError(f"delivery order {record.code} is {record.status}; nothing to ship")
                continue
            if lines is not None:
                plans.append((record, _line_quantities(record, lines)))
            elif partial:
                if record.remaining() < 2:
                    if codes:
                        raise WorldError(f"delivery order {record.code} has {record.remaining()} unit left; "
                                         "a partial shipment needs at least 2")
                    continue
                plans.append((record, _first_units(record, record.remaining() // 2)))
            else:
                plans.append((record, None))
        for record, quantities in plans:
            ship(app, record, parcels, quantities)
        return [record.code for record, _ in plans]


def _line_quantities(record: DeliveryOrder, lines: Mapping[str, int]) -> dict[int, int]:
    by_no = {line.line_no: index for index, line in enumerate(record.lines)}
    quantities = {}
    for line_no, qty in lines.items():
        if line_no not in by_no:
            raise WorldError(f"delivery order {record.code} has no orderLineNo {line_no!r}")
        line = record.lines[by_no[line_no]]
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= line.plan_qty - line.shipped_qty:
            raise WorldError(f"line {line_no}: units must be an integer between 0 and "
                             f"{line.plan_qty - line.shipped_qty} (what is left)")
        quantities[by_no[line_no]] = qty
    if not any(quantities.values()):
        raise WorldError("lines ships nothing")
    return quantities


def _first_units(record: DeliveryOrder, units: int) -> dict[int, int]:
    quantities = {}
    for index, line in enumerate(record.lines):
        take = min(units, line.plan_qty - line.shipped_qty)
        if take > 0:
            quantities[index] = take
            units -= take
    return quantities


def _confirm_body(record: DeliveryOrder, packages: list[Package], quantities: dict[int, int], status: str,
                  confirm_type: str, out_biz_code: str, stamp: str) -> str:
    root = ET.Element("request")
    header = ET.SubElement(root, "deliveryOrder")
    _add(header, "deliveryOrderCode", record.code)
    _add(header, "deliveryOrderId", record.delivery_order_id)
    _add(header, "warehouseCode", record.warehouse_code)
    _add(header, "orderType", record.order_type)
    _add(header, "status", status)
    _add(header, "outBizCode", out_biz_code)
    _add(header, "confirmType", confirm_type)
    _add(header, "orderConfirmTime", stamp)
    _add(header, "operatorCode", "")
    _add(header, "operatorName", "")
    _add(header, "operateTime", stamp)

    container = ET.SubElement(root, "packages")
    for package in packages:
        element = ET.SubElement(container, "package")
        _add(element, "logisticsCode", package.logistics_code)
        _add(element, "logisticsName", LOGISTICS[package.logistics_code])
        _add(element, "expressCode", package.express_code)
        _add(element, "packageCode", package.package_code)
        _add(element, "weight", str(WEIGHT_PER_UNIT * sum(package.items.values())))
        items = ET.SubElement(element, "items")
        for item_code, quantity in package.items.items():
            item = ET.SubElement(items, "item")
            _add(item, "itemCode", item_code)
            _add(item, "quantity", str(quantity))

    lines = ET.SubElement(root, "orderLines")
    for index in sorted(quantities):
        line = record.lines[index]
        element = ET.SubElement(lines, "orderLine")
        _add(element, "orderLineNo", line.line_no)
        _add(element, "itemCode", line.item_code)
        _add(element, "planQty", str(line.plan_qty))
        _add(element, "actualQty", str(quantities[index]))
        _add(element, "inventoryType", "ZP")
        _add(element, "batchCode", "")
        _add(element, "produceCode", "")
    return ET.tostring(root, encoding="unicode")


def receive_return(app: SandboxApp, code: str, lines: Mapping[str, Any] | None = None) -> dict:
    """The warehouse receives an expected return: ``lines`` maps orderLineNo -> units (or ``{"qty",
    "inventory_type"}``); default every planned unit as ``ZP``. Emits ``returnorder.confirm``; returns the entry."""
    with app.lock:
        book = app.wms
        record = book.returns.get(code)
        if record is None or not record.created:
            raise WorldError(f"no created return order {code!r}", 404)
        if record.status != "ACCEPT":
            raise WorldError(f"return order {code} is {record.status}; only an ACCEPT one can be received")
        by_no = {line.line_no: line for line in record.lines}
        received: dict[str, tuple[int, str]] = {}
        for line in record.lines:
            received[line.line_no] = (line.plan_qty, line.inventory_type)
        if lines is not None:
            if not isinstance(lines, Mapping):
                raise WorldError('lines must be an object like {"1": 2} or {"1": {"qty": 1, "inventory_type": "CC"}}')
            for line_no, value in lines.items():
                if line_no not in by_no:
                    raise WorldError(f"return order {code} has no orderLineNo {line_no!r}")
                qty, inventory_type = (value.get("qty"), value.get("inventory_type", by_no[line_no].inventory_type)
                                       ) if isinstance(value, Mapping) else (value, by_no[line_no].inventory_type)
                if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
                    raise WorldError(f"line {line_no}: qty must be a non-negative integer")
                if inventory_type not in INVENTORY_TYPES:
                    raise WorldError(f"line {line_no}: inventory_type must be one of {', '.join(INVENTORY_TYPES)}")
                received[line_no] = (qty, inventory_type)
        now = app.now()
        stamp = clock.format_wire(now)
        for line in record.lines:
            line.actual_qty, line.received_inventory_type = received[line.line_no]
            if line.received_inventory_type == "ZP":  # only sound goods go back on the shelf
                _level(book, record.warehouse_code or "", line.item_code).on_hand += line.actual_qty
        record.set_status("FULFILLED", now)
        record.out_biz_code = book.next_out_biz_code()

        root = ET.Element("request")
        header = ET.SubElement(root, "returnOrder")
        carrier = record.logistics_code
        for tag, value in (("returnOrderCode", record.code), ("returnOrderId", record.return_order_id),
                           ("warehouseCode", record.warehouse_code), ("orderType", record.order_type),
                           ("outBizCode", record.out_biz_code), ("orderConfirmTime", stamp),
                           ("preDeliveryOrderCode", record.pre_delivery_order_code),
                           ("preDeliveryOrderId", record.pre_delivery_order_id),
                           ("logisticsCode", carrier), ("logisticsName", LOGISTICS.get(carrier or "", "")),
                           ("expressCode", record.express_code), ("returnReason", record.return_reason)):
            _add(header, tag, value)
        container = ET.SubElement(root, "orderLines")
        for line in record.lines:
            element = ET.SubElement(container, "orderLine")
            for tag, value in (("orderLineNo", line.line_no), ("sourceOrderCode", line.source_order_code),
                               ("subSourceOrderCode", line.sub_source_order_code), ("itemCode", line.item_code),
                               ("inventoryType", line.received_inventory_type), ("planQty", str(line.plan_qty)),
                               ("actualQty", str(line.actual_qty)), ("batchCode", "")):
                _add(element, tag, value)
        body = ET.tostring(root, encoding="unicode")
        report = {"seq": None, "out_biz_code": record.out_biz_code, "return_order_code": record.code,
                  "lines": [{"order_line_no": line.line_no, "item_code": line.item_code,
                             "actual_qty": line.actual_qty, "inventory_type": line.received_inventory_type}
                            for line in record.lines], "at": stamp}
        entry = {"seq": None, "params": _signed(app, "returnorder.confirm", body, stamp), "body": body,
                 "report": report}
        record.confirm_seq = _append(app, "returns", entry)
        return entry


def adjust_stock(app: SandboxApp, warehouse: str, item: str, delta: int | None = None,
                 quantity: int | None = None, reason: str | None = None, report: bool = True) -> dict:
    """A stock movement the ERP did not order (count, damage): change the shelf by ``delta``, or set it to
    ``quantity`` (on hand), and - unless ``report`` is false - emit a ``stockchange.report`` that becomes visible
    after ``wms.stock_report_lag_s``. Returns the level and the report (or None)."""
    with app.lock:
        book = app.wms
        if warehouse not in app.world.wms.warehouses:
            raise WorldError(f"unknown warehouse {warehouse!r}; the WMS has {', '.join(app.world.wms.warehouses)}")
        level = book.stock.get((warehouse, item))
        if level is None:
            raise WorldError(f"the WMS does not know item {item!r} (use a catalogue outer_sku_id)", 404)
        change = delta if quantity is None else quantity - level.on_hand
        assert change is not None
        if level.on_hand + change < 0:
            raise WorldError(f"{item} in {warehouse}: on hand {level.on_hand}, cannot change by {change}")
        level.on_hand += change
        entry = None
        if report and change:
            book.adjustment_count += 1
            now = app.now()
            stamp = clock.format_wire(now)
            out_biz_code = book.next_out_biz_code()
            order_code = f"WMS-ADJ-{book.adjustment_count:06d}"
            root = ET.Element("request")
            element = ET.SubElement(ET.SubElement(root, "items"), "item")
            for tag, value in (("ownerCode", app.world.wms.customer_id), ("warehouseCode", warehouse),
                               ("orderCode", order_code), ("orderType", "QTRK" if change > 0 else "QTCK"),
                               ("outBizCode", out_biz_code), ("itemCode", item), ("itemId", level.item_id),
                               ("inventoryType", "ZP"), ("quantity", str(change)), ("batchCode", ""),
                               ("changeTime", stamp), ("remark", reason or "")):
                _add(element, tag, value)
            body = ET.tostring(root, encoding="unicode")
            lag = float(app.faults.get("wms.stock_report_lag_s"))  # type: ignore[arg-type]
            visible_at = clock.precise_now() + timedelta(seconds=lag)
            report_json = {"seq": None, "out_biz_code": out_biz_code, "order_code": order_code,
                           "warehouse_code": warehouse, "item_code": item, "quantity": change, "change_time": stamp,
                           "visible_at": visible_at.isoformat(timespec="milliseconds"), "reason": reason}
            entry = {"seq": None, "params": _signed(app, "stockchange.report", body, stamp), "body": body,
                     "report": report_json, "visible_at": visible_at}
            _append(app, "stockchanges", entry)
        return {"warehouse": warehouse, "item": item, **level.as_json(), "change": change,
                "report": dict(entry["report"]) if entry else None}


def _level(book: WmsBook, warehouse: str, item: str) -> StockLevel:
    # Every catalogue item is seeded; anything else (an older book built without a world) starts at zero.
    return book.stock.setdefault((warehouse, item), StockLevel(item_id=f"WMS-IT-{item}", on_hand=0))


def _wire_entry(entry: dict) -> dict:
    return {"seq": entry["seq"], "params": dict(entry["params"]), "body": entry["body"]}


# ------------------------------------------------------------------------------------------------ push


class _Stream:
    """Pushes one feed to the callback URL in seq order, one at a time, retrying with backoff.

    Head-of-line blocking is deliberate: an ERP that keeps failing sees the same message again (same outBizCode)
    and nothing newer from that feed until it accepts it, which is the harshest order a real WMS may use. Feeds are
    independent, so an ERP that refuses stock reports still gets its ship confirms.
    """

    def __init__(self, pusher: ConfirmPusher, feed: str) -> None:
        self.pusher = pusher
        self.feed = feed
        self.app = pusher.app
        self._thread: threading.Thread | None = None
        self.enabled = False
        self.pushed_seq = 0
        self.attempts = self.delivered = self.failures = 0
        self.last_error: str | None = None

    def status(self) -> dict:
        return {"url": self.pusher.url if self.enabled else None, "pushed_seq": self.pushed_seq,
                "last_seq": len(self.app.wms.feeds[self.feed]), "attempts": self.attempts,
                "delivered": self.delivered, "failures": self.failures, "last_error": self.last_error}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sandbox-wms-pusher-{self.feed}", daemon=True)
            self._thread.start()

    def reset_counters(self) -> None:
        self.pushed_seq = 0
        self.attempts = self.delivered = self.failures = 0
        self.last_error = None

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _next(self) -> tuple[dict | None, float | None]:
        """The next entry to push, or None and how long to wait (None: until notified). Caller holds the lock."""
        if self.pusher.url is None or not self.enabled:
            return None, None
        book = self.app.wms
        entries = book.feeds[self.feed]
        if self.pushed_seq < book.visible(self.feed):
            return entries[self.pushed_seq], None
        if self.pushed_seq < len(entries):  # the next one is still lagging: wake when it becomes visible
            wait = (entries[self.pushed_seq]["visible_at"] - clock.precise_now()).total_seconds()
            return None, max(0.01, wait)
        if self.feed == "confirms" and book.held:
            return None, 0.2  # poll for the out-of-order knob being switched off
        return None, None

    def _run(self) -> None:
        wakeup = self.pusher.wakeup
        backoff = 0.1
        while True:
            with wakeup:
                while True:
                    if self.app.stopping.is_set():
                        return
                    if self.feed == "confirms":
                        settle(self.app)
                    entry, wait = self._next()
                    if entry is not None:
                        break
                    wakeup.wait(wait)
                epoch, url = self.pusher.epoch, self.pusher.url
                entry = _wire_entry(entry)
            ok, error = _post_message(url, entry, self.pusher.REQUEST_TIMEOUT_S)
            with wakeup:
                if epoch != self.pusher.epoch:
                    continue  # reconfigured or reset while we were posting; start over from the new cursor
                self.attempts += 1
                if ok:
                    self.pushed_seq = entry["seq"]
                    self.delivered += 1
                    backoff = 0.1
                    continue
                self.failures += 1
                self.last_error = error
            self.app.pause(backoff)
            backoff = min(backoff * 2, self.pusher.MAX_BACKOFF_S)


class ConfirmPusher:
    """Pushes every outbound feed (confirms, returns, stock changes) to one callback URL, each feed on its own
    stream: a real WMS POSTs all its callbacks to the ERP's one Qimen endpoint, told apart by ``method``."""

    MAX_BACKOFF_S = 2.0
    REQUEST_TIMEOUT_S = 5.0

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self.wakeup = threading.Condition(app.lock)
        self.url: str | None = None
        self.epoch = 0
        self.streams = {name: _Stream(self, name) for name in FEEDS}

    # The deliveryorder.confirm stream's counters stay at the top level of status() (the original shape).
    @property
    def pushed_seq(self) -> int:
        return self.streams["confirms"].pushed_seq

    def status(self) -> dict:
        with self.app.lock:
            confirms = self.streams["confirms"].status()
            return {**confirms, "url": self.url,
                    "streams": {name: stream.status() for name, stream in self.streams.items()}}

    def configure(self, url: str | None, after: int | Mapping[str, int] | None,
                  kinds: list[str] | None = None) -> None:
        """Point the pusher at ``url`` (None disables). ``after``: an int is the confirms cursor; an object gives a
        cursor per feed; a feed without one starts at its latest message (only new ones are pushed). ``kinds``
        limits which feeds are pushed (default all)."""
        kinds = list(FEEDS) if kinds is None else kinds
        cursors = {"confirms": after} if not isinstance(after, Mapping) else dict(after)
        with self.wakeup:
            self.epoch += 1
            self.url = url
            for name, stream in self.streams.items():
                last = len(self.app.wms.feeds[name])
                cursor = cursors.get(name)
                stream.pushed_seq = last if cursor is None else min(int(cursor), last)
                stream.last_error = None
                stream.enabled = url is not None and name in kinds
                if stream.enabled:
                    stream.start()
            self.wakeup.notify_all()

    def reset(self) -> None:
        with self.wakeup:
            self.epoch += 1
            self.url = None
            for stream in self.streams.values():
                stream.enabled = False
                stream.reset_counters()
            self.wakeup.notify_all()

    def notify(self) -> None:
        """Wake the workers after a message was appended (caller holds the app lock)."""
        with self.wakeup:
            self.wakeup.notify_all()

    def stop(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()
        for stream in self.streams.values():
            stream.join(self.REQUEST_TIMEOUT_S + 1)


def _post_message(url: str, entry: dict, timeout: float) -> tuple[bool, str | None]:
    try:
        reply = requests.post(
            url,
            params=entry["params"],
            data=entry["body"].encode("utf-8"),
            headers={"Content-Type": "text/xml;charset=utf-8"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if reply.status_code != 200:
        return False, f"HTTP {reply.status_code}"
    try:
        flag = ET.fromstring(reply.content).findtext("flag")
    except ET.ParseError:
        return False, "reply is not a Qimen XML response"
    if flag != "success":
        return False, f"flag={flag}: {reply.text[:200]}"
    return True, None


# ------------------------------------------------------------------------------------------------ admin operations




def admin_ship(app: SandboxApp, body: Mapping[str, Any]) -> dict:
    """``POST /_sandbox/wms/ship {"codes", "parcels", "partial", "lines"}`` -> ``{"shipped": [codes]}``."""
    codes = body.get("codes") or []
    if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
        raise WorldError("codes must be a list of deliveryOrderCode strings")
    parcels = body.get("parcels", 1)
    if isinstance(parcels, bool) or not isinstance(parcels, int) or not 1 <= parcels <= 50:
        raise WorldError("parcels must be an integer between 1 and 50")
    partial = body.get("partial", False)
    if not isinstance(partial, bool):
        raise WorldError("partial must be true or false")
    lines = body.get("lines")
    if lines is not None and not isinstance(lines, dict):
        raise WorldError('lines must be an object {"<orderLineNo>": units}')
    return {"shipped": ship_pending(app, codes, parcels=parcels, partial=partial, lines=lines)}


def _admin_stock(app: SandboxApp, request: Request) -> dict:
    if request.method == "GET":
        with app.lock:
            return app.wms.truth()["stock"]
    body = _admin_body(request)
    warehouse, item = body.get("warehouse"), body.get("item")
    if not isinstance(warehouse, str) or not isinstance(item, str):
        raise WorldError('warehouse and item are required, e.g. {"warehouse": "WH01", "item": "SKU-001-RED-M"}')
    delta, quantity = body.get("delta"), body.get("quantity")
    if (delta is None) == (quantity is None):
        raise WorldError("give exactly one of delta (signed change) or quantity (new on-hand count)")
    for name, value in (("delta", delta), ("quantity", quantity)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise WorldError(f"{name} must be an integer")
    reason, report = body.get("reason"), body.get("report", True)
    if reason is not None and not isinstance(reason, str):
        raise WorldError("reason must be a string")
    if not isinstance(report, bool):
        raise WorldError("report must be true or false")
    return adjust_stock(app, warehouse, item, delta=delta, quantity=quantity, reason=reason, report=report)


def _admin_return_receive(app: SandboxApp, request: Request) -> dict:
    body = _admin_body(request)
    code, codes = body.get("code"), body.get("codes")
    if code is not None:
        if not isinstance(code, str):
            raise WorldError("code must be a returnOrderCode string")
        codes = [code]
    elif codes is None or codes == []:
        if body.get("lines") is not None:
            raise WorldError("lines needs a code")
        with app.lock:
            codes = [c for c, r in app.wms.returns.items() if r.created and r.status == "ACCEPT"]
    elif not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise WorldError("codes must be a list of returnOrderCode strings")
    if body.get("lines") is not None and len(codes) != 1:
        raise WorldError("lines needs exactly one return order code")
    received = [receive_return(app, c, body.get("lines"))["report"]["return_order_code"] for c in codes]
    return {"received": received}


# (methods, path under /_sandbox, endpoint, handler(app, request), what) - mounted by sandbox.admin
ADMIN_ROUTES: list[tuple[tuple[str, ...], str, str, Callable[..., dict], str]] = [
    (("GET", "POST"), "/wms/stock", "admin_wms_stock", _admin_stock,
     "WMS stock book; POST {warehouse, item, delta|quantity, reason, report} adjusts it (stockchange.report)"),
    (("POST",), "/wms/return/receive", "admin_wms_return_receive", _admin_return_receive,
     "warehouse receives returns ({code, lines: {orderLineNo: qty}} or {codes}); emits returnorder.confirm"),
]


# ------------------------------------------------------------------------------------------------ XML helpers


def _parse_request(raw: bytes) -> ET.Element:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise QimenFailure("invalid-xml", f"XML 解析失败: {exc}") from None
    if root.tag != "request":
        raise QimenFailure("invalid-xml", f"root element must be <request>, got <{root.tag}>")
    return root


def _check_receiver(receiver: ET.Element | None) -> None:
    # A parcel cannot leave without a consignee: the fields a courier label needs are mandatory.
    if receiver is None:
        raise QimenFailure("missing-parameter", "缺少 receiverInfo")
    for name in ("name", "province", "city", "detailAddress"):
        if not _text(receiver, name):
            raise QimenFailure("missing-parameter", f"缺少 receiverInfo.{name}")
    if not (_text(receiver, "mobile") or _text(receiver, "tel")):
        raise QimenFailure("missing-parameter", "缺少 receiverInfo.mobile")


def _create_answer(record: DeliveryOrder) -> dict[str, str]:
    assert record.create_time is not None and record.delivery_order_id is not None
    return {
        "createTime": clock.format_wire(record.create_time),
        "deliveryOrderId": record.delivery_order_id,
        "warehouseCode": record.warehouse_code or "",
        "logisticsCode": record.logistics_code or DEFAULT_CARRIER,
    }


def _return_answer(record: ReturnOrder) -> dict[str, str]:
    assert record.create_time is not None and record.return_order_id is not None
    return {"createTime": clock.format_wire(record.create_time), "returnOrderId": record.return_order_id,
            "warehouseCode": record.warehouse_code or ""}


def _text(parent: ET.Element, tag: str) -> str:
    return (parent.findtext(tag) or "").strip()


def _add(parent: ET.Element, tag: str, text: str | None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text or ""
    return element


def _xml_response(flag: str, code: str, message: str, fields: Mapping[str, str],
                  children: list[ET.Element] | None = None) -> Response:
    root = ET.Element("response")
    _add(root, "flag", flag)
    _add(root, "code", code)
    _add(root, "message", message)
    for tag, value in fields.items():
        _add(root, tag, value)
    root.extend(children or [])
    text = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
    return Response(text, content_type="text/xml;charset=utf-8")



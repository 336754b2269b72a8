"""Simulated Qimen WMS (``/qimen/router``) and its shipment confirmations, per specs/platform-apis.md §6.

Inbound (ERP -> WMS): system parameters in the URL query, the XML document as the raw body, signed with the TOP md5
rule over the query parameters with the body appended (§6.1). The only business method is
``deliveryorder.create`` (also accepted as ``taobao.qimen.deliveryorder.create``); it is idempotent on
``deliveryOrderCode``, as §6.1 requires of every WMS.

Outbound (WMS -> ERP): when a delivery order ships (at once with the ``wms.auto_ship`` knob, or on
``POST /_sandbox/wms/ship``), the WMS writes a signed ``deliveryorder.confirm`` request exactly as it would POST it to
the ERP (§6.3). Each confirm is appended to a feed (``GET /qimen/_confirms``, a sandbox convenience: real WMSes only
push) and, when a callback URL is registered, pushed there by :class:`ConfirmPusher` in a background thread that
retries until the receiver answers ``<flag>success</flag>``.

Failure codes are UNCONFIRMED in the spec (§11); the sandbox's choices are listed in README.md.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import requests
from werkzeug.wrappers import Request, Response

from connectors.top_signing import sign, verify
from sandbox import clock
from sandbox.top import TIMESTAMP_SKEW

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

ROUTER_PATH = "/qimen/router"
CONFIRMS_PATH = "/qimen/_confirms"
LONG_PREFIX = "taobao.qimen."

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
# Parcel weight the WMS "measures": a fixed 0.5 kg per unit keeps confirms deterministic.
WEIGHT_PER_UNIT = Decimal("0.5")

log = logging.getLogger(__name__)


class QimenFailure(Exception):
    """A request the WMS answers with ``<flag>failure</flag>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class OrderLine:
    line_no: str
    item_code: str
    plan_qty: int
    source_order_code: str
    sub_source_order_code: str

    def as_json(self) -> dict:
        return {
            "order_line_no": self.line_no,
            "item_code": self.item_code,
            "plan_qty": self.plan_qty,
            "source_order_code": self.source_order_code,
            "sub_source_order_code": self.sub_source_order_code,
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
    express_code: str | None = None
    confirm_seq: int | None = None

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
        }


@dataclass
class WmsBook:
    """The WMS's memory: delivery orders by code and the append-only feed of confirm messages."""

    waybill_base: int
    delivery_orders: dict[str, DeliveryOrder] = field(default_factory=dict)
    confirms: list[dict] = field(default_factory=list)
    created_count: int = 0

    @classmethod
    def build(cls, seed: int) -> WmsBook:
        # Own stream so waybill numbers do not depend on how many trades the Tmall side generated.
        rng = random.Random(f"orderhub-sandbox/{seed}/waybills")
        return cls(waybill_base=rng.randint(100_000_000_000, 500_000_000_000))

    @property
    def last_seq(self) -> int:
        return len(self.confirms)

    def truth(self) -> dict:
        return {"delivery_orders": {code: do.truth() for code, do in self.delivery_orders.items()}}


class QimenRouter:
    """The WSGI-level handler for ``/qimen/router`` and the ``/qimen/_confirms`` feed."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app

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
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = None
            try:
                if body is None:
                    raise QimenFailure("invalid-xml", "body must be UTF-8")
                method = self._authenticate(params, body)
                fields = self.deliveryorder_create(_parse_request(raw))
                response = _xml_response("success", "0", "ok", fields)
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
        if method != "deliveryorder.create":
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
            # Idempotent on the document code (§6.1): same answer, nothing new.
            return _create_answer(record)

        warehouse = _text(header, "warehouseCode")
        if not warehouse:
            raise QimenFailure("missing-parameter", "缺少 warehouseCode")
        if warehouse not in app.world.wms.warehouses:
            raise QimenFailure("invalid-parameter", f"仓库 {warehouse} 不存在")
        logistics = _text(header, "logisticsCode") or None
        if logistics is not None and logistics not in LOGISTICS:
            raise QimenFailure("invalid-parameter", f"物流公司编码 {logistics} 不支持")
        total_amount = _text(header, "totalAmount") or None
        for name in ("totalAmount", "itemAmount", "discountAmount", "freight", "arAmount", "gotAmount"):
            value = _text(header, name)
            if value:
                try:
                    Decimal(value)
                except InvalidOperation:
                    raise QimenFailure("invalid-parameter", f"{name} 不是金额: {value}") from None
        _check_receiver(header.find("receiverInfo"))
        lines = self._parse_lines(root)

        book.created_count += 1
        record.created = 1
        record.delivery_order_id = f"WMS-DO-{book.created_count:06d}"
        record.create_time = app.now()
        record.warehouse_code = warehouse
        record.order_type = _text(header, "orderType") or "JYCK"
        record.logistics_code = logistics
        record.shop_nick = _text(header, "shopNick") or None
        record.total_amount = total_amount
        record.lines = lines
        record.status = "ACCEPT"
        if app.faults.get("wms.auto_ship"):
            app.ship_delivery_order(record)
        return _create_answer(record)

    def _parse_lines(self, root: ET.Element) -> list[OrderLine]:
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
            lines.append(
                OrderLine(
                    line_no=_text(element, "orderLineNo") or str(index),
                    item_code=item_code,
                    plan_qty=plan_qty,
                    source_order_code=_text(element, "sourceOrderCode"),
                    sub_source_order_code=_text(element, "subSourceOrderCode"),
                )
            )
        return lines

    # ------------------------------------------------------------------------------------------- feed

    def confirms_feed(self, request: Request) -> Response:
        try:
            after = int(request.args.get("after", "0"))
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            return _json({"error": "after and limit must be integers"}, 400)
        if after < 0 or not 1 <= limit <= 1000:
            return _json({"error": "after must be >= 0 and limit between 1 and 1000"}, 400)
        with self.app.lock:
            confirms = self.app.wms.confirms
            page = [dict(entry, params=dict(entry["params"])) for entry in confirms[after : after + limit]]
            has_more = after + limit < len(confirms)
        # last_seq is the cursor to pass back as ``after``: the last seq in this page (or ``after`` when empty),
        # never the global maximum, so a limited page cannot make a poller skip confirms.
        last_seq = page[-1]["seq"] if page else after
        return _json({"confirms": page, "last_seq": last_seq, "has_more": has_more})


def build_confirm(app: SandboxApp, record: DeliveryOrder, seq: int, at: datetime) -> dict:
    """The signed ``deliveryorder.confirm`` a WMS would POST to the ERP for ``record`` (§6.3)."""
    wms = app.world.wms
    stamp = clock.format_wire(at)
    carrier = record.logistics_code or DEFAULT_CARRIER
    root = ET.Element("request")
    header = ET.SubElement(root, "deliveryOrder")
    _add(header, "deliveryOrderCode", record.code)
    _add(header, "deliveryOrderId", record.delivery_order_id)
    _add(header, "warehouseCode", record.warehouse_code)
    _add(header, "orderType", record.order_type)
    _add(header, "status", "DELIVERED")
    _add(header, "outBizCode", f"WMS-MSG-{seq:06d}")
    _add(header, "confirmType", "0")
    _add(header, "orderConfirmTime", stamp)
    _add(header, "operatorCode", "")
    _add(header, "operatorName", "")
    _add(header, "operateTime", stamp)

    quantities: dict[str, int] = {}
    for line in record.lines:
        quantities[line.item_code] = quantities.get(line.item_code, 0) + line.plan_qty
    package = ET.SubElement(ET.SubElement(root, "packages"), "package")
    _add(package, "logisticsCode", carrier)
    _add(package, "logisticsName", LOGISTICS[carrier])
    _add(package, "expressCode", record.express_code)
    _add(package, "packageCode", "P1")
    _add(package, "weight", str(WEIGHT_PER_UNIT * sum(quantities.values())))
    items = ET.SubElement(package, "items")
    for item_code, quantity in quantities.items():
        item = ET.SubElement(items, "item")
        _add(item, "itemCode", item_code)
        _add(item, "quantity", str(quantity))

    lines = ET.SubElement(root, "orderLines")
    for line in record.lines:
        element = ET.SubElement(lines, "orderLine")
        _add(element, "orderLineNo", line.line_no)
        _add(element, "itemCode", line.item_code)
        _add(element, "planQty", str(line.plan_qty))
        _add(element, "actualQty", str(line.plan_qty))
        _add(element, "inventoryType", "ZP")
        _add(element, "batchCode", "")
        _add(element, "produceCode", "")
    body = ET.tostring(root, encoding="unicode")

    params = {
        "method": "deliveryorder.confirm",
        "app_key": wms.app_key,
        "customerId": wms.customer_id,
        "format": "xml",
        "sign_method": "md5",
        "timestamp": stamp,
        "v": "2.0",
    }
    params["sign"] = sign(params, wms.app_secret, "md5", body=body)
    return {"seq": seq, "params": params, "body": body}


class ConfirmPusher:
    """Pushes confirms to the registered callback URL in seq order, one at a time, retrying with backoff.

    Head-of-line blocking is deliberate: an ERP that keeps failing sees the same message again (same outBizCode)
    and nothing newer until it accepts it, which is the harshest order a real WMS may use.
    """

    MAX_BACKOFF_S = 2.0
    REQUEST_TIMEOUT_S = 5.0

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self._wakeup = threading.Condition(app.lock)
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        self.pushed_seq = 0
        self.attempts = 0
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self._epoch = 0

    def status(self) -> dict:
        with self.app.lock:
            return {
                "url": self.url,
                "pushed_seq": self.pushed_seq,
                "last_seq": self.app.wms.last_seq,
                "attempts": self.attempts,
                "delivered": self.delivered,
                "failures": self.failures,
                "last_error": self.last_error,
            }

    def configure(self, url: str | None, after: int | None) -> None:
        """Point the pusher at ``url`` (None disables); push confirms with seq > ``after`` (default: the latest)."""
        with self._wakeup:
            self._epoch += 1
            self.url = url
            self.pushed_seq = self.app.wms.last_seq if after is None else min(after, self.app.wms.last_seq)
            self.last_error = None
            if url is not None and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-confirm-pusher", daemon=True)
                self._thread.start()
            self._wakeup.notify_all()

    def reset(self) -> None:
        with self._wakeup:
            self._epoch += 1
            self.url = None
            self.pushed_seq = 0
            self.attempts = self.delivered = self.failures = 0
            self.last_error = None
            self._wakeup.notify_all()

    def notify(self) -> None:
        """Wake the worker after a confirm was appended (caller holds the app lock)."""
        with self._wakeup:
            self._wakeup.notify_all()

    def stop(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.REQUEST_TIMEOUT_S + 1)

    def _run(self) -> None:
        backoff = 0.1
        while True:
            with self._wakeup:
                while not self.app.stopping.is_set() and (self.url is None or self.pushed_seq >= self.app.wms.last_seq):
                    self._wakeup.wait()
                if self.app.stopping.is_set():
                    return
                epoch, url = self._epoch, self.url
                entry = self.app.wms.confirms[self.pushed_seq]
            ok, error = _post_confirm(url, entry, self.REQUEST_TIMEOUT_S)
            with self._wakeup:
                if epoch != self._epoch:
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
            backoff = min(backoff * 2, self.MAX_BACKOFF_S)


def _post_confirm(url: str, entry: dict, timeout: float) -> tuple[bool, str | None]:
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


def _text(parent: ET.Element, tag: str) -> str:
    return (parent.findtext(tag) or "").strip()


def _add(parent: ET.Element, tag: str, text: str | None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text or ""
    return element


def _xml_response(flag: str, code: str, message: str, fields: Mapping[str, str]) -> Response:
    root = ET.Element("response")
    _add(root, "flag", flag)
    _add(root, "code", code)
    _add(root, "message", message)
    for tag, value in fields.items():
        _add(root, tag, value)
    text = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
    return Response(text, content_type="text/xml;charset=utf-8")


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json")

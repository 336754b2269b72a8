"""WMS -> hub: ``deliveryorder.confirm`` documents (specs §6.3), verified, parsed into canonical shipments.

A real WMS POSTs each confirm to the hub; the sandbox also keeps them in a feed that can be polled, so a cron user
without a public endpoint can run the whole loop. Both paths go through ``parse_confirm`` after the signature
check, and both answer with the standard Qimen ``<response>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import requests

from hub.errors import RecordError, TransientError
from hub.mapping import shanghai_time


@dataclass(frozen=True)
class Package:
    logistics_code: str
    express_code: str
    package_code: str | None
    items: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveryConfirm:
    delivery_order_code: str
    delivery_order_id: str | None
    status: str
    out_biz_code: str
    confirm_type: int
    confirmed_at: Any
    packages: list[Package]


def _text(node: ET.Element | None, tag: str) -> str:
    child = node.find(tag) if node is not None else None
    return (child.text or "").strip() if child is not None else ""


def parse_confirm(body: str) -> DeliveryConfirm:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise RecordError(f"deliveryorder.confirm is not XML: {exc}", group_key="malformed wms confirm") from exc
    order = root.find("deliveryOrder")
    code = _text(order, "deliveryOrderCode")
    if not code:
        raise RecordError("deliveryorder.confirm without deliveryOrderCode", group_key="malformed wms confirm")
    packages = []
    for pkg in root.iterfind("packages/package"):
        items = [(_text(it, "itemCode"), int(_text(it, "quantity") or 0)) for it in pkg.iterfind("items/item")]
        express = _text(pkg, "expressCode")
        if not express:
            raise RecordError(f"confirm of {code}: a package has no expressCode", group_key="malformed wms confirm")
        packages.append(Package(_text(pkg, "logisticsCode") or "OTHER", express, _text(pkg, "packageCode") or None,
                                items))
    when = _text(order, "orderConfirmTime") or _text(order, "operateTime")
    return DeliveryConfirm(
        delivery_order_code=code,
        delivery_order_id=_text(order, "deliveryOrderId") or None,
        status=_text(order, "status") or "DELIVERED",
        out_biz_code=_text(order, "outBizCode") or f"{code}:{_text(order, 'status')}",
        confirm_type=int(_text(order, "confirmType") or 0),
        confirmed_at=shanghai_time(when) if when else None,
        packages=packages,
    )


def response_xml(ok: bool, message: str = "ok", code: str = "0") -> str:
    flag = "success" if ok else "failure"
    return f"<response><flag>{flag}</flag><code>{code}</code><message>{message}</message></response>"


def poll_feed(feed_url: str, after: int, limit: int = 200, timeout_s: float = 20) -> tuple[list[dict], int]:
    """Read confirms after sequence ``after`` from a confirm feed; returns (items, last_seq)."""
    try:
        resp = requests.get(feed_url, params={"after": after, "limit": limit}, timeout=timeout_s)
    except requests.RequestException as exc:
        raise TransientError(f"cannot read the WMS confirm feed: {type(exc).__name__}", endpoint=feed_url) from exc
    if resp.status_code != 200:
        raise TransientError(f"WMS confirm feed answered HTTP {resp.status_code}", endpoint=feed_url)
    body = resp.json()
    return list(body.get("confirms") or []), int(body.get("last_seq") or after)


def to_ship_confirm(sink_name: str, confirm: DeliveryConfirm):
    """The hub's view of a WMS confirmation (hub.feedback.ShipConfirm)."""
    from hub.feedback import ConfirmPackage, ShipConfirm

    return ShipConfirm(
        sink=sink_name, document_ref=confirm.delivery_order_code, message_id=confirm.out_biz_code,
        shipped_at=confirm.confirmed_at, final=confirm.confirm_type == 0,
        packages=[ConfirmPackage(p.logistics_code, p.express_code, p.package_code, p.items)
                  for p in confirm.packages],
    )


def poll(settings, after: int) -> list:
    """The sink connector's feedback hook: confirms after ``after``, verified and parsed (or the reason not)."""
    from connectors.qimen_wms.client import QimenClient
    from hub.connector import FeedbackItem

    feed = settings.confirms
    if feed.mode != "poll" or not feed.feed_url:
        return []
    client = QimenClient(settings)
    items, _last = poll_feed(feed.feed_url, after, timeout_s=settings.http.timeout_s)
    out = []
    for item in items:
        params, body = dict(item.get("params") or {}), str(item.get("body") or "")
        try:
            if not client.verify_incoming(params, body):
                raise RecordError("ship confirmation with a wrong signature",
                                  group_key="wms confirm signature mismatch", sink=settings.name)
            out.append(FeedbackItem(int(item["seq"]), to_ship_confirm(settings.name, parse_confirm(body)), None,
                                    body))
        except RecordError as exc:
            out.append(FeedbackItem(int(item["seq"]), None, exc, body))
    return out

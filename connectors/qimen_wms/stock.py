"""WMS stock into the hub's ledger: ``inventory.query`` counts and the ``stockchange.report`` feed (spec §6.4).

* ``query_inventory(settings, items, warehouses)`` asks the WMS for the sellable (ZP) stock of ``items`` and
  returns snapshot movements: on hand = ``quantity`` (unlocked) + ``lockQuantity`` (held for open delivery orders).
* ``poll_stockchanges(settings, after)`` reads signed ``stockchange.report`` messages after a feed position and
  returns change movements keyed by ``outBizCode`` (replays are no-ops in the ledger) and the new position.

The quantity sign of stockchange.report is UNCONFIRMED in the spec (§11); the sandbox documents "signed change,
negative = out", which is what this reads.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import requests

from connectors.qimen_wms.client import QimenClient, classify
from hub.errors import RecordError, TransientError
from hub.retry import call_with_retry
from hub.stock.ledger import Movement

MAX_CRITERIA = 100  # criteria per inventory.query call (the sandbox's limit; production's is UNCONFIRMED)


def _text(node: ET.Element, tag: str) -> str:
    child = node.find(tag)
    return (child.text or "").strip() if child is not None and child.text else ""


def _wire_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    except ValueError:
        return None


def source_name(settings) -> str:
    return f"wms:{settings.name}"


def query_inventory(settings, items: list[str], warehouses: list[str] | None = None, *,
                    client: QimenClient | None = None, now: datetime | None = None) -> list[Movement]:
    """Snapshot movements for ``items`` (master SKUs = WMS itemCode) in ``warehouses`` (default: all)."""
    client = client or QimenClient(settings)
    now = now or datetime.now(UTC)
    out: list[Movement] = []
    criteria = [{"warehouseCode": wh, "ownerCode": settings.customer_id, "itemCode": item, "inventoryType": "ZP"}
                for item in items for wh in (warehouses or [None])]
    for start in range(0, len(criteria), MAX_CRITERIA):
        root = ET.Element("request")
        holder = ET.SubElement(root, "criteriaList")
        for c in criteria[start:start + MAX_CRITERIA]:
            node = ET.SubElement(holder, "criteria")
            for tag, value in c.items():
                if value is not None:
                    ET.SubElement(node, tag).text = value
        body = ET.tostring(root, encoding="unicode")
        text = call_with_retry(lambda body=body: _post(client, "inventory.query", body),
                               attempts=settings.http.attempts)
        for node in ET.fromstring(text).iter("item"):
            try:
                free, locked = int(_text(node, "quantity") or 0), int(_text(node, "lockQuantity") or 0)
            except ValueError as exc:
                raise RecordError(f"inventory.query answered a non-integer quantity: {exc}",
                                  sink=settings.name, endpoint="inventory.query") from exc
            out.append(Movement(sku=_text(node, "itemCode"), warehouse=_text(node, "warehouseCode"), kind="snapshot",
                                quantity=free + locked, locked=locked, source=source_name(settings), at=now,
                                detail={"quantity": free, "lockQuantity": locked}))
    return out


def _post(client: QimenClient, method: str, body: str) -> str:
    params = client.signed_params(method, body)
    try:
        resp = client.http.post(client.settings.url, params=params, data=body.encode("utf-8"),
                                headers={"Content-Type": "text/xml;charset=utf-8"},
                                timeout=client.settings.http.timeout_s)
    except requests.RequestException as exc:  # a read: nothing can be in doubt, asking again is safe
        raise TransientError(f"WMS call {method} failed: {type(exc).__name__}", sink=client.settings.name,
                             endpoint=method) from exc
    classify(method, resp.status_code, resp.text)  # raises the error kind of a failure answer
    return resp.text


def feed_url(settings) -> str:
    """The stockchanges feed next to the confirms feed (``/qimen/_confirms`` -> ``/qimen/_stockchanges``)."""
    confirms = settings.confirms.feed_url or ""
    if not confirms:
        raise RecordError("the WMS sink has no confirms.feed_url, so no stock change feed can be derived",
                          sink=settings.name)
    return confirms.rsplit("/", 1)[0] + "/_stockchanges"


def poll_stockchanges(settings, after: int, *, limit: int = 500, client: QimenClient | None = None
                      ) -> tuple[list[Movement], int, bool]:
    """Change movements of the stockchange.report messages after ``after``; (movements, last position, more?).
    A message whose signature does not verify is refused (RecordError): it did not come from this WMS."""
    client = client or QimenClient(settings)
    url = feed_url(settings)
    try:
        resp = requests.get(url, params={"after": after, "limit": limit}, timeout=settings.http.timeout_s)
    except requests.RequestException as exc:
        raise TransientError(f"cannot read the WMS stock change feed: {type(exc).__name__}", endpoint=url) from exc
    if resp.status_code != 200:
        raise TransientError(f"WMS stock change feed answered HTTP {resp.status_code}", endpoint=url)
    data = resp.json()
    out: list[Movement] = []
    for entry in data.get("stockchanges") or []:
        body = entry.get("body") or ""
        if not client.verify_incoming(dict(entry.get("params") or {}), body):
            raise RecordError("a stockchange.report does not carry this WMS's signature", sink=settings.name,
                              position=entry.get("seq"))
        root = ET.fromstring(body)
        for node in root.iter("item"):
            if (_text(node, "inventoryType") or "ZP") != "ZP":
                continue  # only sellable stock is in the ledger
            ref = _text(node, "outBizCode") or f"seq-{entry.get('seq')}"
            out.append(Movement(sku=_text(node, "itemCode"), warehouse=_text(node, "warehouseCode"), kind="change",
                                quantity=int(_text(node, "quantity") or 0), source=source_name(settings),
                                ref=f"{ref}/{_text(node, 'itemCode')}"[:191],
                                at=_wire_time(_text(node, "changeTime")) or datetime.now(UTC),
                                detail={"orderCode": _text(node, "orderCode"), "orderType": _text(node, "orderType"),
                                        "seq": entry.get("seq")}))
    return out, int(data.get("last_seq") or after), bool(data.get("has_more"))

"""Tmall stock pushes: ``taobao.skus.quantity.update`` (spec §1.7), at most 20 SKUs of one item per call.

``type`` 1 overwrites the SKU's quantity, 2 adds a signed change (below zero clamps to 0). The answer lists the
changed SKUs with the quantity they now show and the item's ``modified`` time: that pair is the acknowledgement the
hub rebases its next delta on. Tmall takes a SKU off sale by itself when its quantity reaches 0 and puts it back
when stock returns, so a de-list is a push of 0 and a re-list a push of more.

A delta is not idempotent: a call whose answer was lost may have landed, and sending it again would move the shelf
twice. So every stock call is made once (no request retries); a failure is answered as rejected (or in doubt) and
the next push cycle recomputes from the last acknowledged quantity, which is the retry.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from connectors.tmall.client import TopClient
from hub.errors import InDoubtError, OrderHubError
from hub.stock.push import StockAck, StockPushItem

METHOD = "taobao.skus.quantity.update"
MAX_PAIRS = 20


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    except ValueError:
        return None


def single_shot(settings):
    """The shop's settings with one attempt per request: stock writes are retried by the next cycle, not here."""
    return settings.model_copy(update={"http": settings.http.model_copy(update={"attempts": 1})})


def push_stock(settings, items: list[StockPushItem], *, client: TopClient | None = None) -> list[StockAck]:
    """Tell the shop ``items``; one StockAck per item (a call's failure answers for every item in it)."""
    client = client or TopClient(single_shot(settings))
    acks: list[StockAck] = []
    calls: dict[tuple[str, str], list[StockPushItem]] = defaultdict(list)
    for item in items:
        if not item.item_id or not item.sku_id:
            acks.append(StockAck(item.push_id, False, error=f"no Tmall item/SKU id known for {item.sku}: list it "
                                                            f"under listings: in mappings/stock.yaml"))
            continue
        calls[(item.item_id, item.mode)].append(item)
    for (num_iid, mode), group in calls.items():
        for start in range(0, len(group), MAX_PAIRS):
            chunk = group[start:start + MAX_PAIRS]
            pairs = ";".join(f"{i.sku_id}:{i.qty}" for i in chunk)
            try:
                answer = client.call(METHOD, write=True, num_iid=num_iid, skuid_quantities=pairs,
                                     type=1 if mode == "full" else 2)
            except InDoubtError as exc:
                acks.extend(StockAck(i.push_id, False, error=exc.message, in_doubt=True) for i in chunk)
                continue
            except OrderHubError as exc:
                acks.extend(StockAck(i.push_id, False, error=exc.message) for i in chunk)
                continue
            item_wire = answer.get("item") or {}
            at = _parse_time(item_wire.get("modified"))
            skus = item_wire.get("skus") or []
            if isinstance(skus, dict):  # TOP wraps lists: {"skus": {"sku": [...]}}
                skus = skus.get("sku") or []
            shown = {str(s.get("sku_id")): s for s in skus if isinstance(s, dict)}
            for i in chunk:
                sku = shown.get(str(i.sku_id)) or {}
                qty = sku.get("quantity")
                acks.append(StockAck(i.push_id, True, channel_qty=int(qty) if qty is not None else None,
                                     channel_at=_parse_time(sku.get("modified")) or at))
    return acks

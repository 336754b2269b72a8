"""JD stock pushes: ``jingdong.stock.write.updateSkuStock`` (spec §2.6), one SKU per call, a full overwrite.

JD keys stock by its own ``skuId``, different in every shop. An item whose id the hub has not learned from an order
is looked up by merchant code (``outerId``) through ``jingdong.sku.read.searchSkuList`` once per push. JD takes no
delta, so the shelf is set to the hub's figure: sales JD took since the hub last read its orders are forgotten by
that overwrite (the policy's share for JD should leave room for them; see hub/stock/push.py). The answer is only
``success``: the acknowledgement is the quantity sent, at the time of the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.jd.client import JdClient, business_result
from hub.errors import InDoubtError, OrderHubError
from hub.stock.push import StockAck, StockPushItem

METHOD = "jingdong.stock.write.updateSkuStock"
SEARCH = "jingdong.sku.read.searchSkuList"
PAGE_SIZE = 50


def sku_ids_by_outer_id(client: JdClient, max_pages: int = 40) -> dict[str, str]:
    """The shop's merchant code -> JD skuId, from its SKU list."""
    out: dict[str, str] = {}
    for page in range(1, max_pages + 1):
        answer = client.call(SEARCH, {"page": page, "page_size": PAGE_SIZE})
        block = (answer.get("page") if isinstance(answer, dict) else None) or {}
        rows = block.get("data") or []
        for row in rows:
            if row.get("outerId") and row.get("skuId"):
                out.setdefault(str(row["outerId"]), str(row["skuId"]))
        if len(rows) < PAGE_SIZE:
            break
    return out


def push_stock(settings, items: list[StockPushItem], *, client: JdClient | None = None) -> list[StockAck]:
    client = client or JdClient(settings)
    acks: list[StockAck] = []
    lookup: dict[str, str] | None = None
    for item in items:
        sku_id = item.sku_id
        if not sku_id:
            if lookup is None:
                try:
                    lookup = sku_ids_by_outer_id(client)
                except OrderHubError as exc:
                    return [*acks, *(StockAck(i.push_id, False, error=f"cannot list the shop's SKUs: {exc.message}")
                                     for i in items[len(acks):])]
            sku_id = lookup.get(item.merchant_code or item.sku)
        if not sku_id:
            acks.append(StockAck(item.push_id, False, error=f"the JD shop lists no SKU with merchant code {item.sku}"))
            continue
        qty = item.target  # JD overwrites: always the target, whatever the mode the hub planned
        try:
            business_result(METHOD, client.call(METHOD, {"skuId": sku_id, "stockNum": qty}, write=True),
                            shop=settings.shop)
        except InDoubtError as exc:
            acks.append(StockAck(item.push_id, False, error=exc.message, in_doubt=True))
            continue
        except OrderHubError as exc:
            acks.append(StockAck(item.push_id, False, error=exc.message))
            continue
        acks.append(StockAck(item.push_id, True, channel_qty=qty, channel_at=datetime.now(UTC)))
    return acks

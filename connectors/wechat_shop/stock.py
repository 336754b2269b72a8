"""WeChat Channels shop stock pushes: ``/channels/ec/product/stock/update`` (spec §3.4), one SKU per call.

``diff_type`` 1 adds, 2 takes away, 3 sets. The hub's deltas go out as 1/2 and full quantities as 3. WeChat refuses
a decrease below zero ("库存不足") instead of clamping: the shelf already holds less than the hub thought (sales it
has not read yet), so the quantity is set to 0 instead. The answer is empty; the acknowledgement is read back with
``/channels/ec/product/stock/get`` right after, so the next delta rebases on what the shelf really shows.

A SKU is addressed by ``product_id`` + ``sku_id``. Ids the hub has not learned from an order are looked up by merchant
code (``out_sku_id``) over ``/product/list/get`` + ``/product/get``, once per push.

Stock calls are made once (no request retries): a delta whose answer was lost may have landed, and the next push
cycle, recomputed from the last read-back quantity, is the retry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.wechat_shop.client import WxClient
from hub.errors import InDoubtError, OrderHubError, RecordError
from hub.stock.push import StockAck, StockPushItem

UPDATE = "/channels/ec/product/stock/update"
GET = "/channels/ec/product/stock/get"


def listing_ids(client: WxClient, max_pages: int = 50) -> dict[str, tuple[str, str]]:
    """The shop's merchant code -> (product_id, sku_id)."""
    out: dict[str, tuple[str, str]] = {}
    next_key = None
    for _ in range(max_pages):
        body = {"status": 5, "page_size": 30, **({"next_key": next_key} if next_key else {})}
        page = client.call("/channels/ec/product/list/get", body)
        for product_id in page.get("product_ids") or []:
            product = client.call("/channels/ec/product/get", {"product_id": str(product_id)}).get("product") or {}
            for sku in product.get("skus") or []:
                if sku.get("out_sku_id"):
                    out.setdefault(str(sku["out_sku_id"]), (str(product_id), str(sku["sku_id"])))
        next_key = page.get("next_key")
        if not page.get("has_more"):
            break
    return out


def push_stock(settings, items: list[StockPushItem], *, client: WxClient | None = None) -> list[StockAck]:
    client = client or WxClient(settings.model_copy(update={"http": settings.http.model_copy(update={"attempts": 1})}))
    acks: list[StockAck] = []
    lookup: dict[str, tuple[str, str]] | None = None
    for item in items:
        ids = (item.item_id, item.sku_id) if item.item_id and item.sku_id else None
        if ids is None:
            if lookup is None:
                try:
                    lookup = listing_ids(client)
                except OrderHubError as exc:
                    lookup = {}
                    acks.append(StockAck(item.push_id, False, error=f"cannot list the shop's products: {exc.message}"))
                    continue
            ids = lookup.get(item.merchant_code or item.sku)
        if ids is None:
            acks.append(StockAck(item.push_id, False, error=f"the WeChat shop lists no SKU with code {item.sku}"))
            continue
        product_id, sku_id = ids
        if item.mode == "full":
            diff_type, num = 3, item.qty
        else:
            diff_type, num = (1, item.qty) if item.qty >= 0 else (2, -item.qty)
        try:
            try:
                client.call(UPDATE, {"product_id": product_id, "sku_id": sku_id, "diff_type": diff_type, "num": num},
                            write=True)
            except RecordError:
                if diff_type != 2:
                    raise
                # less on the shelf than the decrease: it sold what the hub had not read yet; nothing is left
                client.call(UPDATE, {"product_id": product_id, "sku_id": sku_id, "diff_type": 3, "num": 0},
                            write=True)
            at = datetime.now(UTC)
            shown = (client.call(GET, {"product_id": product_id, "sku_id": sku_id}).get("data") or {})
        except InDoubtError as exc:
            acks.append(StockAck(item.push_id, False, error=exc.message, in_doubt=True))
            continue
        except OrderHubError as exc:
            acks.append(StockAck(item.push_id, False, error=exc.message))
            continue
        qty = shown.get("normal_stock_num")
        acks.append(StockAck(item.push_id, True, channel_qty=int(qty) if qty is not None else None, channel_at=at))
    return acks

"""Named functions mappings/pdd.yaml may call: PDD's money is a JSON double in yuan, and its lines carry no id.

``pdd_yuan`` reads a double exactly: the shortest text that round-trips the double (``repr``) must have at most two
decimals, so 12.3 -> 1230 fen and 0.1 + 0.2 style noise is refused (quarantined), never rounded silently.
Lines are keyed ``<order_sn>-<sku_id>`` and share the order's discount in proportion to their totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.errors import RecordError

LINE_STATUS = {"1": "PAID", "2": "SHIPPED", "3": "DELIVERED"}


def pdd_yuan(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"money must be a JSON number of yuan, got {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a money amount: {value!r}") from exc
    fen = amount * 100
    if not fen.is_finite() or fen != fen.to_integral_value():
        raise ValueError(f"more than 2 decimals in {value!r}")
    return int(fen)


def _allocate(amount: int, weights: list[int]) -> list[int]:
    total = sum(weights)
    if not total:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    shares[-1] += amount - sum(shares)
    return shares


def pdd_lines(order: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = str(order.get("order_status"))
    if status not in LINE_STATUS:
        raise RecordError(f"lines: order_status {status!r} has no line status", field="lines",
                          group_key=f"unmapped order_status={status}")
    items = order.get("item_list")
    if not isinstance(items, list) or not items:
        raise RecordError("lines: item_list is missing or empty", field="lines", group_key="pdd order without items")
    sn = str(order.get("order_sn") or "").strip()
    try:
        totals = [pdd_yuan(item["goods_price"]) * int(item["goods_count"]) for item in items]
        discounts = _allocate(pdd_yuan(order.get("discount_amount") or 0), totals)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"lines: cannot read an item's price or count: {exc}", field="lines",
                          group_key="invalid lines") from exc
    return [{
        "line_id": f"{sn}-{item.get('sku_id')}", "platform_item_id": str(item.get("goods_id")),
        "platform_sku_id": str(item.get("sku_id")), "merchant_sku_code": item.get("outer_id") or None,
        "merchant_item_code": item.get("outer_goods_id") or None, "title": item.get("goods_name"),
        "sku_desc": item.get("goods_spec") or None, "qty": int(item["goods_count"]),
        "unit_price": pdd_yuan(item["goods_price"]), "line_total": total, "line_discount": discount,
        "line_paid": total - discount, "status": LINE_STATUS[status], "raw_status": status,
    } for item, total, discount in zip(items, totals, discounts, strict=True)]


def pdd_refund_line_id(refund: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    """The order line the after-sales is about: ``<order_sn>-<sku_id>``, the key pdd_lines gives it."""
    sku, sn = refund.get("sku_id"), refund.get("order_sn")
    return f"{str(sn).strip()}-{sku}" if sku not in (None, "") and sn not in (None, "") else None


def pdd_refunded_amount(refund: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """Money is back with the buyer only once the after-sales says 10 退款成功."""
    if str(refund.get("after_sales_status")) != "10":
        return 0
    amount = refund.get("refund_amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise RecordError(f"refunded_amount: refund_amount {amount!r} is not fen", field="refunded_amount",
                          group_key="invalid refunded_amount")
    return amount


TRANSFORMS = {"pdd_yuan": pdd_yuan}
COMPUTES = {"pdd_lines": pdd_lines, "pdd_refund_line_id": pdd_refund_line_id,
            "pdd_refunded_amount": pdd_refunded_amount}

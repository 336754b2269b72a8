"""Named functions the WeChat shop mappings (mappings/wechat_shop*.yaml) may call by name; pure, dict in, value out.

WeChat has no line id: a line is ``<order_id>-<sku_id>`` (specs §10), which after-sales carry too (their
``product_info.sku_id``), so a refund points at its line. Money is already integer fen; times are unix seconds, 0
meaning "not yet" (ship_done_time, confirm_receipt_time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub.errors import RecordError
from hub.mapping import integer

# Canonical status of a line = its order's (WeChat has no per-line state). The order's own status comes from the
# table in mappings/wechat_shop.yaml (which quarantines unknown statuses first); this copy only serves the lines.
LINE_STATUS = {
    "10": "PENDING_PAYMENT", "12": "PENDING_PAYMENT", "13": "PENDING_PAYMENT", "20": "PAID",
    "21": "PARTIALLY_SHIPPED", "30": "SHIPPED", "100": "COMPLETED", "190": "CANCELLED", "200": "CLOSED_REFUNDED",
    "250": "CANCELLED",
}
REFUND_DONE = ("MERCHANT_REFUND_SUCCESS", "MERCHANT_RETURN_SUCCESS")
PAYMENT_METHODS = {"1": "wechatpay", "2": "wechat_pay_later", "3": "lottery", "4": "points"}


def line_key(order_id: Any, sku_id: Any) -> str:
    return f"{str(order_id).strip()}-{str(sku_id).strip()}"


def wx_time(value: Any) -> datetime | None:
    """Unix seconds -> aware UTC; 0 (WeChat's "not yet") -> None."""
    seconds = integer(value)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def _detail(order: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = (order.get("order_detail") or {}).get(name)
    return value if isinstance(value, Mapping) else {}


def wx_lines(order: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Canonical lines from ``order_detail.product_infos``: real_price is what the buyer paid for the line, the
    merchant's and the finder's (达人) discounts together are its discount."""
    status = str(order.get("status"))
    if status not in LINE_STATUS:
        raise RecordError(f"lines: order status {status!r} has no line status", field="lines",
                          group_key=f"unmapped order_status={status}",
                          how_to_fix="add it to tables.order_status in mappings/wechat_shop.yaml and to LINE_STATUS "
                                     "in connectors/wechat_shop/mapping_functions.py, then `orderhub quarantine "
                                     "replay`")
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for info in (order.get("order_detail") or {}).get("product_infos") or []:
        qty = integer(info["sku_cnt"])
        unit = integer(info["sale_price"])
        discount = integer(info.get("merchant_discounted_price") or 0) + integer(
            info.get("finder_discounted_price") or 0)
        key = line_key(order.get("order_id"), info["sku_id"])
        line_id, n = key, 1
        while line_id in seen:  # the same sku twice (a gift next to the bought one): keep ids unique and stable
            n += 1
            line_id = f"{key}-{n}"
        seen.add(line_id)
        on_aftersale = integer(info.get("on_aftersale_sku_cnt") or 0)
        finished = integer(info.get("finish_aftersale_sku_cnt") or 0)
        attrs = [f"{a.get('attr_key')}:{a.get('attr_value')}" for a in info.get("sku_attrs") or []
                 if isinstance(a, Mapping)]
        lines.append({
            "line_id": line_id,
            "platform_item_id": str(info["product_id"]) if info.get("product_id") not in (None, "") else None,
            "platform_sku_id": str(info["sku_id"]),
            "merchant_item_code": info.get("out_product_id") or None,
            "merchant_sku_code": info.get("out_sku_id") or info.get("sku_code") or None,
            "title": info.get("title") or None,
            "sku_desc": ";".join(attrs) or None,
            "qty": qty,
            "unit_price": unit,
            "line_total": unit * qty,
            "line_discount": discount,
            "line_paid": integer(info["real_price"]),
            "is_gift": bool(info.get("is_free_gift")),
            "status": LINE_STATUS[status],
            "raw_status": status,
            "refund_status": "SUCCESS" if finished >= qty else "REQUESTED" if on_aftersale else None,
        })
    return lines


def wx_discount_total(order: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    price = _detail(order, "price_info")
    return integer(price.get("discounted_price") or 0) + integer(price.get("finder_discounted_price") or 0)


def wx_adjust_total(order: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """A merchant's price cut (改价) lowers what the buyer pays: a negative adjustment."""
    return -integer(_detail(order, "price_info").get("change_down_price") or 0)


def wx_payments(order: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One WeChat Pay payment per paid order (pay_time set); unpaid orders have none."""
    pay = _detail(order, "pay_info")
    paid_at = wx_time(pay.get("pay_time") or 0)
    if paid_at is None:
        return []
    txn = str(pay.get("transaction_id") or "") or None
    return [{
        "payment_id": txn or str(order["order_id"]),
        "method": PAYMENT_METHODS.get(str(pay.get("payment_method")), "wechatpay"),
        "channel_txn_id": txn,
        "amount": integer(_detail(order, "price_info")["order_price"]),
        "currency": "CNY",
        "paid_at": paid_at,
    }]


def wx_refund_line_id(aftersale: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    product = aftersale.get("product_info") or {}
    if not aftersale.get("order_id") or not product.get("sku_id"):
        return None
    return line_key(aftersale["order_id"], product["sku_id"])


def wx_refunded_amount(aftersale: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """What was refunded: the after-sale's amount once it succeeded, nothing before."""
    if str(aftersale.get("status")) not in REFUND_DONE:
        return 0
    return integer((aftersale.get("refund_info") or {}).get("amount") or 0)


def wx_refund_version(aftersale: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    value = aftersale.get("update_time")
    return None if value in (None, "") else str(integer(value))  # WeChat has no version field: its update time


TRANSFORMS = {"wx_time": wx_time}

COMPUTES = {
    "wx_lines": wx_lines,
    "wx_discount_total": wx_discount_total,
    "wx_adjust_total": wx_adjust_total,
    "wx_payments": wx_payments,
    "wx_refund_line_id": wx_refund_line_id,
    "wx_refunded_amount": wx_refunded_amount,
    "wx_refund_version": wx_refund_version,
}

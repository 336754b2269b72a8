"""Named functions the JD mappings (mappings/jd*.yaml) may call by name; pure, dict in, value out.

JD has no line id: a line is identified by ``<orderId>-<skuId>`` (specs §10), the same key after-sales services and
comments carry, so refunds and reviews point at the right line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.errors import RecordError
from hub.mapping import shanghai_time, yuan_to_fen


def _line_key(order_id: Any, sku_id: Any) -> str:
    return f"{str(order_id).strip()}-{str(sku_id).strip()}"


# Canonical status of a line = its order's (JD has no per-line state). The order's own status comes from the table
# in mappings/jd.yaml (which quarantines unknown states first); this copy only serves the lines, which the mapping
# vocabulary cannot map from the parent order.
LINE_STATUS = {
    "WAIT_SELLER_STOCK_OUT": "PAID", "WAIT_SELLER_DELIVERY": "PAID", "WAIT_GOODS_RECEIVE_CONFIRM": "SHIPPED",
    "SEND_TO_DISTRIBUTION_CENER": "SHIPPED", "DISTRIBUTION_CENTER_RECEIVED": "SHIPPED",
    "RECEIPTS_CONFIRM": "DELIVERED", "FINISHED_L": "COMPLETED", "TRADE_CANCELED": "CLOSED_REFUNDED",
    "LOCKED": "ON_HOLD", "PAUSE": "ON_HOLD", "POP_ORDER_PAUSE": "ON_HOLD",
}


def jd_lines(order: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Canonical lines from ``itemInfoList``; each sku's seller discounts (couponDetailList) are its line discount.

    Built here rather than with ``each:`` because a JD line needs its order: the order id (line key), the order's
    coupons and the order's state.
    """
    state = str(order.get("orderState") or "")
    if state not in LINE_STATUS:
        raise RecordError(f"lines: order state {state!r} has no line status", field="lines",
                          group_key=f"unmapped order_state={state}",
                          how_to_fix="add it to tables.order_state in mappings/jd.yaml and to LINE_STATUS in "
                                     "connectors/jd/mapping_functions.py, then `orderhub quarantine replay`")
    discounts: dict[str, int] = {}
    for coupon in order.get("couponDetailList") or []:
        sku = str(coupon.get("skuId") or "")
        discounts[sku] = discounts.get(sku, 0) + yuan_to_fen(coupon.get("couponPrice") or "0")
    lines = []
    for item in order.get("itemInfoList") or []:
        qty = int(str(item["itemTotal"]).strip())
        total = yuan_to_fen(item["jdPrice"]) * qty
        discount = discounts.get(str(item.get("skuId") or ""), 0)
        lines.append({
            "line_id": _line_key(order.get("orderId"), item["skuId"]),
            "platform_item_id": str(item["wareId"]) if item.get("wareId") not in (None, "") else None,
            "platform_sku_id": str(item["skuId"]),
            "merchant_sku_code": str(item["outerSkuId"]) if item.get("outerSkuId") else None,
            "title": item.get("skuName") or None,
            "qty": qty,
            "unit_price": yuan_to_fen(item["jdPrice"]),
            "line_total": total,
            "line_discount": discount,
            "line_paid": max(total - discount, 0),
            "is_gift": yuan_to_fen(item["jdPrice"]) == 0,  # JD lists gifts (赠品) at 0.00
            "status": LINE_STATUS[state],
            "raw_status": state,
        })
    return lines


def jd_payments(order: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One online payment per paid order; cash on delivery (payType 1) and unconfirmed payments have none."""
    if str(order.get("payType") or "") == "1" or not order.get("paymentConfirmTime"):
        return []
    return [{
        "payment_id": str(order["orderId"]),
        "method": "jd_online",
        "channel_txn_id": None,
        "amount": yuan_to_fen(order["orderPayment"]),
        "currency": "CNY",
        "paid_at": shanghai_time(order["paymentConfirmTime"]),
    }]


def jd_is_cod(order: Mapping[str, Any], _context: Mapping[str, Any]) -> bool:
    """payType 1 = 货到付款: the carrier collects ``orderPayment`` on delivery."""
    return str(order.get("payType") or "") == "1"


def jd_service_line_id(service: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    if not service.get("orderId") or not service.get("skuId"):
        return None
    return _line_key(service["orderId"], service["skuId"])


def jd_refunded_amount(service: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """What JD refunded: the service's refundAmount once it is complete (10010), nothing before."""
    if str(service.get("afsServiceStatus")) != "10010":
        return 0
    return yuan_to_fen(service.get("refundAmount") or "0")


def jd_comment_line_id(comment: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    if not comment.get("orderId") or not comment.get("skuid"):
        return None
    return _line_key(comment["orderId"], comment["skuid"])


def jd_comment_reply(comment: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    """The seller's latest reply, if any."""
    replies = [r for r in comment.get("replies") or [] if isinstance(r, Mapping) and r.get("content")]
    return str(replies[-1]["content"]) if replies else None


def jd_parent(value: Any) -> str | None:
    """parentOrderId "0" (or empty) means the order was not split from another."""
    text = str(value).strip()
    return None if text in ("", "0") else text


TRANSFORMS = {"jd_parent": jd_parent}

COMPUTES = {
    "jd_lines": jd_lines,
    "jd_payments": jd_payments,
    "jd_is_cod": jd_is_cod,
    "jd_service_line_id": jd_service_line_id,
    "jd_refunded_amount": jd_refunded_amount,
    "jd_comment_line_id": jd_comment_line_id,
    "jd_comment_reply": jd_comment_reply,
}
